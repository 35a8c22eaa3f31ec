using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using VirtioGpuHost.Cli.Bench;

namespace VirtioGpuHost.Cli;

/// <summary>
/// `virtio-gpu-host bench`: our back-end and QEMU's C back-end side by side in one run,
/// each driven through the reference front-end over its real socket (see BackendBenchmark).
/// </summary>
internal static class BenchCommand
{
    public const string CBackend72 = "/usr/lib/qemu/vhost-user-gpu";

    public static Command Build()
    {
        var size = new Option<string>("--size") { Description = "Frame size WxH", DefaultValueFactory = _ => "1920x1080" };
        var seconds = new Option<double>("--seconds") { Description = "Measured seconds per back-end and variant", DefaultValueFactory = _ => 5 };
        var maxFrames = new Option<int>("--max-frames") { Description = "Stop a measurement after this many frames", DefaultValueFactory = _ => 100_000 };
        var warmup = new Option<int>("--warmup") { Description = "Unmeasured frames first (JIT, caches)", DefaultValueFactory = _ => 200 };
        var damage = new Option<uint>("--damage") { Description = "Side of the square damage rect of the damage variant", DefaultValueFactory = _ => 64 };
        var rounds = new Option<int>("--rounds") { Description = "Alternate the back-ends this many times (results are the median round)", DefaultValueFactory = _ => 3 };
        var cBackend = new Option<string[]>("--c-backend") { Description = "C back-ends to compare (default: Debian's, and QEMU 10's if the e2e setup unpacked it)", AllowMultipleArgumentsPerToken = true };
        var markdown = new Option<string?>("--markdown") { Description = "Append the result table to this Markdown file" };
        var json = new Option<string?>("--json") { Description = "Write all results as JSON" };

        var cmd = new Command("bench", "Frames per second, latency, CPU per frame and RSS of our back-end vs QEMU's C back-end")
        {
            size, seconds, maxFrames, warmup, damage, rounds, cBackend, markdown, json,
        };
        cmd.SetAction(parse =>
        {
            var mode = Device.OutputMode.Parse(parse.GetValue(size)!);
            var targets = new List<BenchTarget>
            {
                new("ours", Environment.ProcessPath!, Environment.ProcessPath!.EndsWith("dotnet", StringComparison.Ordinal)
                    ? [typeof(BenchCommand).Assembly.Location] : []),
            };
            var cs = parse.GetValue(cBackend) is { Length: > 0 } given ? given : DefaultCBackends();
            foreach (var c in cs)
            {
                if (File.Exists(c)) targets.Add(new BenchTarget(CName(c), c, []));
                else Console.Error.WriteLine($"bench: {c} not found; skipping it");
            }
            var variants = new[] { mode.Width, parse.GetValue(damage) };
            var all = new List<BenchResult>();
            for (int round = 0; round < parse.GetValue(rounds); round++)
                foreach (var v in variants)
                    foreach (var t in targets)
                    {
                        var r = BackendBenchmark.Run(t, mode.Width, mode.Height, v, parse.GetValue(warmup), TimeSpan.FromSeconds(parse.GetValue(seconds)), parse.GetValue(maxFrames));
                        Console.Error.WriteLine($"round {round + 1}: {r.Backend,-10} {r.Variant,-18} {r.FramesPerSecond,8:F1} fps  p50 {r.LatencyP50Ms:F3} ms  p99 {r.LatencyP99Ms:F3} ms  cpu {r.CpuMsPerFrame:F3} ms/frame  rss {r.RssKb / 1024} MiB");
                        all.Add(r);
                    }
            var medians = all.GroupBy(r => (r.Backend, r.Variant))
                .Select(g => g.OrderBy(r => r.FramesPerSecond).ElementAt(g.Count() / 2)).ToList();
            string table = Table(medians, parse.GetValue(rounds));
            Console.WriteLine(table);
            if (parse.GetValue(markdown) is string md) File.AppendAllText(md, table + Environment.NewLine);
            if (parse.GetValue(json) is string js) File.WriteAllText(js, JsonSerializer.Serialize(all, new JsonSerializerOptions { WriteIndented = true }));
            return 0;
        });
        cmd.Subcommands.Add(BuildWayland());
        cmd.Subcommands.Add(BuildFairness());
        return cmd;
    }

