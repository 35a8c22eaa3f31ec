using System.IO.Hashing;
using Microsoft.Extensions.Logging;
using VirtioGpuHost.Compositor.Core.Geometry;
using VirtioGpuHost.Compositor.Core.Layout;
using VirtioGpuHost.Compositor.Core.Scene;
using VirtioGpuHost.Compositor.Outputs;
using VirtioGpuHost.Compositor.Rendering;
using VirtioGpuHost.Compositor.Rendering.Cpu;
using VirtioGpuHost.Compositor.Rendering.Labels;
using VirtioGpuHost.Device.Display;

namespace VirtioGpuHost.Compositor;

/// <summary>Settings of the frame loop.</summary>
public sealed record CompositorOptions
{
    /// <summary>Run the safety-region check on critical zones (damaged pixels every frame).</summary>
    public bool SafetyCheck { get; init; } = true;

    /// <summary>How often the check covers every visible pixel of critical zones, not only damage.</summary>
    public TimeSpan FullSafetyCheckInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// The renderer to continue on when the current one throws <see cref="RendererLostException"/>
    /// (its device or context is gone); null when none is left (the frame then fails). Default:
    /// a CPU renderer the engine makes and owns (none when the lost renderer already is one).
    /// <see cref="RendererChain.Next"/> is the usual value.
    /// </summary>
    public Func<RendererLostException, IRenderer?>? NextRenderer { get; init; }
}

/// <summary>What one output did in a frame.</summary>
public sealed record OutputFrameReport(string Output, long Frame, Region Damage, bool PlanChanged, FramePlan Plan, IReadOnlyList<SafetyCheckResult> SafetyChecks)
{
    public bool Rendered => !Damage.IsEmpty;
}

/// <summary>What one composed frame did.</summary>
public sealed record FrameReport(
    long Frame,
    TimeSpan At,
    IReadOnlyList<OutputFrameReport> Outputs,
    IReadOnlyList<HealthTransition> Transitions,
    IReadOnlyDictionary<string, VmHealth> Health,
    LayoutConfig Layout);

/// <summary>
/// The compositor's frame: take what the devices changed, update the watchdogs, solve the
/// layout, draw every output's damage with the renderer, verify the critical zones, present.
/// Everything runs on the caller's thread (the frame clock's, or a test's in step mode); the
/// device threads only meet it in <see cref="SurfaceStore"/> and in the resources' locks.
/// </summary>
/// <remarks>
/// <para>Atomic layouts: <see cref="SetLayout"/> only records the next layout; a frame picks it
/// up at its start and uses it for every output, so each frame shows one whole layout.</para>
/// <para>Guest pixels are read in place: each surface a frame draws is acquired
/// (<see cref="IPixelSource.AcquireCurrent"/>) once, drawn and checked, then released, so a
/// transfer arriving meanwhile goes to the resource's spare buffer instead of tearing it.</para>
/// </remarks>
public sealed class CompositorEngine : IDisposable
{
    private IRenderer _renderer;
    private IRenderer? _ownedRenderer;
    private readonly SurfaceStore _store;
    private readonly Func<TimeSpan> _clock;
    private readonly ILogger _log;
    private readonly CompositorOptions _options;
    private readonly Func<OutputConfig, IRenderer, IOutput> _outputFactory;
    private LabelTextureCache _labels;
    private readonly object _frameLock = new();
    private readonly Dictionary<SurfaceKey, ScanoutState> _scanouts = new();
    private readonly Dictionary<SurfaceKey, SurfaceTexture> _textures = new();
    private readonly Dictionary<string, OutputSlot> _outputs = new(StringComparer.Ordinal);
    private LayoutConfig _layout;
    private LayoutConfig? _nextLayout;
    private Watchdog _watchdog;
    private IReadOnlyDictionary<string, VmHealth> _health = new Dictionary<string, VmHealth>();
    private TimeSpan? _lastFullCheck;
    private long _frame;
    private long _safetyFailures;
    private long _rendererFallbacks;
    private long _composeTicks;
    private bool _disposed;

