using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using Microsoft.Extensions.Logging;
using VirtioGpuHost.Compositor;
using VirtioGpuHost.Compositor.Core.Layout;
using VirtioGpuHost.Compositor.Core.Scene;
using VirtioGpuHost.Compositor.Rendering.Cpu;
using VirtioGpuHost.Device.Wire;
using VirtioGpuHost.FrontEnd;

namespace VirtioGpuHost.Cli.Bench;

/// <summary>How a flooding VM floods.</summary>
internal enum FloodMode
{
    /// <summary>No flood: the baseline.</summary>
    None,

    /// <summary>TRANSFER_TO_HOST_2D + RESOURCE_FLUSH of a full 1920x1080 frame, 4 frames per kick, back to back.</summary>
    Frames,

    /// <summary>Bursts of 120 RESOURCE_FLUSH naming a resource that does not exist (ERR_INVALID_RESOURCE_ID each).</summary>
    Invalid,
}

/// <summary>One well-behaved VM in one measured phase.</summary>
internal sealed record FairnessVmResult(string Vm, double TargetFps, double Fps, double LatencyP50Ms, double LatencyP99Ms);

/// <summary>One measured phase: a policy, a flood mode, a round.</summary>
internal sealed record FairnessPhaseResult(
    bool Policy, FloodMode Flood, int Round, double Seconds, IReadOnlyList<FairnessVmResult> Vms,
    double FloodCommandsPerSecond, double FloodMiBPerSecond, double OutputFps, long MissedTicks, double ComposeMsPerFrame,
    int CriticalFramesMissed, int CriticalFlushes, double LoadAverage, int Gen2Collections, double GcPauseMs);

/// <summary>
/// `bench fairness`: a serve-equivalent compositor host in this process (headless output at 60 Hz,
/// the real frame clock, the CPU renderer) with four VMs driven by the reference front-end over
/// their real vhost-user sockets: cluster (critical, 60 frames/s), ivi (normal, 60), camera
/// (normal, 30), each drawing changing content and presenting it with TRANSFER_TO_HOST_2D +
/// RESOURCE_FLUSH of its damage, paced; and apps (untrusted), which floods (<see cref="FloodMode"/>)
/// in some phases and is idle in others. One host per policy (the fairness policy off, then on),
/// phases of each flood mode alternate within it.
/// </summary>
/// <remarks>
/// <para>Latency is the guest's view: from the kick of a frame's TRANSFER + FLUSH until the flush's
/// response is back. A VM whose frame is late by more than a period drops the frames it missed
/// (a vsync'd guest), so lost time shows as a lower frame rate.</para>
/// <para>Critical frames missed: the frame clock's ticks lie on a grid (tick k due at epoch + k ×
/// period). A cluster flush taken by the store at time t is due at the first tick at or after t;
/// it is shown by the first composed frame that starts after t. Each tick from the due one up to
/// (not including) the tick of the frame that showed it is an output frame in which the cluster had
/// a flushed frame older than one output period that was not shown; the count is the number of
/// such ticks (each tick counted once however many flushes waited through it). Each miss is also
/// explained on stderr (the flush and the frames around its tick), and every phase reports the
/// process's blocking gen2 collections and GC pause time: a collection stops the frame thread too.</para>
/// </remarks>
internal static class FairnessBenchmark
{
    private const int OutputW = 2560, OutputH = 1080, Label = 28, Border = 2;
    private const uint FloodW = 1920, FloodH = 1080;

    private sealed record Drawer(string Vm, double Fps, uint DamageW, uint DamageH);

    private static readonly Drawer[] Drawers =
    [
        new("cluster", 60, 480, 270),
        new("ivi", 60, 640, 360),
        new("camera", 30, 0, 0), // 0 = its whole frame
    ];

