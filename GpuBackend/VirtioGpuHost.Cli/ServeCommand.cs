using System.CommandLine;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;
using VirtioGpuHost.Compositor;
using VirtioGpuHost.Compositor.Core.Layout;
using VirtioGpuHost.Compositor.Outputs;
using VirtioGpuHost.Compositor.Rendering.Cpu;

namespace VirtioGpuHost.Cli;

/// <summary>
/// `virtio-gpu-host serve --config FILE`: the compositor. One vhost-user socket per VM of the
/// layout; every VM's scanouts composited onto the layout's outputs (headless: PNG snapshots
/// on an interval and on SIGUSR1). SIGHUP reloads the file atomically; a rejected file leaves
/// the running layout as it was.
/// </summary>
internal static class ServeCommand
{
    public static Command Build()
    {
        var config = new Option<string>("--config") { Description = "The layout file (TOML; see docs/layout.md)", Required = true, HelpName = "FILE" };
        var check = new Option<bool>("--check") { Description = "Validate the layout file, print every finding, and exit (1 on error)" };
        var snapshots = new Option<string?>("--snapshot-dir") { Description = "Write OUTPUT.png here (on SIGUSR1, and every --snapshot-interval)", HelpName = "DIR" };
        var interval = new Option<double>("--snapshot-interval") { Description = "Seconds between snapshots (0: only on SIGUSR1)", DefaultValueFactory = _ => 0 };
        var verbose = new Option<bool>("--verbose", "-v") { Description = "Log every vhost-user message and device event" };
        var listen = ControlHosting.ListenOption("127.0.0.1:8080");
        var noControl = ControlHosting.NoControlOption();
        var rendererOpt = RendererWiring.RendererOption();
        var windowOpt = RendererWiring.WindowOption();
        var cmd = new Command("serve", "Composite the scanouts of several VMs (one vhost-user-gpu socket each) by a safety-priority layout")
        {
            config, check, snapshots, interval, verbose, listen, noControl, rendererOpt, windowOpt,
        };
        cmd.SetAction(parse =>
        {
            string path = parse.GetValue(config)!;
            var result = LayoutLoader.LoadFile(path);
            foreach (var d in result.Diagnostics) Console.Error.WriteLine(d);
            if (result.Layout is not { } layout)
            {
                Console.Error.WriteLine($"virtio-gpu-host: {path}: {result.Errors.Count()} error(s); nothing started");
                return 1;
            }
            if (parse.GetValue(check))
            {
                Console.WriteLine($"{path}: ok ({layout.Outputs.Count} outputs, {layout.Zones.Count} zones, {layout.Vms.Count} VMs, {layout.Placements.Count} placements)");
                return 0;
            }
            using var loggers = Logging.Create(parse.GetValue(verbose));
            using var cancel = new CancellationTokenSource();
            using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; cancel.Cancel(); });
            using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => { c.Cancel = true; cancel.Cancel(); });
            if (!ControlHosting.TryParse(parse.GetValue(listen)!, out var listenAt)) return 1;
            var runner = new CompositorRunner(layout, loggers, parse.GetValue(snapshots), TimeSpan.FromSeconds(parse.GetValue(interval)), reloadPath: path)
            {
                Control = parse.GetValue(noControl) ? null : host => ControlHosting.Start(host, listenAt, loggers, printViewer: false, source: path),
                Renderer = parse.GetValue(rendererOpt),
                Window = parse.GetValue(windowOpt),
            };
            return runner.Run(cancel.Token, onStarted: null);
        });
        return cmd;
    }
}