    public CompositorEngine(LayoutConfig layout, IRenderer renderer, SurfaceStore store, Func<TimeSpan> clock, ILogger logger,
        CompositorOptions? options = null, Func<OutputConfig, IRenderer, IOutput>? outputFactory = null)
    {
        _layout = layout;
        _renderer = renderer;
        _store = store;
        _clock = clock;
        _log = logger;
        _options = options ?? new CompositorOptions();
        _outputFactory = outputFactory ?? ((o, r) => new HeadlessOutput(r, o.Name, new SizeI(o.Width, o.Height), o.RefreshHz));
        _labels = new LabelTextureCache(renderer);
        _watchdog = new Watchdog(layout.Vms);
        SyncOutputs(layout);
    }

    /// <summary>The layout of the last composed frame (or the first one before any frame).</summary>
    public LayoutConfig Layout => Volatile.Read(ref _layout);

    /// <summary>Frames composed so far.</summary>
    public long Frames => Interlocked.Read(ref _frame);

    /// <summary>Time spent composing frames so far (for the average frame cost).</summary>
    public TimeSpan ComposeTime => TimeSpan.FromTicks(Interlocked.Read(ref _composeTicks));

    /// <summary>Safety-region checks that found a mismatch.</summary>
    public long SafetyFailures => Interlocked.Read(ref _safetyFailures);

    /// <summary>The renderer drawing now (another one after a device loss).</summary>
    public IRenderer Renderer => Volatile.Read(ref _renderer);

    /// <summary>Times a renderer lost its device and the engine moved on to the next one.</summary>
    public long RendererFallbacks => Interlocked.Read(ref _rendererFallbacks);

    /// <summary>Every configured VM's health as of the last frame.</summary>
    public IReadOnlyDictionary<string, VmHealth> Health => Volatile.Read(ref _health);

    /// <summary>Raised on the frame thread after each frame.</summary>
    public event Action<FrameReport>? FrameComposed;

    /// <summary>The output named <paramref name="name"/> (null when the layout has none).</summary>
    public IOutput? Output(string name)
    {
        lock (_frameLock) return _outputs.TryGetValue(name, out var o) ? o.Output : null;
    }

    public IReadOnlyList<IOutput> Outputs
    {
        get { lock (_frameLock) return _outputs.Values.Select(o => o.Output).ToList(); }
    }

    /// <summary>The shortest frame period of the current outputs (the frame clock's tick).</summary>
    public TimeSpan FramePeriod => TimeSpan.FromSeconds(1.0 / Math.Max(1, Layout.Outputs.Max(o => o.RefreshHz)));

    /// <summary>Makes <paramref name="layout"/> (already validated) the layout of the next frame; thread-safe.</summary>
    public void SetLayout(LayoutConfig layout) => Volatile.Write(ref _nextLayout, layout);