    public static string Layout(string dir) => $$"""
        [layout]
        label_height = {{Label}}
        border_width = {{Border}}

        [[output]]
        name = "main"
        width = {{OutputW}}
        height = {{OutputH}}
        refresh_hz = 60

        [[zone]]
        name = "cluster"
        output = "main"
        rect = [0, 0, 1280, 1080]
        class = "critical"

        [[zone]]
        name = "ivi"
        output = "main"
        rect = [1280, 0, 1280, 540]
        class = "normal"

        [[zone]]
        name = "camera"
        output = "main"
        rect = [1280, 540, 640, 540]
        class = "normal"

        [[zone]]
        name = "apps"
        output = "main"
        rect = [1920, 540, 640, 540]
        class = "untrusted"

        [[vm]]
        name = "cluster"
        socket = "{{dir}}/cluster.sock"
        label = "CLUSTER"
        label_color = "#303030"
        class = "critical"
        frame_period_ms = 100
        fallback = "color:#400000"

        [[vm]]
        name = "ivi"
        socket = "{{dir}}/ivi.sock"
        label = "IVI"
        label_color = "#303030"
        class = "normal"
        frame_period_ms = 100

        [[vm]]
        name = "camera"
        socket = "{{dir}}/camera.sock"
        label = "CAMERA"
        label_color = "#303030"
        class = "normal"
        frame_period_ms = 100

        [[vm]]
        name = "apps"
        socket = "{{dir}}/apps.sock"
        label = "APPS"
        label_color = "#303030"
        class = "untrusted"
        frame_period_ms = 1000
        max_host_memory_mib = 64

        [[placement]]
        vm = "cluster"
        zone = "cluster"

        [[placement]]
        vm = "ivi"
        zone = "ivi"

        [[placement]]
        vm = "camera"
        zone = "camera"

        [[placement]]
        vm = "apps"
        zone = "apps"
        scale = "fit"
        """;

