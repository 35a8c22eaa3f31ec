using System.Diagnostics;
using Microsoft.Extensions.Logging;
using VirtioGpuHost.Compositor.Core.Geometry;
using VirtioGpuHost.Compositor.Core.Layout;
using VirtioGpuHost.Compositor.Core.Scene;
using VirtioGpuHost.Compositor.Outputs;

namespace VirtioGpuHost.Compositor.Control;

/// <summary>A control request that cannot be done: the HTTP status and a message saying why.</summary>
public sealed class ControlException(int status, string message, IReadOnlyList<DiagnosticDto>? diagnostics = null) : Exception(message)
{
    public int Status { get; } = status;
    public IReadOnlyList<DiagnosticDto>? Diagnostics { get; } = diagnostics;
}

/// <summary>
/// The control API's logic over a running <see cref="CompositorHost"/>: queries (VMs, surfaces,
/// zones, the layout), commands (apply or validate a layout, preempt a zone), and the per-VM
/// rates the viewer's sparklines and the metrics show. Thread-safe: requests come from Kestrel's
/// threads, frames from the frame thread; nothing here blocks a frame for longer than a
/// dictionary update.
/// </summary>
/// <remarks>
/// <para>Preemption is a layout change, not a bypass: a preemption adds a <c>preempts = true</c>
/// placement (priority above every placement of the zone) to the running layout, checked by the
/// loader's rules first (the VM's class must be at least the zone's, the scanout must exist, the
/// VM scanout must not be placed there already), and applied atomically like any layout. The
/// solver then treats it like a file's preempting placement: it shows only while the VM is live,
/// and everything of a lower class stays clipped out of higher zones. A zone's class is never
/// changed by the API, so a critical zone's protection cannot be lowered.</para>
/// <para>Applying a layout (API or SIGHUP) replaces the running one and ends every preemption.</para>
/// </remarks>
public sealed class ControlService : IDisposable
{
    /// <summary>Samples kept per VM for the sparklines (two a second: 60 s).</summary>
    public const int HistoryLength = 120;

    /// <summary>Largest layout or JSON body the API reads.</summary>
    public const int MaxBodyBytes = 1 << 20;

    private readonly ILogger _log;
    private readonly object _lock = new();
    private readonly Stopwatch _uptime = Stopwatch.StartNew();
    private readonly Timer _sampler;
    private readonly Dictionary<string, VmRates> _rates = new(StringComparer.Ordinal);
    private readonly Dictionary<string, OutputFeed> _feeds = new(StringComparer.Ordinal);
    private readonly Dictionary<SurfaceKey, long> _seenFrames = new(); // frame thread only
    private readonly List<Preemption> _preemptions = new();
    private LayoutConfig? _applied; // the layout with our preemptions, as we last applied it
    private LayoutConfig _base;
    private string _source;
    private FrameReport? _lastReport;
    private TimeSpan _lastComposeTime;
    private (long Frames, TimeSpan At, TimeSpan Compose) _fpsMark;
    private double _fps, _avgComposeMs;

    public ControlService(CompositorHost host, ILogger logger, string source = "file")
    {
        Host = host;
        _log = logger;
        _base = host.Layout;
        _source = source;
        host.Engine.FrameComposed += OnFrame;
        _sampler = new Timer(_ => Sample(), null, TimeSpan.FromMilliseconds(500), TimeSpan.FromMilliseconds(500));
    }

    public CompositorHost Host { get; }

    /// <summary>Raised on the frame thread for each new guest frame that reached an output: VM, flush-to-present seconds.</summary>
    public event Action<string, double>? LatencyObserved;

    /// <summary>Connected viewer and stream clients now (all outputs).</summary>
    public int ViewerClients { get { lock (_feeds) return _feeds.Values.Sum(f => f.Clients); } }

    public string Listen { get; set; } = "";

    // ---------------------------------------------------------------- frames