    /// <summary>Composes one frame of every output (the frame clock's tick; a test's step).</summary>
    public FrameReport ComposeFrame()
    {
        lock (_frameLock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            long started = System.Diagnostics.Stopwatch.GetTimestamp();
            var now = _clock();
            if (Interlocked.Exchange(ref _nextLayout, null) is { } next)
            {
                try
                {
                    ApplyLayout(next);
                }
                catch (RendererLostException lost)
                {
                    SwitchRenderer(lost, next); // remakes the outputs the new layout needs there
                }
            }
            var layout = _layout;
            long frame = ++_frame;

            var changes = _store.TakeChanges();
            foreach (var vm in changes.Disconnected) _watchdog.OnDisconnected(vm);
            var damage = new Dictionary<SurfaceKey, Region>();
            foreach (var sf in changes.Scanouts)
            {
                if (sf.State.Key.IsWindow && sf.State.Source is null)
                {
                    _scanouts.Remove(sf.State.Key); // a window gone for good (ids are never reused)
                    continue;
                }
                _scanouts[sf.State.Key] = sf.State;
                if (!sf.Damage.IsEmpty) damage[sf.State.Key] = sf.Damage;
            }
            // Window placements name the windows they show for this frame (the solver and the
            // watchdog see concrete surfaces); the configured layout stays what SetLayout gave.
            var frameLayout = ResolveWindows(layout);
            CountFrames(frameLayout, changes, now);

            var transitions = new List<HealthTransition>();
            var health = _watchdog.Evaluate(now, transitions);
            foreach (var t in transitions)
            {
                using var scope = _log.BeginScope(new Dictionary<string, object> { ["vm"] = t.Vm }); // the VM's name on the line, as its connection's lines
                if (t.To == VmHealth.Live) _log.LogInformation("watchdog: {Transition}", t);
                else _log.LogWarning("watchdog: {Transition}", t);
            }
            Volatile.Write(ref _health, health);

            var surfaces = new Dictionary<SurfaceKey, SurfaceInfo>();
            foreach (var (key, s) in _scanouts)
                if (s.IsEnabled) surfaces[key] = new SurfaceInfo((int)s.SourceRect.Width, (int)s.SourceRect.Height);
            var plans = LayoutSolver.Solve(frameLayout, new SceneState(health, surfaces));

            bool fullCheck = _options.SafetyCheck && (_lastFullCheck is not { } lastCheck || now - lastCheck >= _options.FullSafetyCheckInterval);
            if (fullCheck) _lastFullCheck = now;
            // A full check first repaints what it checks: between a transfer and its flush the
            // guest's memory is ahead of what the output shows (its damage is not known yet), so
            // comparing undamaged output pixels with the memory would report a false mismatch.
            var refresh = new HashSet<SurfaceKey>();
            if (fullCheck)
                foreach (var plan in plans)
                    foreach (var zone in plan.Zones)
                        if (zone.Class == SafetyClass.Critical && zone.ShownSurface is { } shown) refresh.Add(shown);
            var reports = new List<OutputFrameReport>(plans.Count);
            FrameSurfaces frameSurfaces;
            for (int attempt = 0; ; attempt++)
            {
                frameSurfaces = new FrameSurfaces(this, damage, refresh);
                try
                {
                    foreach (var plan in plans)
                        reports.Add(DrawOutput(frame, plan, frameSurfaces, fullCheck));
                    break;
                }
                catch (RendererLostException lost) when (attempt < MaxRendererSwitchesPerFrame)
                {
                    // The device is gone: continue on the next renderer and draw this frame
                    // again, whole, with a full safety check (nothing the lost one drew counts).
                    SwitchRenderer(lost, layout);
                    reports.Clear();
                    fullCheck = _options.SafetyCheck;
                    if (fullCheck) _lastFullCheck = now;
                }
                finally
                {
                    frameSurfaces.Release();
                }
            }
            _labels.EndFrame();
            DropUnusedTextures(frameSurfaces);

            Interlocked.Add(ref _composeTicks, System.Diagnostics.Stopwatch.GetElapsedTime(started).Ticks);
            var report = new FrameReport(frame, now, reports, transitions, health, layout);
            FrameComposed?.Invoke(report);
            return report;
        }
    }

    /// <summary>Feeds the watchdog: a flush counts as a frame when the layout shows that scanout somewhere.</summary>
    private void CountFrames(LayoutConfig layout, SceneChanges changes, TimeSpan now)
    {
        foreach (var sf in changes.Scanouts)
        {
            if (!sf.NewFrames || !sf.State.IsEnabled) continue;
            var key = sf.State.Key;
            var vm = layout.Vm(key.Vm);
            if (vm is null || !IsShownAnywhere(layout, key)) continue;
            ulong? hash = vm.ContentMustChange ? ContentHash(sf.State) : null;
            _watchdog.OnFrame(key.Vm, now, hash);
        }
        // An idle app redraws nothing: a shown window whose client answers pings is alive. (Not
        // for VMs whose content must change: only new, different frames prove life there.)
        foreach (var p in layout.Placements)
        {
            if (p.Match is null || p.Window <= 0 || !_scanouts.TryGetValue(p.Surface, out var w) || !w.IsEnabled || !w.Responsive) continue;
            if (layout.Vm(p.Vm) is { ContentMustChange: false }) _watchdog.OnFrame(p.Vm, now, null);
        }
    }

    private LayoutConfig? _resolvedLayout;

    private LayoutConfig ResolveWindows(LayoutConfig layout)
    {
        if (!WindowPlacements.Any(layout)) return layout; // most layouts place no window: no per-frame list then
        var windows = new List<WindowInfo>();
        foreach (var (key, s) in _scanouts)
            if (key.IsWindow && s.IsEnabled) windows.Add(new WindowInfo(key, s.AppId, s.Title));
        return _resolvedLayout = WindowPlacements.Resolve(layout, windows, _resolvedLayout);
    }

    private static bool IsShownAnywhere(LayoutConfig layout, SurfaceKey key)
    {
        foreach (var p in layout.Placements)
            if (p.Surface == key) return true;
        foreach (var vm in layout.Vms)
            if (vm.Fallback is { Kind: FallbackKind.OtherVm } f && f.Vm == key.Vm && f.Scanout == key.Scanout) return true;
        return false;
    }