    /// <summary>Runs every flood mode in <paramref name="floods"/> for <paramref name="seconds"/> each, on one host with the policy on or off.</summary>
    public static List<FairnessPhaseResult> RunHost(bool policy, IReadOnlyList<FloodMode> floods, int floodThreads, int round, TimeSpan seconds, TimeSpan settle, ILoggerFactory loggers)
    {
        var dir = Directory.CreateTempSubdirectory("vgh-fair.").FullName;
        try
        {
            var load = LayoutLoader.Load(Layout(dir), "fairness.toml");
            if (load.Layout is not { } layout) throw new InvalidOperationException("bench layout rejected: " + load);
            using var renderer = new CpuRenderer();
            using var host = new CompositorHost(layout, renderer, loggers, new CompositorHostOptions { FrameClock = true, Fairness = policy });
            var flushes = new List<TimeSpan>();
            var frames = new List<TimeSpan>();
            long clusterSeen = 0;
            var clusterKey = new SurfaceKey("cluster", 0);
            host.Store.Changed += () =>
            {
                if (host.Store.Get(clusterKey) is not { } s) return;
                lock (flushes)
                {
                    if (s.Frames <= clusterSeen) return;
                    clusterSeen = s.Frames;
                    flushes.Add(s.LastFrame);
                }
            };
            host.Engine.FrameComposed += r => { lock (frames) frames.Add(r.At); };
            host.Start();

            using var stop = new CancellationTokenSource();
            var vms = new Dictionary<string, GpuVm>();
            var threads = new List<Thread>();
            var records = new Dictionary<string, List<(long Kick, long Done)>>();
            Exception? failure = null;
            try
            {
                foreach (var d in Drawers)
                {
                    var vm = GpuVm.Connect(layout.Vm(d.Vm)!.Socket, new GpuVmOptions { RamSize = 32UL << 20 });
                    vms[d.Vm] = vm;
                    var list = new List<(long, long)>();
                    records[d.Vm] = list;
                    var zone = layout.ContentRect(layout.Zone(d.Vm)!);
                    var t = new Thread(() =>
                    {
                        try { Draw(vm, d, (uint)zone.Width, (uint)zone.Height, list, stop.Token); }
                        catch (Exception e) when (!stop.IsCancellationRequested) { failure ??= e; }
                    }) { IsBackground = true, Name = $"guest {d.Vm}" };
                    threads.Add(t);
                }
                // The untrusted VM's VMM floods over several connections of its socket at once (up to
                // GpuBackendServer.MaxConcurrentConnections are served), one guest thread each.
                var flooders = new List<Flooder>();
                for (int i = 0; i < floodThreads; i++)
                {
                    var apps = GpuVm.Connect(layout.Vm("apps")!.Socket, new GpuVmOptions { RamSize = 48UL << 20, ControlQueueSize = 256 });
                    vms[$"apps{i}"] = apps;
                    var flooder = new Flooder(apps);
                    flooders.Add(flooder);
                    threads.Add(new Thread(() =>
                    {
                        try { flooder.Run(stop.Token); }
                        catch (Exception e) when (!stop.IsCancellationRequested) { failure ??= e; }
                    }) { IsBackground = true, Name = $"guest apps {i} (flooder)" });
                }
                long FloodCommands() => flooders.Sum(f => f.Commands);
                foreach (var t in threads) t.Start();

                var results = new List<FairnessPhaseResult>();
                Thread.Sleep(settle); // JIT, first frames
                foreach (var flood in floods)
                {
                    foreach (var fl in flooders) fl.Mode = flood;
                    Thread.Sleep(settle);
                    if (failure is not null) throw new InvalidOperationException("a guest failed", failure);
                    var h0 = host.Store.Now;
                    long g0 = Stopwatch.GetTimestamp();
                    long cmds0 = FloodCommands(), missed0 = host.MissedFrames, composed0 = host.Engine.Frames;
                    ulong copied0 = host.DeviceStats("apps")!.BytesCopied;
                    var compose0 = host.Engine.ComposeTime;
                    int gen2_0 = GC.CollectionCount(2);
                    var pause0 = GC.GetTotalPauseDuration();
                    Thread.Sleep(seconds);
                    var h1 = host.Store.Now;
                    long g1 = Stopwatch.GetTimestamp();
                    long cmds1 = FloodCommands(), missed1 = host.MissedFrames, composed1 = host.Engine.Frames;
                    ulong copied1 = host.DeviceStats("apps")!.BytesCopied;
                    var compose1 = host.Engine.ComposeTime;
                    int gen2_1 = GC.CollectionCount(2);
                    var pause1 = GC.GetTotalPauseDuration();
                    double secs = (h1 - h0).TotalSeconds;
                    if (failure is not null) throw new InvalidOperationException("a guest failed", failure);

                    var vmResults = new List<FairnessVmResult>();
                    foreach (var d in Drawers)
                    {
                        List<(long Kick, long Done)> mine;
                        lock (records[d.Vm]) mine = records[d.Vm].Where(r => r.Done >= g0 && r.Done < g1).ToList();
                        var lat = mine.Select(r => (r.Done - r.Kick) * 1000.0 / Stopwatch.Frequency).OrderBy(x => x).ToList();
                        vmResults.Add(new FairnessVmResult(d.Vm, d.Fps, mine.Count / ((g1 - g0) / (double)Stopwatch.Frequency), Percentile(lat, 0.5), Percentile(lat, 0.99)));
                    }
                    List<TimeSpan> f, a;
                    lock (flushes) f = flushes.ToList();
                    lock (frames) a = frames.ToList();
                    var missDetails = new List<string>();
                    var (missedCritical, counted) = CriticalMisses(f, a, host.FrameClockEpoch ?? TimeSpan.Zero, host.Engine.FramePeriod, h0, h1, missDetails);
                    // Each miss explained on stderr (when a frame started against its tick), to tell a stalled frame thread from a late flush.
                    foreach (var line in missDetails) Console.Error.WriteLine($"round {round + 1}: policy {(policy ? "on" : "off")} flood {flood}: critical miss: {line}");
                    long composed = composed1 - composed0;
                    results.Add(new FairnessPhaseResult(policy, flood, round, secs, vmResults,
                        (cmds1 - cmds0) / secs, (copied1 - copied0) / secs / (1 << 20), composed / secs, missed1 - missed0,
                        composed > 0 ? (compose1 - compose0).TotalMilliseconds / composed : double.NaN,
                        missedCritical, counted, LoadAverage(), gen2_1 - gen2_0, (pause1 - pause0).TotalMilliseconds));
                }
                foreach (var fl in flooders) fl.Mode = FloodMode.None;
                return results;
            }
            finally
            {
                stop.Cancel();
                foreach (var t in threads) t.Join(TimeSpan.FromSeconds(15));
                foreach (var vm in vms.Values) vm.Dispose();
            }
        }
        finally
        {
            try { Directory.Delete(dir, recursive: true); } catch (IOException) { }
        }
    }