    /// <summary>`bench fairness`: four VMs on one compositor, one flooding; the others' frames/s, latency and the critical zone's deadlines, policy off and on.</summary>
    private static Command BuildFairness()
    {
        var seconds = new Option<double>("--seconds") { Description = "Measured seconds per phase (policy, flood mode, round)", DefaultValueFactory = _ => 5 };
        var rounds = new Option<int>("--rounds") { Description = "Rounds (each: a host per policy, every flood mode in turn); results are medians", DefaultValueFactory = _ => 3 };
        var policies = new Option<string>("--policy") { Description = "Fairness policies to measure: off, on or both", DefaultValueFactory = _ => "both" };
        var floods = new Option<string>("--flood") { Description = "Flood modes, comma-separated: none, frames, invalid", DefaultValueFactory = _ => "none,frames,invalid" };
        var floodThreads = new Option<int>("--flood-connections") { Description = "Connections the untrusted VM floods over at once (one guest thread each; at most 8 are served)", DefaultValueFactory = _ => 4 };
        var markdown = new Option<string?>("--markdown") { Description = "Append the result table to this Markdown file" };
        var verbose = new Option<bool>("--verbose") { Description = "Log the compositor's information lines" };
        var cmd = new Command("fairness", "4 VMs on one compositor (cluster critical 60 fps, ivi 60, camera 30, apps untrusted flooding): frames/s, latency, missed output frames and critical deadlines, with and without the fairness policy")
        {
            seconds, rounds, policies, floods, floodThreads, markdown, verbose,
        };
        cmd.SetAction(parse =>
        {
            bool[] pols = parse.GetValue(policies) switch
            {
                "off" => [false],
                "on" => [true],
                "both" => [false, true],
                var other => throw new ArgumentException($"--policy must be off, on or both, got \"{other}\""),
            };
            var modes = new List<FloodMode>();
            foreach (var f in parse.GetValue(floods)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                if (!Enum.TryParse<FloodMode>(f, ignoreCase: true, out var m) || !Enum.IsDefined(m)) { Console.Error.WriteLine($"bench fairness: unknown flood mode \"{f}\" (none, frames, invalid)"); return 2; }
                modes.Add(m);
            }
            int n = parse.GetValue(rounds);
            var secs = TimeSpan.FromSeconds(parse.GetValue(seconds));
            using var loggers = Microsoft.Extensions.Logging.LoggerFactory.Create(b =>
            {
                b.SetMinimumLevel(parse.GetValue(verbose) ? Microsoft.Extensions.Logging.LogLevel.Information : Microsoft.Extensions.Logging.LogLevel.Warning);
                b.AddConsole(o => o.LogToStandardErrorThreshold = Microsoft.Extensions.Logging.LogLevel.Trace);
            });
            var all = new List<FairnessPhaseResult>();
            for (int round = 0; round < n; round++)
                foreach (var p in pols)
                    foreach (var r in FairnessBenchmark.RunHost(p, modes, Math.Clamp(parse.GetValue(floodThreads), 1, Backend.GpuBackendServer.MaxConcurrentConnections), round, secs, TimeSpan.FromSeconds(1), loggers))
                    {
                        Console.Error.WriteLine(FairnessBenchmark.Line(r));
                        all.Add(r);
                    }
            string table = FairnessBenchmark.Table(all, n, secs.TotalSeconds);
            Console.WriteLine(table);
            if (parse.GetValue(markdown) is string md) File.AppendAllText(md, table + Environment.NewLine);
            return 0;
        });
        return cmd;
    }

