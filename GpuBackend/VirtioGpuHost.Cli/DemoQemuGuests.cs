using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.Logging;
using VirtioGpuHost.Compositor;
using VirtioGpuHost.Compositor.Core.Layout;

namespace VirtioGpuHost.Cli;

/// <summary>
/// `demo --qemu`: real Linux guests in QEMU 10 (the qemu-guest-e2e recipe, set up by
/// scripts/setup-deps.sh) instead of the simulated ones. Each guest's vhost-user-gpu device
/// connects to its VM's compositor socket (the recipe's "back-end command" only links its socket
/// path to ours, as CompositorQemuTests does); HOLD_UNTIL_FILE keeps each guest up with its last
/// picture until the demo ends. The recipe's patterns: the cluster animates (`anim` at 30 fps),
/// the infotainment shows the `gradient` and holds it (a static page), the app VM draws `bars`
/// at 60 fps for --flood-for seconds and then holds a frozen picture, so its watchdog fires; the
/// camera (`anim`) preempts the infotainment for about 10 s, then stops and the infotainment returns.
/// Stopping the demo (duration, SIGTERM, Ctrl-C) powers every guest off, and kills what is left
/// after 30 s; a guest whose demo died without that powers itself off within a second or two.
/// </summary>
internal sealed class DemoQemuGuests : IDisposable
{
    private readonly List<(string Vm, Process Process)> _guests = new();
    private readonly string _hold;
    private readonly ILogger _log;
    private readonly CancellationTokenSource _stop = new();
    private Thread? _firstFrames;

    private DemoQemuGuests(string hold, ILogger log)
    {
        _hold = hold;
        _log = log;
    }

    /// <summary>What each VM's guest draws: the recipe's pattern, frames, pace.</summary>
    public static IReadOnlyList<(string Vm, string Pattern, int Frames, int Fps)> Plan(double floodSeconds) =>
    [
        ("cluster", "anim", 100_000_000, 30), // ~38 days of animation
        ("ivi", "gradient", 1, 0),
        ("apps", "bars", Math.Max(1, (int)Math.Round(floodSeconds * 60)), 60),
        ("camera", "anim", 300, 30),
    ];

    /// <summary>
    /// The demo layout for real guests: TCG guests on a busy host pace their frames unevenly, so
    /// the animated VMs' watchdogs get 500 ms instead of the simulated guests' 40..200 ms (a
    /// frozen guest is still caught within a second); the infotainment guest draws its page once
    /// and holds it, so its watchdog waits a minute.
    /// </summary>
    public static LayoutConfig Adapt(LayoutConfig layout) => layout with
    {
        Vms = layout.Vms.Select(v => v.Name switch
        {
            "ivi" => v with { FramePeriod = TimeSpan.FromMilliseconds(LayoutLoader.MaxFramePeriodMs) },
            _ when v.FramePeriod < TimeSpan.FromMilliseconds(500) => v with { FramePeriod = TimeSpan.FromMilliseconds(500) },
            _ => v,
        }).ToList(),
    };

    /// <summary>The recipe and its work directory, or why they are missing.</summary>
    public static bool TryFindRecipe(out string recipe, out string workDir, out string error)
    {
        string root = FindRepo(AppContext.BaseDirectory) ?? FindRepo(Environment.CurrentDirectory) ?? Environment.CurrentDirectory;
        recipe = Path.Combine(root, "tests", "e2e", "qemu-guest-e2e");
        workDir = Environment.GetEnvironmentVariable("QE2E_WORKDIR") ?? Path.Combine(root, ".cache", "qe2e");
        error = "";
        if (!File.Exists(Path.Combine(recipe, "run-guest.sh"))) error = $"{recipe}/run-guest.sh not found (run the demo from the repository)";
        else if (!File.Exists(Path.Combine(workDir, "kernel.env")) || !File.Exists(Path.Combine(workDir, "qemu10.env")))
            error = $"the qemu-guest-e2e work directory {workDir} is not set up: run scripts/setup-deps.sh (as root, needs the network once)";
        return error.Length == 0;
    }

