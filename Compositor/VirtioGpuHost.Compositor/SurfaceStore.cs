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
}

/// <summary>What changed for one scanout since the previous composed frame.</summary>
public sealed record ScanoutFrame(ScanoutState State, Region Damage, bool NewFrames);

/// <summary>
/// The meeting point of device threads (one per VM connection) and the compositor thread:
/// devices publish scanout changes and flush damage; the compositor takes everything that
/// happened since its last frame in one step. Guest pixels are not copied here: a scanout
/// names its resource (<see cref="IPixelSource"/>), read by the renderer at frame time.
/// </summary>
public sealed class SurfaceStore
{
    private readonly object _lock = new();
    private readonly Dictionary<SurfaceKey, Slot> _slots = new();
    private readonly Func<TimeSpan> _clock;

    public SurfaceStore(Func<TimeSpan> clock) { _clock = clock; }

    /// <summary>Raised (on a device thread) when a scanout changes or flushes: the frame clock may wake.</summary>
    public event Action? Changed;

    public void SetScanout(SurfaceKey key, IPixelSource? source, VirtioGpuRect rect, VirtioGpuFormat format)
    {
        lock (_lock)
        {
            var s = SlotFor(key);
            s.State = s.State with { Source = source, SourceRect = source is null ? default : rect, Format = format };
            s.Damage.Clear();
            if (source is not null) s.Damage.Add(new RectI(0, 0, (int)rect.Width, (int)rect.Height));
            s.Dirty = true;
        }
        Changed?.Invoke();
    }

    /// <summary>A flush: <paramref name="damage"/> is in scanout coordinates.</summary>
    public void Flushed(SurfaceKey key, IPixelSource? source, VirtioGpuRect rect, VirtioGpuFormat format, VirtioGpuRect damage)
    {
        var now = _clock();
        lock (_lock)
        {
            var s = SlotFor(key);
            s.State = s.State with { Source = source, SourceRect = rect, Format = format, Frames = s.State.Frames + 1, LastFrame = now };
            s.Damage.Add(new RectI((int)damage.X, (int)damage.Y, (int)damage.Width, (int)damage.Height));
            s.Dirty = true;
            s.NewFrames = true;
        }
        Changed?.Invoke();
    }

    /// <summary>Forgets every scanout of a VM (its connection ended).</summary>
    public void RemoveVm(string vm)
    {
        lock (_lock)
        {
            foreach (var k in _slots.Keys.Where(k => k.Vm == vm).ToList())
            {
                var s = _slots[k];
                s.State = s.State with { Source = null, SourceRect = default };
                s.Damage.Clear();
                s.Dirty = true;
            }
        }
        Changed?.Invoke();
    }

    /// <summary>Every scanout with the damage and frames since the last call (which clears them).</summary>
    public IReadOnlyList<ScanoutFrame> TakeFrame()
    {
        lock (_lock)
        {
            var result = new List<ScanoutFrame>(_slots.Count);
            foreach (var s in _slots.Values)
            {
                result.Add(new ScanoutFrame(s.State, s.Damage.Clone(), s.NewFrames));
                s.Damage.Clear();
                s.Dirty = false;
                s.NewFrames = false;
            }
            return result;
        }
    }

    public ScanoutState? Get(SurfaceKey key)
    {
        lock (_lock) return _slots.TryGetValue(key, out var s) ? s.State : null;
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
        public bool Dirty;
        public bool NewFrames;
    }
}