    /// <summary>
    /// Output ticks in [<paramref name="from"/>, <paramref name="to"/>) at which a cluster flush older
    /// than one period had not been shown (see the class remarks), and the flushes looked at.
    /// </summary>
    internal static (int Missed, int Flushes) CriticalMisses(List<TimeSpan> flushes, List<TimeSpan> frames, TimeSpan epoch, TimeSpan period, TimeSpan from, TimeSpan to, List<string>? details = null)
    {
        frames.Sort();
        var missedTicks = new HashSet<long>();
        int counted = 0;
        foreach (var t in flushes)
        {
            if (t < from || t >= to) continue;
            counted++;
            long due = (long)Math.Ceiling((t - epoch).Ticks / (double)period.Ticks);
            int i = frames.BinarySearch(t);
            if (i < 0) i = ~i;
            else i++; // a frame that started at the same instant may have taken its changes before the flush
            // Not shown yet at the end of the data: late by the time until then.
            long shownTick = i < frames.Count ? (frames[i] - epoch).Ticks / period.Ticks : (frames.Count > 0 ? (frames[^1] - epoch).Ticks / period.Ticks + 1 : due);
            if (shownTick > due && details is not null)
            {
                var tick = epoch + period * due;
                string shownAt = i < frames.Count ? $"{(frames[i] - tick).TotalMilliseconds:F2} ms after it" : "not shown before the end";
                details.Add($"cluster flush {(t - tick).TotalMilliseconds:F2} ms from its tick, shown by the frame that started {shownAt} (previous frame: {(i > 0 ? $"{(frames[i - 1] - tick).TotalMilliseconds:F2} ms" : "none")})");
            }
            for (long k = due; k < shownTick; k++)
                if (epoch + period * k < to) missedTicks.Add(k);
        }
        return (missedTicks.Count, counted);
    }

    /// <summary>A paced guest: each frame changes pixels inside its damage rect and presents that rect, then waits for the next period.</summary>
    private static void Draw(GpuVm vm, Drawer drawer, uint width, uint height, List<(long, long)> records, CancellationToken stop)
    {
        var fb = FrameBuffer.Allocate(vm.Ram, width, height, VirtioGpuFormat.B8G8R8X8Unorm, scattered: true);
        fb.Fill((x, y) => 0xFF000000 | (x * 255 / width) << 16 | (y * 255 / height) << 8);
        var d = vm.Driver;
        d.SetUpFrameBuffer(1, fb, 0);
        d.Present(1, fb, new VirtioGpuRect(0, 0, width, height));
        uint dw = drawer.DamageW == 0 ? width : Math.Min(drawer.DamageW, width);
        uint dh = drawer.DamageH == 0 ? height : Math.Min(drawer.DamageH, height);
        var row = new byte[dw * 4];
        long period = (long)(Stopwatch.Frequency / drawer.Fps);
        long next = Stopwatch.GetTimestamp();
        for (int frame = 0; !stop.IsCancellationRequested; frame++)
        {
            uint rx = dw >= width ? 0 : (uint)(frame * 16 % (width - dw));
            uint ry = dh >= height ? 0 : (height - dh) / 2;
            var rect = new VirtioGpuRect(rx, ry, dw, dh);
            // The guest draws: 8 rows of the damaged rect change every frame.
            MemoryMarshal.Cast<byte, uint>(row.AsSpan()).Fill(0xFF000000 | (uint)frame * 2654435761u >> 8);
            for (uint y = 0; y < 8; y++) fb.Write((ulong)(ry + (frame + y * 17) % dh) * fb.Stride + rx * 4UL, row);
            var transfer = d.Queue(Bytes(d.TransferCommand(1, rect, (ulong)rect.Y * fb.Stride + rect.X * 4UL)));
            var flush = d.Queue(Bytes(d.FlushCommand(1, rect)));
            long kick = Stopwatch.GetTimestamp();
            d.KickControl();
            GpuDriver.Expect(d.Wait(transfer), "TRANSFER_TO_HOST_2D");
            GpuDriver.Expect(d.Wait(flush), "RESOURCE_FLUSH");
            long done = Stopwatch.GetTimestamp();
            lock (records) records.Add((kick, done));
            next += period;
            long now = Stopwatch.GetTimestamp();
            if (now - next > period) next = now; // more than a frame late: the missed frames are dropped, not caught up
            long wait = next - now;
            if (wait > 0) stop.WaitHandle.WaitOne(TimeSpan.FromTicks(wait * TimeSpan.TicksPerSecond / Stopwatch.Frequency));
        }
    }

