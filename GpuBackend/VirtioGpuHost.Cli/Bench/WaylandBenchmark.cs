using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace VirtioGpuHost.Cli.Bench;

/// <summary>One measurement: a Wayland client's frames against one server set-up.</summary>
internal sealed record WaylandBenchResult(string Server, double FramesPerSecond, double ServerCpuMsPerFrame, double GuestCpuMsPerFrame, long ServerRssKb);

/// <summary>
/// `virtio-gpu-host bench wayland`: weston-simple-shm against three servers, side by side in one
/// run: weston 10's headless back-end (pixman renderer, the reference), our compositor's built-in
/// Wayland server with the client connected directly (`serve`, a VM's wayland_socket), and the
/// same through cross-domain (the client talks to the guest-side proxy of `frontend
/// --wayland-proxy`, which carries it over a virtio-gpu cross-domain context to `serve`).
/// All servers present at 60 Hz on a WxH output, so frames/s is bounded by the frame clock;
/// the figure that compares is the servers' CPU per client frame. Frames are the client's own
/// wl_surface.commit requests (WAYLAND_DEBUG=client, the same cost in every set-up). CPU is utime + stime of each
/// process (10-ms ticks, exited threads included).
/// </summary>
internal static class WaylandBenchmark
{
    public static WaylandBenchResult Run(string server, string self, string[] selfArgs, int width, int height, TimeSpan warmup, TimeSpan measure)
    {
        var dir = Directory.CreateTempSubdirectory("vgh-wlbench-").FullName;
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var procs = new List<Process>();
        try
        {
            Process serverProc;
            Process? guestProc = null;
            string clientSocket;
            if (server == "weston-headless")
            {
                serverProc = Start("weston", $"--backend=headless-backend.so --use-pixman --width={width} --height={height} --socket=wl-bench --idle-time=0 --no-config", dir, procs);
                clientSocket = Path.Combine(dir, "wl-bench");
            }
            else
            {
                string toml = Path.Combine(dir, "bench.toml");
                File.WriteAllText(toml, $$"""
                    [layout]
                    renderer = "cpu"
                    [[output]]
                    name = "main"
                    width = {{width}}
                    height = {{height}}
                    refresh_hz = 60
                    [[zone]]
                    name = "apps"
                    output = "main"
                    rect = [0, 0, {{width}}, {{height}}]
                    class = "normal"
                    [[vm]]
                    name = "apps"
                    socket = "{{dir}}/apps.sock"
                    wayland_socket = "{{dir}}/apps-wayland"
                    label = "APPS"
                    label_color = "#303030"
                    class = "normal"
                    frame_period_ms = 60000
                    host_visible_mib = 64
                    [[placement]]
                    vm = "apps"
                    app_id = "*"
                    zone = "apps"
                    scale = "none"
                    """);
                serverProc = Start(self, string.Join(' ', selfArgs.Append("serve").Append("--config").Append(toml).Append("--no-control")), dir, procs);
                WaitForFile(Path.Combine(dir, "apps.sock"), serverProc);
                clientSocket = Path.Combine(dir, "apps-wayland");
                if (server == "ours-cross-domain")
                {
                    clientSocket = Path.Combine(dir, "guest-wayland");
                    guestProc = Start(self, string.Join(' ', selfArgs.Append("frontend").Append("-s").Append($"{dir}/apps.sock").Append("--wayland-proxy").Append(clientSocket)), dir, procs);
                }
            }
            WaitForFile(clientSocket, serverProc);

            long commits = 0;
            var client = new ProcessStartInfo("weston-simple-shm") { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
            client.Environment["XDG_RUNTIME_DIR"] = dir;
            client.Environment["WAYLAND_DISPLAY"] = clientSocket;
            client.Environment["WAYLAND_DEBUG"] = "client";
            client.Environment.Remove("DISPLAY");
            var cp = new Process { StartInfo = client };
            cp.ErrorDataReceived += (_, e) =>
            {
                if (e.Data is { } l && l.Contains("-> wl_surface@", StringComparison.Ordinal) && l.Contains(".commit(", StringComparison.Ordinal)) Interlocked.Increment(ref commits);
            };
            cp.OutputDataReceived += (_, _) => { };
            cp.Start();
            procs.Add(cp);
            cp.BeginErrorReadLine();
            cp.BeginOutputReadLine();

            Thread.Sleep(warmup);
            if (cp.HasExited) throw new InvalidOperationException($"weston-simple-shm exited (code {cp.ExitCode}) against {server}");
            long c0 = Interlocked.Read(ref commits);
            var s0 = ProcessStats.CpuTimeWithExitedThreads(serverProc.Id);
            var g0 = guestProc is null ? TimeSpan.Zero : ProcessStats.CpuTimeWithExitedThreads(guestProc.Id);
            var sw = Stopwatch.StartNew();
            Thread.Sleep(measure);
            long frames = Interlocked.Read(ref commits) - c0;
            var serverCpu = ProcessStats.CpuTimeWithExitedThreads(serverProc.Id) - s0;
            var guestCpu = guestProc is null ? TimeSpan.Zero : ProcessStats.CpuTimeWithExitedThreads(guestProc.Id) - g0;
            double secs = sw.Elapsed.TotalSeconds;
            var (rss, _) = ProcessStats.Memory(serverProc.Id);
            if (frames <= 0) throw new InvalidOperationException($"no frames against {server}");
            return new WaylandBenchResult(server, frames / secs, serverCpu.TotalMilliseconds / frames, guestCpu.TotalMilliseconds / frames, rss);
        }
        finally
        {
            foreach (var p in Enumerable.Reverse(procs))
            {
                try
                {
                    if (!p.HasExited) { _ = Tmds.Linux.LibC.kill(p.Id, 15); if (!p.WaitForExit(5000)) p.Kill(entireProcessTree: true); }
                    p.WaitForExit();
                }
                catch (InvalidOperationException) { }
                p.Dispose();
            }
            try { Directory.Delete(dir, recursive: true); } catch (IOException) { }
        }
    }

    private static Process Start(string exe, string args, string runtimeDir, List<Process> procs)
    {
        var psi = new ProcessStartInfo(exe, args) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        psi.Environment["XDG_RUNTIME_DIR"] = runtimeDir;
        psi.Environment.Remove("DISPLAY");
        psi.Environment.Remove("WAYLAND_DISPLAY");
        var p = Process.Start(psi) ?? throw new InvalidOperationException($"cannot start {exe}");
        procs.Add(p);
        p.ErrorDataReceived += (_, _) => { };
        p.OutputDataReceived += (_, _) => { };
        p.BeginErrorReadLine();
        p.BeginOutputReadLine();
        return p;
    }

    private static void WaitForFile(string path, Process owner)
    {
        var sw = Stopwatch.StartNew();
        while (!File.Exists(path))
        {
            if (owner.HasExited) throw new InvalidOperationException($"{owner.StartInfo.FileName} exited (code {owner.ExitCode}) before {path} appeared");
            if (sw.Elapsed > TimeSpan.FromSeconds(60)) throw new TimeoutException($"{path} did not appear");
            Thread.Sleep(50);
        }
    }

    public static string Table(IReadOnlyList<WaylandBenchResult> results, int rounds, int width, int height)
    {
        var inv = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        sb.AppendLine("| server | frames/s | server CPU ms/frame | guest-side CPU ms/frame | server RSS MiB |");
        sb.AppendLine("| --- | ---: | ---: | ---: | ---: |");
        var weston = results.FirstOrDefault(r => r.Server == "weston-headless");
        foreach (var r in results)
        {
            string ratio = weston is null || r == weston ? "" : string.Format(inv, " ({0:F2}x weston's CPU)", r.ServerCpuMsPerFrame / weston.ServerCpuMsPerFrame);
            sb.AppendLine(string.Format(inv, "| {0}{1} | {2:F1} | {3:F3} | {4} | {5} |", r.Server, ratio, r.FramesPerSecond, r.ServerCpuMsPerFrame,
                r.Server == "ours-cross-domain" ? r.GuestCpuMsPerFrame.ToString("F3", inv) : "-", r.ServerRssKb / 1024));
        }
        sb.Append(inv, $"\nweston-simple-shm (250x250, animated) on a {width}x{height} 60 Hz output; median of {rounds} alternating rounds per row.");
        return sb.ToString();
    }
}