    private static string? FindRepo(string start)
    {
        var dir = new DirectoryInfo(start);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "VirtioGpuHost.sln"))) dir = dir.Parent;
        return dir?.FullName;
    }

    public static DemoQemuGuests Start(CompositorHost host, string recipe, string workDir, string tempDir, string outDir, double floodSeconds, ILogger log)
    {
        var guests = new DemoQemuGuests(Path.Combine(tempDir, "release-guests"), log);
        var started = Stopwatch.StartNew();
        foreach (var (vm, pattern, frames, fps) in Plan(floodSeconds))
        {
            if (host.Layout.Vm(vm) is not { } config) continue;
            using var scope = log.BeginScope(new Dictionary<string, object> { ["vm"] = vm });
            string dir = Path.Combine(outDir, "qemu-" + vm);
            Directory.CreateDirectory(dir);
            // bash passes SIGTERM on to run-guest.sh (which then stops QEMU and its back-end
            // command) and watches the demo: should the demo die without releasing its guests,
            // the hold file is written anyway and a guest still drawing is stopped.
            var psi = new ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true };
            psi.ArgumentList.Add("-c");
            psi.ArgumentList.Add("""
                "$0" "$1" "$2" & g=$!
                trap 'kill -TERM "$g" 2>/dev/null' TERM
                while kill -0 "$g" 2>/dev/null; do
                  if ! kill -0 "$DEMO_PID" 2>/dev/null; then : > "$HOLD_UNTIL_FILE"; sleep 3; kill -TERM "$g" 2>/dev/null; fi
                  sleep 1
                done
                wait "$g"
                """);
            psi.ArgumentList.Add(Path.Combine(recipe, "run-guest.sh"));
            psi.ArgumentList.Add(workDir);
            psi.ArgumentList.Add(dir);
            psi.Environment["DEMO_PID"] = Environment.ProcessId.ToString(CultureInfo.InvariantCulture);
            psi.Environment["BACKEND_CMD"] = $"ln -s '{config.Socket}' \"$GPU_SOCK\" && exec sleep 86400";
            psi.Environment["PATTERN"] = pattern;
            psi.Environment["FRAMES"] = frames.ToString(CultureInfo.InvariantCulture);
            psi.Environment["FPS"] = fps.ToString(CultureInfo.InvariantCulture);
            psi.Environment["DAMAGE"] = pattern == "anim" ? "rect" : "full";
            psi.Environment["CHECK"] = "none"; // the compositor is the display
            psi.Environment["PROXY"] = "0";
            psi.Environment["TIMEOUT"] = "86400";
            psi.Environment["HOLD_UNTIL_FILE"] = guests._hold;
            var p = Process.Start(psi)!;
            p.OutputDataReceived += (_, e) => { if (e.Data is { Length: > 0 } line) log.LogInformation("QEMU guest: {Line}", line); };
            p.ErrorDataReceived += (_, e) => { if (e.Data is { Length: > 0 } line) log.LogWarning("QEMU guest: {Line}", line); };
            p.BeginOutputReadLine();
            p.BeginErrorReadLine();
            guests._guests.Add((vm, p));
            log.LogInformation("demo: QEMU guest for vm \"{Vm}\" starting ({Pattern}, {Frames} frames at {Fps}; evidence in {Dir})",
                vm, pattern, frames, fps == 0 ? "full speed" : fps + " fps", dir);
        }
        guests._firstFrames = new Thread(() => guests.ReportFirstFrames(host, started)) { IsBackground = true, Name = "demo first frames" };
        guests._firstFrames.Start();
        return guests;
    }

    /// <summary>Logs how long each guest took from QEMU's start to its first frame on the output.</summary>
    private void ReportFirstFrames(CompositorHost host, Stopwatch started)
    {
        var waiting = _guests.Select(g => g.Vm).ToHashSet();
        while (waiting.Count > 0 && !_stop.Token.WaitHandle.WaitOne(50))
        {
            foreach (var vm in waiting.ToList())
            {
                if (host.Store.FramesOf(vm) == 0) continue;
                waiting.Remove(vm);
                using var scope = _log.BeginScope(new Dictionary<string, object> { ["vm"] = vm });
                _log.LogInformation("demo: vm \"{Vm}\": first frame from its Linux guest {Seconds:0.0} s after QEMU started", vm, started.Elapsed.TotalSeconds);
            }
        }
    }

    [System.Runtime.InteropServices.DllImport("libc", SetLastError = true)]
    private static extern int kill(int pid, int sig);

    /// <summary>
    /// Stops every guest: the hold file releases those that finished drawing (they power off);
    /// those still drawing (the cluster animates until the end) get SIGTERM, on which run-guest.sh
    /// stops QEMU and its back-end command; whatever is left after 20 s is killed.
    /// </summary>
    public void Dispose()
    {
        _stop.Cancel();
        try { File.WriteAllText(_hold, "done"); } catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        var clock = Stopwatch.StartNew();
        bool Wait(Process p, TimeSpan until)
        {
            var left = until - clock.Elapsed;
            return p.WaitForExit(left > TimeSpan.Zero ? left : TimeSpan.Zero);
        }
        foreach (var (_, p) in _guests)
            if (!Wait(p, TimeSpan.FromSeconds(3))) kill(p.Id, 15);
        foreach (var (vm, p) in _guests)
        {
            if (!Wait(p, TimeSpan.FromSeconds(20)))
            {
                _log.LogWarning("demo: QEMU guest \"{Vm}\" did not stop; killing it", vm);
                p.Kill(entireProcessTree: true);
                p.WaitForExit(TimeSpan.FromSeconds(5));
            }
            else
            {
                p.WaitForExit(); // drain its output
            }
            p.Dispose();
        }
        _firstFrames?.Join(TimeSpan.FromSeconds(1));
        _stop.Dispose();
        if (_guests.Count > 0) _log.LogInformation("demo: {Count} QEMU guests stopped in {Seconds:0.0} s", _guests.Count, clock.Elapsed.TotalSeconds);
    }
}