    /// <summary>The untrusted guest: idle, or flooding as fast as the device answers.</summary>
    private sealed class Flooder(GpuVm vm)
    {
        private volatile FloodMode _mode;
        private long _commands;

        public FloodMode Mode { get => _mode; set => _mode = value; }
        public long Commands => Interlocked.Read(ref _commands);

        public void Run(CancellationToken stop)
        {
            var fb = FrameBuffer.Allocate(vm.Ram, FloodW, FloodH, VirtioGpuFormat.B8G8R8X8Unorm, scattered: true);
            fb.Fill((x, y) => 0xFF000000 | x << 8 | y);
            var d = vm.Driver;
            d.SetUpFrameBuffer(1, fb, 0);
            var full = new VirtioGpuRect(0, 0, FloodW, FloodH);
            d.Present(1, fb, full);
            var pending = new List<PendingCommand>();
            var bad = new VirtioGpuRect(0, 0, 64, 64);
            while (!stop.IsCancellationRequested)
            {
                switch (_mode)
                {
                    case FloodMode.None:
                        stop.WaitHandle.WaitOne(20);
                        continue;
                    case FloodMode.Frames:
                        for (int i = 0; i < 4; i++)
                        {
                            pending.Add(d.Queue(Bytes(d.TransferCommand(1, full, 0))));
                            pending.Add(d.Queue(Bytes(d.FlushCommand(1, full))));
                        }
                        break;
                    case FloodMode.Invalid:
                        for (int i = 0; i < 120; i++) pending.Add(d.Queue(Bytes(d.FlushCommand(0xdead, bad))));
                        break;
                }
                d.KickControl();
                foreach (var p in pending) d.Wait(p);
                Interlocked.Add(ref _commands, pending.Count);
                pending.Clear();
            }
        }
    }