    /// <summary>A hash of the scanout's current pixels (for VMs whose content must change).</summary>
    private static ulong? ContentHash(ScanoutState state)
    {
        var surface = state.Source?.AcquireCurrent();
        if (surface is null) return null;
        try
        {
            var hash = new XxHash3();
            var rect = state.SourceRect;
            for (uint y = 0; y < rect.Height; y++) hash.Append(surface.Row(rect, y));
            return hash.GetCurrentHashAsUInt64();
        }
        finally
        {
            surface.Memory.Release();
        }
    }

    private OutputFrameReport DrawOutput(long frame, FramePlan plan, FrameSurfaces surfaces, bool fullCheck)
    {
        var slot = _outputs[plan.Output.Name];
        var output = slot.Output;
        var full = new RectI(0, 0, output.Size.Width, output.Size.Height);
        bool planChanged = !PlanComparer.SameDrawing(slot.LastPlan, plan);

        // Resolve every surface first: its damage decides what this output repaints.
        var views = new (SurfaceTexture? Texture, SurfaceView View)[plan.Items.Count];
        var outputDamage = new Region();
        if (planChanged || slot.ForceFull) outputDamage.Add(full);
        for (int i = 0; i < plan.Items.Count; i++)
        {
            if (plan.Items[i] is not SurfaceItem item) continue;
            var (texture, view, surfaceDamage) = surfaces.Get(item.Surface);
            views[i] = (texture, view);
            bool missing = texture is null;
            if (missing != slot.Missing.Contains(item.Surface))
            {
                // The surface vanished (or came back) between the scene and the draw.
                outputDamage.Add(item.Destination);
                if (missing) slot.Missing.Add(item.Surface); else slot.Missing.Remove(item.Surface);
            }
            if (surfaceDamage is null || outputDamage.Rects.Count == 1 && outputDamage.Rects[0] == full) continue;
            foreach (var d in surfaceDamage.Rects)
            {
                var mapped = SourceViews.MapDamage(d, item.Source, item.Destination).Intersect(item.Clip.Bounds);
                if (!mapped.IsEmpty) outputDamage.Add(mapped);
            }
        }
        slot.LastPlan = plan;
        slot.ForceFull = false;

        var checks = new List<SafetyCheckResult>();
        if (!outputDamage.IsEmpty)
        {
            var pass = _renderer.BeginPass(output.Target, outputDamage);
            for (int i = 0; i < plan.Items.Count; i++)
            {
                switch (plan.Items[i])
                {
                    case SurfaceItem s when views[i].Texture is { } t:
                        pass.DrawTexture(t.Texture, s.Source, s.Destination, s.Clip, s.Dim);
                        break;
                    case SurfaceItem s:
                        pass.FillRect(s.Destination, plan.Output.Background, s.Clip);
                        break;
                    case FillItem f:
                        pass.FillRect(f.Destination, f.Color, f.Clip);
                        break;
                    case LabelItem l:
                        var size = new SizeI(l.Destination.Width, l.Destination.Height);
                        var tex = _labels.GetBar(l.Text, l.Background, l.Foreground, size);
                        pass.DrawTexture(tex, size.ToRect(), l.Destination, l.Clip);
                        break;
                }
            }
            pass.Submit();
        }
        if (_options.SafetyCheck && (fullCheck || !outputDamage.IsEmpty))
            CheckCriticalZones(plan, views, outputDamage, fullCheck, checks);
        if (!outputDamage.IsEmpty) output.Present(frame, outputDamage);
        return new OutputFrameReport(plan.Output.Name, frame, outputDamage, planChanged, plan, checks);
    }

    private void CheckCriticalZones(FramePlan plan, (SurfaceTexture? Texture, SurfaceView View)[] views, Region damage, bool full, List<SafetyCheckResult> results)
    {
        foreach (var zone in plan.Zones)
        {
            if (zone.Class != SafetyClass.Critical || zone.ShownSurface is not { } shown) continue;
            for (int i = 0; i < plan.Items.Count; i++)
            {
                if (plan.Items[i] is not SurfaceItem item || item.Zone != zone.Zone || item.Surface != shown || views[i].Texture is null) continue;
                var region = SafetyRegionCheck.VisibleRegion(plan, i);
                if (!full) region = Intersect(region, damage);
                if (region.IsEmpty) continue;
                var (outCrc, expected) = SafetyRegionCheck.Compute(_outputs[plan.Output.Name].Output.Target, region, views[i].View, item);
                var result = new SafetyCheckResult(plan.Output.Name, zone.Zone, shown.ToString(), region.Area, outCrc, expected, full);
                results.Add(result);
                if (!result.Ok)
                {
                    Interlocked.Increment(ref _safetyFailures);
                    _log.LogError("safety check failed: {Result}", result);
                    // Repaint the whole output next frame: a transient fault must not stay on screen.
                    _outputs[plan.Output.Name].ForceFull = true;
                }
            }
        }
    }

