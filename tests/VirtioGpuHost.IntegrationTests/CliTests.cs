using System.Diagnostics;
using System.Text.Json;
using VirtioGpuHost.FrontEnd;
using VirtioGpuHost.TestKit;

namespace VirtioGpuHost.IntegrationTests;

/// <summary>The `virtio-gpu-host` program behaves like QEMU's back-end on the command line.</summary>
public class CliTests
{
    private static (int Code, string Out, string Err) Run(params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(TestPaths.OurBackend);
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var o = p.StandardOutput.ReadToEndAsync();
        var e = p.StandardError.ReadToEndAsync();
        Assert.True(p.WaitForExit(TimeSpan.FromSeconds(60)), "virtio-gpu-host did not exit");
        return (p.ExitCode, o.Result, e.Result);
    }

    [Fact]
    public void PrintCapabilities_IsLibvirtJsonListingOnlyRealFeatures()
    {
        var (code, stdout, _) = Run("-c");
        Assert.Equal(0, code);
        using var doc = JsonDocument.Parse(stdout);
        Assert.Equal("gpu", doc.RootElement.GetProperty("type").GetString());
        Assert.Equal(JsonValueKind.Array, doc.RootElement.GetProperty("features").ValueKind);
        Assert.Equal(0, doc.RootElement.GetProperty("features").GetArrayLength()); // no virgl, no render-node
    }

    [Fact]
    public void NoSocketOption_FailsWithTheCBackendsMessage()
    {
        var (code, _, stderr) = Run();
        Assert.Equal(1, code);
        Assert.Contains("specify either --fd or --socket-path", stderr);
    }

    [Fact]
    public void Virgl_IsRefusedClearly()
    {
        var (code, _, stderr) = Run("--virgl", "-s", "/tmp/x.sock");
        Assert.Equal(1, code);
        Assert.Contains("not supported", stderr);
    }

    [Fact]
    public void BadMode_IsRefusedWithTheValue()
    {
        var (code, _, stderr) = Run("-s", "/tmp/x.sock", "--mode", "12x");
        Assert.Equal(1, code);
        Assert.Contains("'12x'", stderr);
    }

    [Fact]
    public void InheritedListeningFd_IsServed()
    {
        // Like libvirt or systemd socket activation: the parent listens and passes the fd.
        using var dir = new TempDir();
        string sock = dir.File("inherited.sock");
        string script = $$"""
            import socket, subprocess, sys
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.bind("{{sock}}"); s.listen(4)
            p = subprocess.Popen(["dotnet", "{{TestPaths.OurBackend}}", "--fd", str(s.fileno())], pass_fds=(s.fileno(),))
            s.close()
            print(p.pid, flush=True)
            p.wait()
            """;
        var psi = new ProcessStartInfo("python3") { RedirectStandardOutput = true, RedirectStandardInput = true };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add(script);
        using var parent = Process.Start(psi)!;
        int childPid = int.Parse(parent.StandardOutput.ReadLine()!);
        try
        {
            using var vm = GpuVm.Connect(sock, new GpuVmOptions { Display = new DisplayServerOptions { Width = 64, Height = 64 } });
            Assert.True(vm.WaitForDisplayReady(TimeSpan.FromSeconds(10)));
            Assert.True(vm.Driver.GetDisplayInfo().IsOk);
        }
        finally
        {
            try { Process.GetProcessById(childPid).Kill(); } catch (ArgumentException) { }
            parent.WaitForExit(10_000);
        }
    }

    [Fact]
    public void FrontEndSubcommand_DrawsBarsThroughOurBackend()
    {
        using var b = BackendProcess.Start(BackendKind.Ours);
        using var dir = new TempDir();
        var (code, stdout, stderr) = Run("frontend", "--socket", b.SocketPath, "--size", "320x200", "--png", dir.File("bars.png"));
        Assert.True(code == 0, stdout + stderr);
        var png = File.ReadAllBytes(dir.File("bars.png"));
        Assert.Equal(0x89, png[0]);
        Assert.Equal((byte)'P', png[1]);
    }
}
