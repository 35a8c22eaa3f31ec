using System.Diagnostics;
using System.Text;

namespace VirtioGpuHost.TestKit;

/// <summary>Which vhost-user-gpu back-end a test drives.</summary>
public enum BackendKind
{
    /// <summary>Ours: `virtio-gpu-host -s PATH`.</summary>
    Ours,
    /// <summary>QEMU's C back-end from Debian 12 (QEMU 7.2): `/usr/lib/qemu/vhost-user-gpu -s PATH`.</summary>
    QemuC,
    /// <summary>QEMU 10.0's C back-end from bookworm-backports (unpacked by the qemu-guest-e2e setup); offers EDID.</summary>
    QemuC10,
}

/// <summary>
/// A back-end started as its own process listening on a socket, the way QEMU users start
/// it. Stderr is captured. Disposal kills it and removes the socket.
/// </summary>
public sealed class BackendProcess : IDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output = new();
    private readonly TempDir _dir;

    private BackendProcess(BackendKind kind, Process process, TempDir dir, string socket)
    {
        Kind = kind;
        _process = process;
        _dir = dir;
        SocketPath = socket;
    }

    public BackendKind Kind { get; }
    public string SocketPath { get; }
    public int Pid => _process.Id;
    public bool HasExited => _process.HasExited;

    public string Output { get { lock (_output) return _output.ToString(); } }

    public static BackendProcess Start(BackendKind kind, params string[] extraArgs)
    {
        if (kind == BackendKind.QemuC) Requires.File(TestPaths.CBackend, "QEMU's C back-end (Debian qemu-system-gui)");
        if (kind == BackendKind.QemuC10) Requires.File(TestPaths.CBackend10, "QEMU 10's C back-end (qemu-guest-e2e setup)");
        var dir = new TempDir();
        string socket = dir.File("gpu.sock");
        var psi = kind switch
        {
            BackendKind.Ours => new ProcessStartInfo("dotnet") { ArgumentList = { TestPaths.OurBackend } },
            BackendKind.QemuC => new ProcessStartInfo(TestPaths.CBackend),
            _ => new ProcessStartInfo(TestPaths.CBackend10),
        };
        psi.ArgumentList.Add("-s");
        psi.ArgumentList.Add(socket);
        foreach (var a in extraArgs) psi.ArgumentList.Add(a);
        psi.RedirectStandardError = true;
        psi.RedirectStandardOutput = true;
        psi.UseShellExecute = false;
        if (kind != BackendKind.Ours) psi.Environment["G_MESSAGES_DEBUG"] = "all";
        var p = Process.Start(psi) ?? throw new InvalidOperationException("could not start " + psi.FileName);
        var b = new BackendProcess(kind, p, dir, socket);
        p.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (b._output) b._output.AppendLine(e.Data); };
        p.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (b._output) b._output.AppendLine(e.Data); };
        p.BeginErrorReadLine();
        p.BeginOutputReadLine();
        var sw = Stopwatch.StartNew();
        while (!File.Exists(socket))
        {
            if (p.HasExited) throw new InvalidOperationException($"{kind} back-end exited with {p.ExitCode} before listening:\n{b.Output}");
            if (sw.Elapsed > TimeSpan.FromSeconds(30)) throw new TimeoutException($"{kind} back-end did not listen on {socket} within 30 s:\n{b.Output}");
            Thread.Sleep(10);
        }
        return b;
    }

    /// <summary>Open fds of the process (/proc/PID/fd), for leak checks.</summary>
    /// <summary>
    /// Open fds of the process, not counting files of loaded code (.dll, .so): the runtime opens an
    /// assembly or native library when it is first used, which is not a leak of the code under test.
    /// </summary>
    public int OpenFds => Directory.GetFiles($"/proc/{Pid}/fd").Count(f => !IsCodeFile(f));

    private static bool IsCodeFile(string fdLink)
    {
        string? target;
        try { target = new FileInfo(fdLink).LinkTarget; }
        catch (IOException) { return false; } // closed meanwhile
        return target is not null && (target.EndsWith(".dll", StringComparison.Ordinal) || target.EndsWith(".so", StringComparison.Ordinal) || target.Contains(".so.", StringComparison.Ordinal));
    }

    /// <summary>Mappings of the process (/proc/PID/maps lines), for leak checks.</summary>
    public int Mappings => File.ReadAllLines($"/proc/{Pid}/maps").Length;

    /// <summary>Lines of /proc/PID/maps that map a memfd whose name contains <paramref name="name"/>.</summary>
    public int MemfdMappings(string name) => File.ReadAllLines($"/proc/{Pid}/maps").Count(l => l.Contains("/memfd:" + name, StringComparison.Ordinal));

    public bool WaitForExit(TimeSpan timeout) => _process.WaitForExit(timeout);

    public void Dispose()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                _process.WaitForExit(5000);
            }
        }
        catch (InvalidOperationException) { }
        _process.Dispose();
        _dir.Dispose();
    }
}
