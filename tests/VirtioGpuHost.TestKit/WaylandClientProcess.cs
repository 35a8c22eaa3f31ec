using System.Diagnostics;
using System.Text;

namespace VirtioGpuHost.TestKit;

/// <summary>
/// A real Wayland client (weston's demo clients, wayland-info) started against a socket path,
/// with its own 0700 XDG_RUNTIME_DIR and an absolute WAYLAND_DISPLAY, output captured.
/// </summary>
public sealed class WaylandClientProcess : IDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output = new();
    private readonly string _runtimeDir;

    private WaylandClientProcess(Process p, string runtimeDir)
    {
        _process = p;
        _runtimeDir = runtimeDir;
    }

    /// <summary>The program's path, or a skip naming it and its Debian package when it is not installed.</summary>
    public static string Require(string program, string package = "weston")
    {
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "/usr/bin").Split(':').Append("/usr/bin"))
        {
            var p = Path.Combine(dir, program);
            if (File.Exists(p)) return p;
        }
        Assert.Skip($"{program} is not installed (Debian package {package}); this real-client test did not run");
        throw new InvalidOperationException();
    }

    public static WaylandClientProcess Start(string exe, string args, string socketPath, IReadOnlyDictionary<string, string>? env = null)
    {
        var dir = Directory.CreateTempSubdirectory("wl-client-").FullName;
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var psi = new ProcessStartInfo(exe, args) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.Environment["XDG_RUNTIME_DIR"] = dir;
        psi.Environment["WAYLAND_DISPLAY"] = socketPath; // absolute: libwayland uses it as is
        psi.Environment["HOME"] = dir;
        psi.Environment.Remove("DISPLAY");
        psi.Environment.Remove("WAYLAND_DEBUG");
        if (env is not null) foreach (var (k, v) in env) psi.Environment[k] = v;
        var p = new Process { StartInfo = psi };
        var cp = new WaylandClientProcess(p, dir);
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