    private void OnFrame(FrameReport report)
    {
        try
        {
            var compose = Host.Engine.ComposeTime;
            var thisFrame = compose - _lastComposeTime;
            _lastComposeTime = compose;
            Volatile.Write(ref _lastReport, report);
            foreach (var key in ShownKeys(report.Layout))
            {
                if (Host.Store.Get(key) is not { } state) continue;
                _seenFrames.TryGetValue(key, out var seen);
                if (state.Frames == seen) continue;
                _seenFrames[key] = state.Frames;
                if (seen == 0 || !state.IsEnabled) continue;
                double latency = Math.Max(0, (report.At + thisFrame - state.LastFrame).TotalSeconds);
                lock (_lock) RatesOf(key.Vm).AddLatency(latency);
                LatencyObserved?.Invoke(key.Vm, latency);
            }
            foreach (var o in report.Outputs)
            {
                if (!o.Rendered) continue;
                OutputFeed? feed;
                lock (_feeds) _feeds.TryGetValue(o.Output, out feed);
                feed?.Presented(o.Frame);
            }
        }
        catch (Exception e)
        {
            // Never let the operator surface break a frame.
            _log.LogError(e, "control: frame bookkeeping failed");
        }
    }

    private static IEnumerable<SurfaceKey> ShownKeys(LayoutConfig layout)
    {
        var keys = new HashSet<SurfaceKey>();
        foreach (var p in layout.Placements) if (p.Match is null) keys.Add(p.Surface);
        foreach (var vm in layout.Vms)
            if (vm.Fallback is { Kind: FallbackKind.OtherVm, Vm: { } other } f) keys.Add(new SurfaceKey(other, f.Scanout));
        return keys;
    }

    private VmRates RatesOf(string vm)
    {
        if (!_rates.TryGetValue(vm, out var r)) _rates[vm] = r = new VmRates();
        return r;
    }

    private void Sample()
    {
        try
        {
            var now = _uptime.Elapsed;
            lock (_lock)
            {
                foreach (var vm in Host.Layout.Vms) RatesOf(vm.Name).Sample(Host.Store.FramesOf(vm.Name), now);
                long frames = Host.Engine.Frames;
                var composeTime = Host.Engine.ComposeTime;
                var dt = (now - _fpsMark.At).TotalSeconds;
                if (dt >= 0.9)
                {
                    long n = frames - _fpsMark.Frames;
                    _fps = n / dt;
                    _avgComposeMs = n > 0 ? (composeTime - _fpsMark.Compose).TotalMilliseconds / n : 0;
                    _fpsMark = (frames, now, composeTime);
                }
            }
        }
        catch (Exception e)
        {
            _log.LogError(e, "control: sampling failed");
        }
    }

    /// <summary>The frame feed of an output (null: no such output).</summary>
    /// <remarks>
    /// The engine's output is looked up before taking <c>_feeds</c>: the frame thread holds the
    /// engine's frame lock while it raises FrameComposed (which takes <c>_feeds</c>), so the two
    /// locks must never be taken in the other order.
    /// </remarks>
    public OutputFeed? Feed(string output)
    {
        if (Host.Layout.Output(output) is not { } config) return null;
        var current = Host.Engine.Output(output);
        lock (_feeds)
        {
            if (_feeds.TryGetValue(output, out var feed) && feed.IsCurrent(current)) return feed;
            feed = new OutputFeed(output, current, config.RefreshHz);
            _feeds[output] = feed;
            return feed;
        }
    }

    // ---------------------------------------------------------------- queries

    public StatusDto Status()
    {
        lock (_lock) return new StatusDto(Host.Engine.Frames, Math.Round(_fps, 1), Math.Round(_avgComposeMs, 3), Host.Engine.SafetyFailures, Math.Round(_uptime.Elapsed.TotalSeconds, 1), ViewerClients, Listen);
    }

    public IReadOnlyList<VmDto> Vms() => Host.Layout.Vms.Select(v => Vm(v.Name)!).ToList();

    public VmDto? Vm(string name)
    {
        var layout = Host.Layout;
        if (layout.Vm(name) is not { } vm) return null;
        bool connected = Host.IsConnected(name);
        var health = Host.Engine.Health.TryGetValue(name, out var h) ? h : VmHealth.NoSignal;
        var stats = Host.DeviceStats(name) ?? new VmDeviceStats();
        long frames = Host.Store.FramesOf(name);
        double fps, latency;
        double[] fpsHistory, latencyHistory;
        lock (_lock)
        {
            var r = RatesOf(name);
            fps = r.Fps;
            latency = r.LatencyMs;
            fpsHistory = r.FpsHistory();
            latencyHistory = r.LatencyHistory();
        }
        return new VmDto(vm.Name, vm.Label, LayoutLoader.ClassName(vm.Class), vm.Socket, connected, HealthName(connected, health), health == VmHealth.Stale,
            Math.Round(fps, 1), Math.Round(latency, 2), frames, stats.Commands, stats.GuestErrors, stats.Resources, stats.HostMemoryBytes, stats.BytesCopied,
            frames > 0 ? Math.Round((double)stats.BytesCopied / frames, 1) : 0, stats.MappedBlobs, Host.ConnectionsServed(name), fpsHistory, latencyHistory);
    }

