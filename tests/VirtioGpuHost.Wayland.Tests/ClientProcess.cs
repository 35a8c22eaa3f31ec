using System.Diagnostics;
using System.Text;

namespace VirtioGpuHost.Wayland.Tests;

/// <summary>A real Wayland client run against a <see cref="TestServer"/>, with its own 0700 XDG_RUNTIME_DIR.</summary>
internal sealed class ClientProcess : IDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output = new();
    private readonly string _runtimeDir;

    private ClientProcess(Process p, string runtimeDir)
    {
        _process = p;
        _runtimeDir = runtimeDir;
    }

    /// <summary>The program's path, or a skip naming it when it is not installed.</summary>
    public static string Require(string program, string package)
    {
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "/usr/bin").Split(':').Append("/usr/bin"))
        {
            var p = Path.Combine(dir, program);
            if (File.Exists(p)) return p;
        }
        Assert.Skip($"{program} is not installed (Debian package {package}); this real-client test did not run");
        throw new InvalidOperationException();
    }

    public static ClientProcess Start(string exe, string args, TestServer server)
    {
        var dir = Directory.CreateTempSubdirectory("wl-client-").FullName;
        File.SetUnixFileMode(dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var psi = new ProcessStartInfo(exe, args)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        psi.Environment["XDG_RUNTIME_DIR"] = dir;
        psi.Environment["WAYLAND_DISPLAY"] = server.SocketPath; // absolute: libwayland uses it as is
        psi.Environment.Remove("DISPLAY");
        psi.Environment.Remove("WAYLAND_DEBUG");
        psi.Environment["HOME"] = dir;
        var p = new Process { StartInfo = psi };
        var cp = new ClientProcess(p, dir);
        p.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (cp._output) cp._output.AppendLine(e.Data); };
        p.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (cp._output) cp._output.AppendLine(e.Data); };
        p.Start();
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        return cp;
    }

    public string Output { get { lock (_output) return _output.ToString(); } }
    public bool HasExited => _process.HasExited;
    public int ExitCode => _process.ExitCode;
    public int Pid => _process.Id;

    public bool WaitForExit(int ms)
    {
        if (!_process.WaitForExit(ms)) return false;
        _process.WaitForExit(); // drains the output readers
        return true;
    }

    /// <summary>Sends a signal (SIGINT = 2, SIGTERM = 15).</summary>
    public void Signal(int signal)
    {
        if (!_process.HasExited) _ = Tmds.Linux.LibC.kill(_process.Id, signal);
    }

    public void Dispose()
    {
        if (!_process.HasExited)
        {
            try { _process.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
            _process.WaitForExit(5000);
        }
        _process.Dispose();
        try { Directory.Delete(_runtimeDir, recursive: true); } catch (IOException) { }
    }
}
