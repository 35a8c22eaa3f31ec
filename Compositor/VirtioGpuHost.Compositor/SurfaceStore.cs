using VirtioGpuHost.Compositor.Core.Geometry;
using VirtioGpuHost.Compositor.Core.Scene;
using VirtioGpuHost.Device.Display;
using VirtioGpuHost.Device.Wire;

namespace VirtioGpuHost.Compositor;

/// <summary>One guest scanout as the compositor last heard of it.</summary>
public sealed record ScanoutState(
    SurfaceKey Key,
    IPixelSource? Source,
    VirtioGpuRect SourceRect,
    VirtioGpuFormat Format,
    long Frames,
    TimeSpan LastFrame)
{
    public bool IsEnabled => Source is not null && !SourceRect.IsEmpty;

    /// <summary>A Wayland window's app_id (windows only).</summary>
    public string? AppId { get; init; }

    /// <summary>A Wayland window's title (windows only).</summary>
    public string? Title { get; init; }

    /// <summary>
    /// A window whose client answers the server's pings: proof of life without new frames (an
    /// idle app redraws nothing). Scanouts: false (only flushes count).
    /// </summary>
    public bool Responsive { get; init; }
}

/// <summary>What changed for one scanout since the previous composed frame.</summary>
public sealed record ScanoutFrame(ScanoutState State, Region Damage, bool NewFrames);

/// <summary>Everything that happened since the previous composed frame.</summary>
public sealed record SceneChanges(IReadOnlyList<ScanoutFrame> Scanouts, IReadOnlyList<string> Disconnected);

/// <summary>
/// The meeting point of device threads (one per VM connection) and the compositor thread:
/// devices publish scanout changes and flush damage; the compositor takes everything that
/// happened since its last frame in one step. Guest pixels are not copied here: a scanout
/// names its resource (<see cref="IPixelSource"/>), read by the renderer at frame time.
/// </summary>
/// <remarks>
/// A VM's scanouts belong to its newest connection: a VMM that reconnects (QEMU restarted, a
/// back-end socket re-opened) takes over at once, and whatever the old connection still sends
/// while it winds down is ignored (<see cref="Connect"/> hands out the generation every update
/// must carry).
/// </remarks>
public sealed class SurfaceStore
{
    /// <summary>Damage rectangles kept per scanout and frame before they collapse into their bounds.</summary>
    public const int MaxDamageRects = 16;

    private readonly object _lock = new();
    private readonly Dictionary<SurfaceKey, Slot> _slots = new();
    private readonly Dictionary<string, long> _owners = new(StringComparer.Ordinal);
    private readonly List<string> _disconnected = new();
    private readonly Dictionary<string, long> _frames = new(StringComparer.Ordinal);
    private readonly Func<TimeSpan> _clock;
    private long _nextGeneration;

    public SurfaceStore(Func<TimeSpan> clock) { _clock = clock; }

    /// <summary>Now on the store's clock (the time base of <see cref="ScanoutState.LastFrame"/>).</summary>
    public TimeSpan Now => _clock();

    /// <summary>Raised (on a device thread) when a scanout changes or flushes: the frame clock may wake.</summary>
    public event Action? Changed;

    /// <summary>
    /// A connection of <paramref name="vm"/> starts: it owns the VM's scanouts from now on (any
    /// older connection's scanouts are dropped). Returns the generation its updates carry.
    /// </summary>
    public long Connect(string vm)
    {
        lock (_lock)
        {
            long gen = ++_nextGeneration;
            if (_owners.ContainsKey(vm)) ClearVm(vm);
            _owners[vm] = gen;
            return gen;
        }
    }

    /// <summary>The connection of generation <paramref name="generation"/> ended; if it still owned the VM, its scanouts go.</summary>
    public void Disconnect(string vm, long generation)
    {
        lock (_lock)
        {
            if (!_owners.TryGetValue(vm, out var owner) || owner != generation) return;
            _owners.Remove(vm);
            ClearVm(vm);
            _disconnected.Add(vm);
        }
        Changed?.Invoke();
    }

    /// <summary>Whether <paramref name="vm"/> has a connection now.</summary>
    public bool IsConnected(string vm)
    {
        lock (_lock) return _owners.ContainsKey(vm);
    }

    public void SetScanout(SurfaceKey key, long generation, IPixelSource? source, VirtioGpuRect rect, VirtioGpuFormat format)
    {
        lock (_lock)
        {
            if (!Owns(key.Vm, generation)) return;
            var s = SlotFor(key);
            s.State = s.State with { Source = source, SourceRect = source is null ? default : rect, Format = format };
            s.Damage.Clear();
            if (source is not null) s.Damage.Add(new RectI(0, 0, (int)rect.Width, (int)rect.Height));
        }
        Changed?.Invoke();
    }