    private static string HealthName(bool connected, VmHealth health) => health switch
    {
        VmHealth.Live => "live",
        VmHealth.Stale => "stale",
        _ => connected ? "no-signal" : "disconnected",
    };

    public IReadOnlyList<SurfaceDto> Surfaces()
    {
        var layout = Host.Layout;
        var result = new List<SurfaceDto>();
        var now = Host.Store.Now;
        foreach (var vm in layout.Vms)
        {
            int scanouts = CompositorHost.DeviceOptionsFor(layout, vm).Scanouts;
            for (int i = 0; i < scanouts; i++)
            {
                var key = new SurfaceKey(vm.Name, i);
                var s = Host.Store.Get(key);
                var zones = layout.Placements.Where(p => p.Vm == vm.Name && p.Match is null && p.Scanout == i).Select(p => p.Zone).ToList();
                result.Add(new SurfaceDto(vm.Name, i, s?.IsEnabled == true, (int)(s?.SourceRect.Width ?? 0), (int)(s?.SourceRect.Height ?? 0),
                    s?.Format.ToString() ?? "", s?.Frames ?? 0, s is { Frames: > 0 } ? Math.Round((now - s.LastFrame).TotalMilliseconds, 1) : -1, zones));
            }
        }
        return result;
    }

    public IReadOnlyList<ZoneDto> Zones()
    {
        var layout = Host.Layout;
        var report = Volatile.Read(ref _lastReport);
        var views = new Dictionary<string, ZoneView>(StringComparer.Ordinal);
        if (report is not null)
            foreach (var o in report.Outputs)
                foreach (var z in o.Plan.Zones) views[z.Zone] = z;
        List<Preemption> preemptions;
        lock (_lock) preemptions = _preemptions.ToList();
        return layout.Zones.Select(z =>
        {
            views.TryGetValue(z.Name, out var v);
            var p = preemptions.FirstOrDefault(x => x.Zone == z.Name);
            var placement = v?.Placement;
            return new ZoneDto(z.Name, z.Output, Rect(z.Rect), Rect(layout.ContentRect(z)), z.Z, LayoutLoader.ClassName(z.Class), v?.IsShown == true,
                placement?.Vm, placement?.Scanout, placement?.Preempts == true, v is null ? "unknown" : HealthName(placement is not null && Host.IsConnected(placement.Vm), v.Health),
                v?.ShowingFallback == true, v?.Label, v?.ShownSurface?.ToString(), p is null ? null : ToDto(p, v));
        }).ToList();
    }

    private static PreemptionDto ToDto(Preemption p, ZoneView? view) =>
        new(p.Zone, p.Vm, p.Scanout, p.Priority, view?.Placement is { Preempts: true } pl && pl.Vm == p.Vm && pl.Scanout == p.Scanout);

    public IReadOnlyList<OutputDto> Outputs() => Host.Layout.Outputs.Select(o =>
    {
        var output = Host.Engine.Output(o.Name);
        return new OutputDto(o.Name, o.Width, o.Height, o.RefreshHz, output?.FramesPresented ?? 0, output is HeadlessOutput);
    }).ToList();

    public LayoutDto LayoutInfo()
    {
        var layout = Host.Layout;
        List<Preemption> preemptions;
        string source;
        lock (_lock)
        {
            preemptions = _preemptions.ToList();
            source = _source;
        }
        var zones = Zones();
        var fromApi = preemptions.Select(p => (p.Zone, p.Vm, p.Scanout)).ToHashSet();
        return new LayoutDto(layout.LabelHeight, layout.BorderWidth, Outputs(), zones,
            layout.Vms.Select(v => new LayoutVmDto(v.Name, v.Socket, v.Label, Hex(v.LabelColor), LayoutLoader.ClassName(v.Class), (int)v.FramePeriod.TotalMilliseconds, v.ContentMustChange, LayoutLoader.FallbackText(v.Fallback))).ToList(),
            layout.Placements.Select(p => new PlacementDto(p.Vm, p.Scanout, p.Zone, p.Scale.ToString().ToLowerInvariant(), p.Priority, p.Preempts, p.Preempts && fromApi.Contains((p.Zone, p.Vm, p.Scanout)))).ToList(),
            zones.Where(z => z.Preemption is not null).Select(z => z.Preemption!).ToList(), source);
    }