/// <summary>Runs a <see cref="CompositorHost"/> until cancelled: signals, snapshots and a periodic status line.</summary>
internal sealed class CompositorRunner(LayoutConfig layout, ILoggerFactory loggers, string? snapshotDir, TimeSpan snapshotInterval, string? reloadPath)
{
    /// <summary>How often the status line is logged.</summary>
    public TimeSpan StatusInterval { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Starts the control API over the running host (stopped before the host is).</summary>
    public Func<CompositorHost, IDisposable?>? Control { get; init; }

    /// <summary>--renderer (null: the layout's renderer key, else auto).</summary>
    public string? Renderer { get; init; }

    /// <summary>--window: every output also shown in a window.</summary>
    public bool Window { get; init; }

    /// <param name="onStopping">Runs before the compositor goes away (the demo stops its guests first, so they never see their device vanish).</param>
    public int Run(CancellationToken cancel, Action<CompositorHost>? onStarted, Action? onStopping = null)
    {
        var log = loggers.CreateLogger("virtio-gpu-host");
        using var renderers = RendererWiring.Select(Renderer, layout, log, Window);
        if (renderers is null) return 1;
        using var host = new CompositorHost(layout, renderers.Current, loggers, RendererWiring.HostOptions(renderers, Window, loggers));
        using var reload = new AutoResetEvent(false);
        using var snapshotNow = new AutoResetEvent(false);
        using var sighup = PosixSignalRegistration.Create(PosixSignal.SIGHUP, c => { c.Cancel = true; reload.Set(); });
        // SIGUSR1 (10 on Linux): a snapshot now. .NET takes raw signal numbers on Unix.
        using var sigusr1 = PosixSignalRegistration.Create((PosixSignal)10, c => { c.Cancel = true; snapshotNow.Set(); });
        host.Start();
        foreach (var vm in layout.Vms) log.LogInformation("vm \"{Vm}\" ({Class}): listening on {Socket}", vm.Name, LayoutLoader.ClassName(vm.Class), vm.Socket);
        using var control = Control?.Invoke(host);
        onStarted?.Invoke(host);

        var sw = System.Diagnostics.Stopwatch.StartNew();
        var nextSnapshot = snapshotInterval > TimeSpan.Zero ? snapshotInterval : TimeSpan.MaxValue;
        var nextStatus = StatusInterval;
        var lastFrames = new Dictionary<string, long>();
        var lastCompose = (Frames: 0L, Time: TimeSpan.Zero);
        var handles = new WaitHandle[] { cancel.WaitHandle, reload, snapshotNow };
        while (true)
        {
            var now = sw.Elapsed;
            var due = nextSnapshot < nextStatus ? nextSnapshot : nextStatus;
            int which = WaitHandle.WaitAny(handles, due - now > TimeSpan.Zero ? Min(due - now, TimeSpan.FromSeconds(1)) : TimeSpan.Zero);
            if (which == 0) break;
            if (which == 1 && reloadPath is not null) host.Reload(reloadPath);
            if (which == 2) WriteSnapshots(host, log);
            now = sw.Elapsed;
            if (now >= nextSnapshot)
            {
                WriteSnapshots(host, log);
                nextSnapshot = now + snapshotInterval;
            }
            if (now >= nextStatus)
            {
                LogStatus(host, log, lastFrames, StatusInterval, ref lastCompose);
                nextStatus = now + StatusInterval;
            }
        }
        log.LogInformation("stopping: {Frames} frames composed, {Failures} safety-check failures", host.Engine.Frames, host.Engine.SafetyFailures);
        if (snapshotDir is not null) WriteSnapshots(host, log);
        onStopping?.Invoke();
        return 0;
    }

    private static TimeSpan Min(TimeSpan a, TimeSpan b) => a < b ? a : b;

    private void WriteSnapshots(CompositorHost host, ILogger log)
    {
        if (snapshotDir is null)
        {
            log.LogWarning("snapshot asked for, but no --snapshot-dir was given");
            return;
        }
        try
        {
            Directory.CreateDirectory(snapshotDir);
            foreach (var output in host.Engine.Outputs.Select(OutputFrames.Of).OfType<HeadlessOutput>())
                output.SavePng(Path.Combine(snapshotDir, output.Name + ".png"));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            log.LogError("cannot write snapshots to {Dir}: {Error}", snapshotDir, e.Message);
        }
    }

    private static void LogStatus(CompositorHost host, ILogger log, Dictionary<string, long> lastFrames, TimeSpan interval, ref (long Frames, TimeSpan Time) lastCompose)
    {
        long composed = host.Engine.Frames;
        var composeTime = host.Engine.ComposeTime;
        double fps = (composed - lastCompose.Frames) / interval.TotalSeconds;
        double avgMs = composed > lastCompose.Frames ? (composeTime - lastCompose.Time).TotalMilliseconds / (composed - lastCompose.Frames) : 0;
        lastCompose = (composed, composeTime);
        var health = host.Engine.Health;
        var parts = new List<string>();
        foreach (var vm in host.Layout.Vms)
        {
            long frames = host.Store.FramesOf(vm.Name);
            lastFrames.TryGetValue(vm.Name, out var before);
            lastFrames[vm.Name] = frames;
            var (copied, mapped) = host.ScanoutStats(vm.Name);
            string copiedKey = vm.Name + "\0copied";
            lastFrames.TryGetValue(copiedKey, out var copiedBefore);
            lastFrames[copiedKey] = (long)copied;
            long flushes = frames - before;
            string state = !host.IsConnected(vm.Name) ? "disconnected" : health.TryGetValue(vm.Name, out var h) ? h.ToString().ToLowerInvariant() : "?";
            string perFlush = flushes > 0 ? $", {((long)copied - copiedBefore) / (double)flushes / 1024:0.#} KiB copied/flush" : "";
            parts.Add($"{vm.Name} {state} {flushes / interval.TotalSeconds:0.#} flushes/s{perFlush}{(mapped > 0 ? $", {mapped} blobs mapped" : "")}");
        }
        log.LogInformation("status: {Vms}; compositor {Fps:0.#} fps, {Avg:0.00} ms per frame, {Failures} safety-check failures",
            string.Join(", ", parts), fps, avgMs, host.Engine.SafetyFailures);
    }
}