    private static Region Intersect(Region a, Region b)
    {
        var result = new Region();
        foreach (var r in b.Rects)
        {
            var part = a.Clone();
            part.Intersect(r);
            result.Add(part);
        }
        return result;
    }

    /// <summary>How often one frame may move on to another renderer (a chain is at most vulkan → gl → cpu).</summary>
    private const int MaxRendererSwitchesPerFrame = 4;

    /// <summary>
    /// The renderer lost its device: drop every texture and target made on it, take the next
    /// renderer, remake the outputs' targets and the label cache there, and repaint everything.
    /// Rethrows <paramref name="lost"/> when no renderer is left.
    /// </summary>
    private void SwitchRenderer(RendererLostException lost, LayoutConfig layout)
    {
        var old = _renderer;
        _log.LogError("renderer {Renderer} lost its device: {Error}; recreating textures and targets on the next renderer", old.Capabilities.Name, lost.Message);
        foreach (var t in _textures.Values) DisposeQuietly(t.Texture);
        _textures.Clear();
        DisposeQuietly(_labels);

        IRenderer? next;
        if (_options.NextRenderer is { } nextRenderer) next = nextRenderer(lost);
        else next = old is CpuRenderer ? null : new CpuRenderer();
        if (next is null)
        {
            _log.LogError("no renderer is left after {Renderer} lost its device; frames fail until one is", old.Capabilities.Name);
            _labels = new LabelTextureCache(old);
            foreach (var slot in _outputs.Values) slot.Reset(); // the next frame tries a whole repaint again
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(lost);
        }
        if (_options.NextRenderer is null)
        {
            if (_ownedRenderer is not null) DisposeQuietly(_ownedRenderer);
            _ownedRenderer = next;
        }
        Volatile.Write(ref _renderer, next);
        Interlocked.Increment(ref _rendererFallbacks);
        _labels = new LabelTextureCache(next);

        foreach (var (name, slot) in _outputs.ToList())
        {
            if (slot.Output is IRetargetableOutput retargetable)
            {
                retargetable.Retarget(next);
                slot.Reset();
                continue;
            }
            DisposeQuietly(slot.Output);
            _outputs.Remove(name);
        }
        SyncOutputs(layout); // makes the outputs that could not move over, on the new renderer
        _log.LogWarning("renderer: continuing on {Renderer} ({Details}); every output is repainted", next.Capabilities.Name, next.Capabilities.Details);
    }

    private void DisposeQuietly(IDisposable d)
    {
        try
        {
            d.Dispose();
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // What a lost device throws while its objects are released does not matter any more.
            _log.LogDebug("dispose after device loss: {Error}", e.Message);
        }
    }

    private void ApplyLayout(LayoutConfig next)
    {
        _log.LogInformation("layout: applying {Outputs} outputs, {Zones} zones, {Vms} VMs", next.Outputs.Count, next.Zones.Count, next.Vms.Count);
        _watchdog = _watchdog.Reconfigure(next.Vms);
        Volatile.Write(ref _layout, next);
        SyncOutputs(next);
    }

    /// <summary>Keeps outputs whose name and size are unchanged, makes new ones, disposes the rest.</summary>
    private void SyncOutputs(LayoutConfig layout)
    {
        var keep = new HashSet<string>(StringComparer.Ordinal);
        foreach (var o in layout.Outputs)
        {
            keep.Add(o.Name);
            if (_outputs.TryGetValue(o.Name, out var slot) && slot.Output.Size == new SizeI(o.Width, o.Height) && slot.Output.RefreshHz == o.RefreshHz
                && slot.Config.Window == o.Window)
            {
                slot.ForceFull = true;
                continue;
            }
            slot?.Output.Dispose();
            _outputs[o.Name] = new OutputSlot(_outputFactory(o, _renderer), o);
        }
        foreach (var name in _outputs.Keys.Where(n => !keep.Contains(n)).ToList())
        {
            _outputs[name].Output.Dispose();
            _outputs.Remove(name);
        }
    }