    private static RectDto Rect(RectI r) => new(r.X, r.Y, r.Width, r.Height);
    private static string Hex(ColorBgra c) => $"#{c.R:X2}{c.G:X2}{c.B:X2}";

    // ---------------------------------------------------------------- commands

    public static DiagnosticDto ToDto(LayoutDiagnostic d) =>
        new(d.Severity == LayoutSeverity.Error ? "error" : "warning", d.Line, d.Subject, d.Field, d.Message, d.ToString());

    /// <summary>
    /// Loads <paramref name="toml"/> with the file's rules and, unless <paramref name="validateOnly"/>,
    /// applies it atomically (the next frame uses it whole). A file with any error changes nothing
    /// (422, every diagnostic, as `serve --check` prints them).
    /// </summary>
    public LayoutResultDto ApplyLayout(string toml, bool validateOnly, string fileName = "layout.toml")
    {
        var result = LayoutLoader.Load(toml, fileName);
        var diagnostics = result.Diagnostics.Select(ToDto).ToList();
        if (result.Layout is not { } layout)
            throw new ControlException(422, $"{fileName}: {result.Errors.Count()} error(s); the running layout stays", diagnostics);
        CheckSockets(layout);
        string summary = $"{layout.Outputs.Count} outputs, {layout.Zones.Count} zones, {layout.Vms.Count} VMs, {layout.Placements.Count} placements";
        if (validateOnly) return new LayoutResultDto(true, false, diagnostics, summary);
        lock (_lock)
        {
            _preemptions.Clear();
            _base = layout;
            _applied = layout;
            _source = "api";
            Host.ApplyLayout(layout);
        }
        _log.LogInformation("control: layout applied ({Summary}); preemptions cleared", summary);
        return new LayoutResultDto(true, true, diagnostics, summary);
    }

    /// <summary>
    /// A layout from a client may only use sockets the host serves already, or new ones in a
    /// directory it serves sockets in (where nothing but a socket exists at that path): the
    /// server unlinks and later deletes its socket paths, which must not reach arbitrary files.
    /// </summary>
    private void CheckSockets(LayoutConfig layout)
    {
        var running = Host.Layout.Vms.Select(v => v.Socket).ToHashSet(StringComparer.Ordinal);
        var dirs = running.Select(Path.GetDirectoryName).Where(d => d is not null).ToHashSet(StringComparer.Ordinal);
        var errors = new List<DiagnosticDto>();
        foreach (var vm in layout.Vms)
        {
            if (running.Contains(vm.Socket)) continue;
            string full = Path.GetFullPath(vm.Socket);
            bool inServedDir = full == vm.Socket && dirs.Contains(Path.GetDirectoryName(full));
            bool occupied = File.Exists(full) || Directory.Exists(full);
            if (!inServedDir || occupied)
                errors.Add(new DiagnosticDto("error", 0, $"vm \"{vm.Name}\"", "socket", $"socket \"{vm.Socket}\" is not served now, and not a path that does not exist yet in a directory of the running layout's sockets",
                    $"vm \"{vm.Name}\": socket \"{vm.Socket}\": a layout sent through the API may only use the running sockets or new paths next to them"));
        }
        if (errors.Count > 0) throw new ControlException(422, errors[0].Text, errors);
    }