    /// <summary>`bench wayland`: weston-simple-shm through weston headless, our server directly and through cross-domain.</summary>
    private static Command BuildWayland()
    {
        var size = new Option<string>("--size") { Description = "Output size WxH (all servers)", DefaultValueFactory = _ => "1280x720" };
        var seconds = new Option<double>("--seconds") { Description = "Measured seconds per server and round", DefaultValueFactory = _ => 5 };
        var rounds = new Option<int>("--rounds") { Description = "Alternate the servers this many times (results are the median round)", DefaultValueFactory = _ => 3 };
        var markdown = new Option<string?>("--markdown") { Description = "Append the result table to this Markdown file" };
        var cmd = new Command("wayland", "weston-simple-shm frames/s and server CPU per frame: weston 10 headless vs our Wayland server, directly and through cross-domain")
        {
            size, seconds, rounds, markdown,
        };
        cmd.SetAction(parse =>
        {
            var mode = Device.OutputMode.Parse(parse.GetValue(size)!);
            foreach (var exe in new[] { "weston", "weston-simple-shm" })
                if (!File.Exists($"/usr/bin/{exe}")) { Console.Error.WriteLine($"bench wayland: /usr/bin/{exe} is missing (Debian package weston)"); return 1; }
            string self = Environment.ProcessPath!;
            string[] selfArgs = self.EndsWith("dotnet", StringComparison.Ordinal) ? [typeof(BenchCommand).Assembly.Location] : [];
            var servers = new[] { "weston-headless", "ours-direct", "ours-cross-domain" };
            var all = new List<WaylandBenchResult>();
            for (int round = 0; round < parse.GetValue(rounds); round++)
                foreach (var server in servers)
                {
                    var r = WaylandBenchmark.Run(server, self, selfArgs, (int)mode.Width, (int)mode.Height, TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(parse.GetValue(seconds)));
                    Console.Error.WriteLine($"round {round + 1}: {r.Server,-18} {r.FramesPerSecond,6:F1} fps  server {r.ServerCpuMsPerFrame:F3} ms/frame  guest side {r.GuestCpuMsPerFrame:F3} ms/frame  rss {r.ServerRssKb / 1024} MiB");
                    all.Add(r);
                }
            var medians = servers.Select(s => all.Where(r => r.Server == s).OrderBy(r => r.ServerCpuMsPerFrame).ElementAt(parse.GetValue(rounds) / 2)).ToList();
            string table = WaylandBenchmark.Table(medians, parse.GetValue(rounds), (int)mode.Width, (int)mode.Height);
            Console.WriteLine(table);
            if (parse.GetValue(markdown) is string md) File.AppendAllText(md, table + Environment.NewLine);
            return 0;
        });
        return cmd;
    }

    private static IEnumerable<string> DefaultCBackends()
    {
        yield return CBackend72;
        var qe2e = Environment.GetEnvironmentVariable("QE2E_WORKDIR") ?? Path.Combine(AppContext.BaseDirectory, "..", "..", ".cache", "qe2e");
        var c10 = Path.GetFullPath(Path.Combine(qe2e, "qemu10", "usr", "lib", "qemu", "vhost-user-gpu"));
        if (File.Exists(c10)) yield return c10;
    }

    private static string CName(string path) => path == CBackend72 ? "qemu-c-7.2" : path.Contains("qemu10", StringComparison.Ordinal) ? "qemu-c-10.0" : Path.GetFileName(path);

    private static string Table(List<BenchResult> results, int rounds)
    {
        var sb = new StringBuilder();
        var inv = CultureInfo.InvariantCulture;
        sb.AppendLine(inv, $"| variant | back-end | frames/s | p50 latency ms | p99 latency ms | back-end CPU ms/frame | RSS MiB (peak) |");
        sb.AppendLine("| --- | --- | ---: | ---: | ---: | ---: | ---: |");
        foreach (var g in results.GroupBy(r => r.Variant))
        {
            var ours = g.FirstOrDefault(r => r.Backend == "ours");
            foreach (var r in g)
            {
                string ratio = ours is null || r == ours ? "" : string.Format(inv, " (ours: {0:F2}x fps, {1:F2}x CPU)", ours.FramesPerSecond / r.FramesPerSecond, ours.CpuMsPerFrame / r.CpuMsPerFrame);
                sb.AppendLine(string.Format(inv, "| {0} | {1}{2} | {3:F1} | {4:F3} | {5:F3} | {6:F3} | {7} ({8}) |",
                    r.Variant, r.Backend, ratio, r.FramesPerSecond, r.LatencyP50Ms, r.LatencyP99Ms, r.CpuMsPerFrame, r.RssKb / 1024, r.HwmKb / 1024));
            }
        }
        sb.Append(inv, $"\nMedian of {rounds} alternating rounds per row; frames are serial (one TRANSFER+FLUSH in flight).");
        return sb.ToString();
    }
}