    private void DropUnusedTextures(FrameSurfaces used)
    {
        foreach (var key in _textures.Keys.Where(k => !used.Used(k)).ToList())
        {
            _textures[key].Texture.Dispose();
            _textures.Remove(key);
        }
        foreach (var key in _scanouts.Keys.Where(k => !_scanouts[k].IsEnabled && !used.Used(k)).ToList())
            _scanouts.Remove(key);
    }

    public void Dispose()
    {
        lock (_frameLock)
        {
            if (_disposed) return;
            _disposed = true;
            foreach (var t in _textures.Values) t.Texture.Dispose();
            _textures.Clear();
            _labels.Dispose();
            foreach (var o in _outputs.Values) o.Output.Dispose();
            _outputs.Clear();
            _ownedRenderer?.Dispose();
        }
    }

    private sealed class OutputSlot(IOutput output, OutputConfig config)
    {
        public IOutput Output { get; } = output;
        public OutputConfig Config { get; } = config;

        /// <summary>Forget what was drawn: the next frame repaints the whole output.</summary>
        public void Reset()
        {
            LastPlan = null;
            ForceFull = true;
            Missing.Clear();
        }

        public FramePlan? LastPlan { get; set; }
        public bool ForceFull { get; set; } = true;
        /// <summary>Surfaces the last frame could not acquire (drawn as background).</summary>
        public HashSet<SurfaceKey> Missing { get; } = new();
    }

    /// <summary>A renderer texture over a scanout, and what it was last pointed at.</summary>
    private sealed class SurfaceTexture(ITexture texture, SurfaceView view)
    {
        public ITexture Texture { get; set; } = texture;
        public SurfaceView View { get; set; } = view;
        public long LastFrame { get; set; }
    }

    /// <summary>
    /// The surfaces one frame draws: each acquired once (a reference on its memory), with its
    /// texture pointed at it and its damage since the texture was last updated; all released
    /// when the frame is done.
    /// </summary>
    private sealed class FrameSurfaces(CompositorEngine engine, Dictionary<SurfaceKey, Region> damage, HashSet<SurfaceKey> refresh)
    {
        private readonly Dictionary<SurfaceKey, (SurfaceTexture? Texture, SurfaceView View, Region? Damage)> _resolved = new();
        private readonly List<GpuSurface> _held = new();

        public bool Used(SurfaceKey key) => _resolved.TryGetValue(key, out var r) && r.Texture is not null;

        public (SurfaceTexture? Texture, SurfaceView View, Region? Damage) Get(SurfaceKey key)
        {
            if (_resolved.TryGetValue(key, out var r)) return r;
            r = Resolve(key);
            _resolved[key] = r;
            return r;
        }

        private (SurfaceTexture?, SurfaceView, Region?) Resolve(SurfaceKey key)
        {
            if (!engine._scanouts.TryGetValue(key, out var state) || !state.IsEnabled) return (null, default, null);
            var surface = state.Source!.AcquireCurrent();
            if (surface is null) return (null, default, null);
            _held.Add(surface);
            var view = SourceViews.View(surface, state.SourceRect);
            damage.TryGetValue(key, out var d);
            long frame = engine._frame;
            var full = new Region(new RectI(0, 0, view.Width, view.Height));
            if (engine._textures.TryGetValue(key, out var tex) && tex.View.Width == view.Width && tex.View.Height == view.Height && tex.View.Layout == view.Layout)
            {
                // A texture that skipped frames missed their damage: give it everything.
                var update = tex.LastFrame == frame - 1 && !refresh.Contains(key) ? d ?? new Region() : full;
                if (!update.IsEmpty || tex.View.Address != view.Address || tex.View.Stride != view.Stride)
                    engine._renderer.UpdateSurface(tex.Texture, view, update);
                tex.View = view;
                tex.LastFrame = frame;
                return (tex, view, update.IsEmpty ? null : update);
            }
            tex?.Texture.Dispose();
            tex = new SurfaceTexture(engine._renderer.ImportSurface(view), view) { LastFrame = frame };
            engine._textures[key] = tex;
            return (tex, view, full);
        }

        public void Release()
        {
            foreach (var s in _held) s.Memory.Release();
            _held.Clear();
        }
    }
}