    /// <summary>
    /// <paramref name="vm"/>'s scanout takes <paramref name="zone"/> while it is live (until
    /// released or the next layout). Refused (409) where the layout's rules refuse it.
    /// </summary>
    public PreemptionDto Preempt(string zone, string? vm, int? scanout)
    {
        if (string.IsNullOrEmpty(vm)) throw new ControlException(400, "\"vm\" is required: the VM whose scanout takes the zone");
        int s = scanout ?? 0;
        lock (_lock)
        {
            SyncBase();
            var layout = _base;
            var z = layout.Zone(zone) ?? throw new ControlException(404, $"no zone \"{zone}\" in the running layout");
            var v = layout.Vm(vm) ?? throw new ControlException(404, $"no vm \"{vm}\" in the running layout");
            int scanouts = CompositorHost.DeviceOptionsFor(layout, v).Scanouts;
            if (s < 0 || s >= scanouts) throw new ControlException(400, $"vm \"{vm}\" has scanouts 0..{scanouts - 1}, not {s}");
            // The loader's rule, word for word: a VM never shows in a zone of a higher class.
            if (v.Class < z.Class)
                throw new ControlException(409, $"vm \"{vm}\" is {LayoutLoader.ClassName(v.Class)} and cannot be shown in zone \"{zone}\", which is {LayoutLoader.ClassName(z.Class)}: content is never drawn over a zone of a higher class");
            if (layout.Placements.Any(p => p.Zone == zone && p.Vm == vm && p.Scanout == s))
                throw new ControlException(409, $"vm \"{vm}\" scanout {s} is already placed in zone \"{zone}\" by the layout");
            int top = layout.Placements.Where(p => p.Zone == zone).Select(p => p.Priority).DefaultIfEmpty(0).Max();
            int priority = top == int.MaxValue ? top : top + 1;
            _preemptions.RemoveAll(p => p.Zone == zone);
            var pre = new Preemption(zone, vm, s, priority);
            _preemptions.Add(pre);
            ApplyPreemptions();
            _log.LogInformation("control: vm \"{Vm}\" scanout {Scanout} preempts zone \"{Zone}\" (priority {Priority}) while it is live", vm, s, zone, priority);
            return ToDto(pre, null);
        }
    }

    /// <summary>Ends the API's preemption of <paramref name="zone"/> (404 when there is none).</summary>
    public void Release(string zone)
    {
        lock (_lock)
        {
            SyncBase();
            if (_base.Zone(zone) is null) throw new ControlException(404, $"no zone \"{zone}\" in the running layout");
            if (_preemptions.RemoveAll(p => p.Zone == zone) == 0) throw new ControlException(404, $"zone \"{zone}\" has no preemption from the API");
            ApplyPreemptions();
            _log.LogInformation("control: preemption of zone \"{Zone}\" released", zone);
        }
    }

    /// <summary>A layout applied by someone else (SIGHUP) replaces ours: preemptions end.</summary>
    private void SyncBase()
    {
        var running = Host.Layout;
        if (ReferenceEquals(running, _applied) || ReferenceEquals(running, _base)) return;
        _base = running;
        _applied = null;
        _source = "file";
        _preemptions.Clear();
    }

    private void ApplyPreemptions()
    {
        var placements = _base.Placements.ToList();
        foreach (var p in _preemptions) placements.Add(new PlacementConfig(p.Vm, p.Scanout, p.Zone, ScaleMode.Fit, p.Priority, Preempts: true));
        var layout = _base with { Placements = placements };
        _applied = layout;
        Host.ApplyLayout(layout);
    }

    public void Dispose()
    {
        Host.Engine.FrameComposed -= OnFrame;
        _sampler.Dispose();
        lock (_feeds)
        {
            foreach (var f in _feeds.Values) f.Dispose();
            _feeds.Clear();
        }
    }

    private sealed record Preemption(string Zone, string Vm, int Scanout, int Priority);

    /// <summary>Frame rate and flush-to-present latency of one VM, sampled twice a second.</summary>
    private sealed class VmRates
    {
        private readonly Queue<double> _fps = new(), _latency = new();
        private (long Frames, TimeSpan At)? _mark;
        private double _latencySum;
        private int _latencyCount;

        public double Fps { get; private set; }
        public double LatencyMs { get; private set; }

        public void AddLatency(double seconds)
        {
            _latencySum += seconds;
            _latencyCount++;
        }

        public void Sample(long frames, TimeSpan now)
        {
            if (_mark is { } m && now > m.At) Fps = (frames - m.Frames) / (now - m.At).TotalSeconds;
            _mark = (frames, now);
            if (_latencyCount > 0) LatencyMs = _latencySum / _latencyCount * 1000;
            else if (Fps == 0) LatencyMs = 0;
            _latencySum = 0;
            _latencyCount = 0;
            Push(_fps, Math.Round(Fps, 1));
            Push(_latency, Math.Round(LatencyMs, 2));
        }

        private static void Push(Queue<double> q, double v)
        {
            q.Enqueue(v);
            while (q.Count > HistoryLength) q.Dequeue();
        }

        public double[] FpsHistory() => _fps.ToArray();
        public double[] LatencyHistory() => _latency.ToArray();
    }
}