    /// <summary>A flush: <paramref name="damage"/> is in scanout coordinates.</summary>
    public void Flushed(SurfaceKey key, long generation, IPixelSource? source, VirtioGpuRect rect, VirtioGpuFormat format, VirtioGpuRect damage)
    {
        var now = _clock();
        lock (_lock)
        {
            if (!Owns(key.Vm, generation)) return;
            var s = SlotFor(key);
            s.State = s.State with { Source = source, SourceRect = rect, Format = format, Frames = s.State.Frames + 1, LastFrame = now };
            s.Damage.Add(new RectI((int)damage.X, (int)damage.Y, (int)damage.Width, (int)damage.Height));
            // A guest flushing thousands of small rects per frame must not make the region (and
            // the compositor's work) grow without bound: past a few rects, their bounds stand in.
            if (s.Damage.Rects.Count > MaxDamageRects)
            {
                var bounds = s.Damage.Bounds;
                s.Damage.Clear();
                s.Damage.Add(bounds);
            }
            s.NewFrames = true;
            _frames[key.Vm] = _frames.GetValueOrDefault(key.Vm) + 1;
        }
        Changed?.Invoke();
    }

    /// <summary>
    /// A Wayland window of <paramref name="key"/>.Vm was mapped, committed (<paramref name="damage"/>
    /// not null: a new frame, in window coordinates) or renamed. Windows live as long as their
    /// client, independently of the VM's vhost-user connection (a host-side client, or a
    /// cross-domain channel that ends with its context), so no generation applies.
    /// </summary>
    public void WindowUpdated(SurfaceKey key, IPixelSource source, VirtioGpuRect rect, VirtioGpuFormat format,
        VirtioGpuRect? damage, string? appId, string? title, bool responsive)
    {
        if (!key.IsWindow) throw new ArgumentException("not a window key", nameof(key));
        var now = _clock();
        lock (_lock)
        {
            var s = SlotFor(key);
            bool resized = s.State.SourceRect.Width != rect.Width || s.State.SourceRect.Height != rect.Height || s.State.Source is null;
            s.Gone = false;
            s.State = s.State with
            {
                Source = source, SourceRect = rect, Format = format, AppId = appId, Title = title, Responsive = responsive,
                Frames = damage is null ? s.State.Frames : s.State.Frames + 1,
                LastFrame = damage is null ? s.State.LastFrame : now,
            };
            if (resized) { s.Damage.Clear(); s.Damage.Add(new RectI(0, 0, (int)rect.Width, (int)rect.Height)); }
            if (damage is { } d)
            {
                s.Damage.Add(new RectI((int)d.X, (int)d.Y, (int)d.Width, (int)d.Height));
                if (s.Damage.Rects.Count > MaxDamageRects)
                {
                    var bounds = s.Damage.Bounds;
                    s.Damage.Clear();
                    s.Damage.Add(bounds);
                }
                s.NewFrames = true;
                _frames[key.Vm] = _frames.GetValueOrDefault(key.Vm) + 1;
            }
        }
        Changed?.Invoke();
    }

    /// <summary>A window was unmapped or its client went away; the next <see cref="TakeChanges"/> reports it disabled once, then forgets it.</summary>
    public void WindowGone(SurfaceKey key)
    {
        lock (_lock)
        {
            if (!_slots.TryGetValue(key, out var s)) return;
            s.State = s.State with { Source = null, SourceRect = default, Responsive = false };
            s.Damage.Clear();
            s.NewFrames = false;
            s.Gone = true;
        }
        Changed?.Invoke();
    }

    /// <summary>Every scanout with the damage and frames since the last call (which clears them), and the VMs that disconnected.</summary>
    public SceneChanges TakeChanges()
    {
        lock (_lock)
        {
            var result = new List<ScanoutFrame>(_slots.Count);
            foreach (var s in _slots.Values)
            {
                result.Add(new ScanoutFrame(s.State, s.Damage.Clone(), s.NewFrames));
                s.Damage.Clear();
                s.NewFrames = false;
            }
            // Gone windows were reported once; their ids never come back.
            foreach (var f in result)
                if (f.State.Key.IsWindow && _slots.TryGetValue(f.State.Key, out var g) && g.Gone) _slots.Remove(f.State.Key);
            var gone = _disconnected.ToArray();
            _disconnected.Clear();
            return new SceneChanges(result, gone);
        }
    }

    /// <summary>Flushes of <paramref name="vm"/>'s scanouts counted so far (all connections).</summary>
    public long FramesOf(string vm)
    {
        lock (_lock) return _frames.TryGetValue(vm, out var n) ? n : 0;
    }

    public ScanoutState? Get(SurfaceKey key)
    {
        lock (_lock) return _slots.TryGetValue(key, out var s) ? s.State : null;
    }

    private bool Owns(string vm, long generation) => _owners.TryGetValue(vm, out var owner) && owner == generation;

    private void ClearVm(string vm)
    {
        foreach (var (k, s) in _slots)
        {
            if (k.Vm != vm || k.IsWindow) continue; // windows live with their clients, not the device connection
            s.State = s.State with { Source = null, SourceRect = default };
            s.Damage.Clear();
            s.NewFrames = false;
        }
    }

    private Slot SlotFor(SurfaceKey key)
    {
        if (!_slots.TryGetValue(key, out var s))
            _slots[key] = s = new Slot { State = new ScanoutState(key, null, default, VirtioGpuFormat.B8G8R8X8Unorm, 0, default) };
        return s;
    }

    private sealed class Slot
    {
        public required ScanoutState State;
        public readonly Region Damage = new();
        public bool NewFrames;
        public bool Gone;
    }
}