    public static string Table(List<FairnessPhaseResult> all, int rounds, double seconds)
    {
        var inv = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        sb.AppendLine("| policy | flood (apps) | cluster fps (p50/p99 ms) | ivi fps (p50/p99 ms) | camera fps (p50/p99 ms) | worst fps drop vs no flood | flood cmds/s (MiB/s copied) | output fps | missed ticks | compose ms/frame | critical frames missed | gen2 GCs (pause ms) | load avg |");
        sb.AppendLine("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        foreach (var policy in all.Select(r => r.Policy).Distinct())
        {
            var baseline = Median(all.Where(r => r.Policy == policy && r.Flood == FloodMode.None));
            foreach (var flood in all.Where(r => r.Policy == policy).Select(r => r.Flood).Distinct())
            {
                var m = Median(all.Where(r => r.Policy == policy && r.Flood == flood));
                if (m is null) continue;
                string drop = "";
                if (baseline is not null && flood != FloodMode.None)
                {
                    double worst = m.Vms.Zip(baseline.Vms, (x, b) => 1 - x.Fps / b.Fps).Max();
                    drop = string.Format(inv, "{0:F1} %", worst * 100);
                }
                sb.Append(inv, $"| {(policy ? "on" : "off")} | {flood.ToString().ToLowerInvariant()} |");
                foreach (var v in m.Vms) sb.Append(inv, $" {v.Fps:F1} ({v.LatencyP50Ms:F2}/{v.LatencyP99Ms:F2}) |");
                sb.AppendLine(string.Format(inv, " {0} | {1:F0} ({2:F0}) | {3:F1} | {4} | {5:F2} | {6} | {7} ({8:F1}) | {9:F2} |",
                    drop, m.FloodCommandsPerSecond, m.FloodMiBPerSecond, m.OutputFps, m.MissedTicks, m.ComposeMsPerFrame, m.CriticalFramesMissed, m.Gen2Collections, m.GcPauseMs, m.LoadAverage));
            }
        }
        sb.Append(inv, $"\nMedian of {rounds} rounds of {seconds:F0} s per row (each column's median on its own); targets: cluster 60, ivi 60, camera 30 frames/s; output 60 Hz.");
        sb.Append(" Worst drop: the largest fall of a well-behaved VM's frames/s against the no-flood phase of the same policy.");
        return sb.ToString();
    }

    /// <summary>Each number the median of its own over the rounds (critical misses: the median too; the per-round values are printed as they come).</summary>
    private static FairnessPhaseResult? Median(IEnumerable<FairnessPhaseResult> rounds)
    {
        var list = rounds.ToList();
        if (list.Count == 0) return null;
        double Med(Func<FairnessPhaseResult, double> f) => list.Select(f).OrderBy(x => x).ElementAt(list.Count / 2);
        var vms = list[0].Vms.Select((v, i) => new FairnessVmResult(v.Vm, v.TargetFps, Med(r => r.Vms[i].Fps), Med(r => r.Vms[i].LatencyP50Ms), Med(r => r.Vms[i].LatencyP99Ms))).ToList();
        return new FairnessPhaseResult(list[0].Policy, list[0].Flood, 0, Med(r => r.Seconds), vms, Med(r => r.FloodCommandsPerSecond), Med(r => r.FloodMiBPerSecond),
            Med(r => r.OutputFps), (long)Med(r => r.MissedTicks), Med(r => r.ComposeMsPerFrame), (int)Med(r => r.CriticalFramesMissed), (int)Med(r => r.CriticalFlushes), Med(r => r.LoadAverage),
            (int)Med(r => r.Gen2Collections), Med(r => r.GcPauseMs));
    }

    public static string Line(FairnessPhaseResult r)
    {
        var inv = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        sb.Append(inv, $"round {r.Round + 1}: policy {(r.Policy ? "on " : "off")} flood {r.Flood,-7}");
        foreach (var v in r.Vms) sb.Append(inv, $"  {v.Vm} {v.Fps:F1} fps p50 {v.LatencyP50Ms:F2} p99 {v.LatencyP99Ms:F2}");
        sb.Append(inv, $"  flood {r.FloodCommandsPerSecond:F0} cmd/s {r.FloodMiBPerSecond:F0} MiB/s  output {r.OutputFps:F1} fps missed {r.MissedTicks} compose {r.ComposeMsPerFrame:F2} ms  critical missed {r.CriticalFramesMissed}/{r.CriticalFlushes} flushes  gen2 {r.Gen2Collections} GC pause {r.GcPauseMs:F1} ms  load {r.LoadAverage:F2}");
        return sb.ToString();
    }

    private static double LoadAverage()
    {
        try { return double.Parse(File.ReadAllText("/proc/loadavg").Split(' ')[0], CultureInfo.InvariantCulture); }
        catch (IOException) { return double.NaN; }
    }

    private static byte[] Bytes<T>(T value) where T : unmanaged => MemoryMarshal.AsBytes(new ReadOnlySpan<T>(in value)).ToArray();

    private static double Percentile(List<double> sorted, double p) =>
        sorted.Count == 0 ? double.NaN : sorted[Math.Min(sorted.Count - 1, (int)Math.Ceiling(p * sorted.Count) - 1)];
}
