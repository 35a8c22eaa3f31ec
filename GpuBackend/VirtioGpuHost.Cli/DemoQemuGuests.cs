using System.Diagnostics;
using Microsoft.Extensions.Logging;
using VirtioGpuHost.Compositor.Core.Layout;

namespace VirtioGpuHost.Cli;

/// <summary>
/// `demo --qemu`: real Linux guests in QEMU 10 (the qemu-guest-e2e recipe, set up by
/// scripts/setup-deps.sh) instead of the simulated ones. Each guest's vhost-user-gpu device
/// connects to its VM's compositor socket (the recipe's "back-end command" only links its socket
/// path to ours, as CompositorQemuTests does); HOLD_UNTIL_FILE keeps each guest up with its last
/// picture until the demo ends. The cluster and camera animate (fbbars' anim pattern), the
/// infotainment shows the gradient, the app VM floods frames as fast as it can and then holds a
/// frozen picture, so its watchdog fires; the camera stops after a while and the infotainment returns.
/// </summary>
internal sealed class DemoQemuGuests : IDisposable
{
    private readonly List<(string Vm, Process Process)> _guests = new();
    private readonly string _hold;
    private readonly ILogger _log;

    private DemoQemuGuests(string hold, ILogger log)
    {
        _hold = hold;
        _log = log;
    }

    /// <summary>The recipe and its work directory, or why they are missing.</summary>
    public static bool TryFindRecipe(out string recipe, out string workDir, out string error)
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "VirtioGpuHost.sln"))) dir = dir.Parent;
        string root = dir?.FullName ?? Environment.CurrentDirectory;
        recipe = Path.Combine(root, "tests", "e2e", "qemu-guest-e2e");
        workDir = Environment.GetEnvironmentVariable("QE2E_WORKDIR") ?? Path.Combine(root, ".cache", "qe2e");
        error = "";
        if (!File.Exists(Path.Combine(recipe, "run-guest.sh"))) error = $"{recipe}/run-guest.sh not found (run the demo from the repository)";
        else if (!File.Exists(Path.Combine(workDir, "kernel.env")) || !File.Exists(Path.Combine(workDir, "qemu10.env")))
            error = $"the qemu-guest-e2e work directory {workDir} is not set up: run scripts/setup-deps.sh (as root, needs the network once)";
        return error.Length == 0;
    }

    public static DemoQemuGuests Start(LayoutConfig layout, string recipe, string workDir, string tempDir, string outDir, ILogger log)
    {
        var guests = new DemoQemuGuests(Path.Combine(tempDir, "release-guests"), log);
        // (vm, pattern, frames, fps): a day of animation for the cluster; a burst for the app VM.
        foreach (var (vm, pattern, frames, fps) in new[] { ("cluster", "anim", 2_000_000, 30), ("ivi", "gradient", 1, 0), ("apps", "anim", 400, 0), ("camera", "anim", 600, 30) })
        {
            if (layout.Vm(vm) is not { } config) continue;
            string dir = Path.Combine(outDir, "qemu-" + vm);
            Directory.CreateDirectory(dir);
            var psi = new ProcessStartInfo(Path.Combine(recipe, "run-guest.sh")) { RedirectStandardOutput = true, RedirectStandardError = true };
            psi.ArgumentList.Add(workDir);
            psi.ArgumentList.Add(dir);
            psi.Environment["BACKEND_CMD"] = $"ln -s '{config.Socket}' \"$GPU_SOCK\" && exec sleep 86400";
            psi.Environment["PATTERN"] = pattern;
            psi.Environment["FRAMES"] = frames.ToString(System.Globalization.CultureInfo.InvariantCulture);
            psi.Environment["FPS"] = fps.ToString(System.Globalization.CultureInfo.InvariantCulture);
            psi.Environment["CHECK"] = "none"; // the compositor is the display
            psi.Environment["PROXY"] = "0";
            psi.Environment["TIMEOUT"] = "86400";
            psi.Environment["HOLD_UNTIL_FILE"] = guests._hold;
            var p = Process.Start(psi)!;
            p.OutputDataReceived += (_, e) => { if (e.Data is { Length: > 0 } line) log.LogDebug("qemu {Vm}: {Line}", vm, line); };
            p.ErrorDataReceived += (_, e) => { if (e.Data is { Length: > 0 } line) log.LogInformation("qemu {Vm}: {Line}", vm, line); };
            p.BeginOutputReadLine();
            p.BeginErrorReadLine();
            guests._guests.Add((vm, p));
            log.LogInformation("demo: QEMU guest for vm \"{Vm}\" starting ({Pattern}, evidence in {Dir})", vm, pattern, dir);
        }
        return guests;
    }

    public void Dispose()
    {
        try { File.WriteAllText(_hold, "done"); } catch (IOException) { }
        foreach (var (vm, p) in _guests)
        {
            if (!p.WaitForExit(TimeSpan.FromSeconds(30)))
            {
                _log.LogWarning("demo: QEMU guest \"{Vm}\" did not stop; killing it", vm);
                p.Kill(entireProcessTree: true);
            }
            p.Dispose();
        }
    }
}
