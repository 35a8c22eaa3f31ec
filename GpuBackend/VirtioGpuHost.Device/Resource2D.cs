using VirtioGpuHost.Device.Display;
using VirtioGpuHost.Device.Wire;
using VirtioGpuHost.GuestMemory;

namespace VirtioGpuHost.Device;

/// <summary>
/// A 2D resource: the host copy of the pixels (a memfd, so it can be shared with a
/// compositor or another process as a dma-buf-like surface) and the guest pages that back
/// it, kept as guest addresses and resolved in the current memory at each transfer (never
/// as host pointers that could dangle after a memory table change).
/// </summary>
public sealed class Resource2D : GpuResource, IPixelSource
{
    private MemoryBlock? _spare;

    public Resource2D(uint id, VirtioGpuFormat format, uint width, uint height, MemoryBlock memory) : base(id)
    {
        Format = format;
        Width = width;
        Height = height;
        Stride = width * PixelFormats.BytesPerPixel;
        Memory = memory;
        Surface = new GpuSurface(memory, 0, width, height, Stride, format) { Source = this };
    }

    /// <summary>Held to publish new pixels and to take the published ones (see <see cref="IPixelSource"/>); never during a copy into an unpublished buffer.</summary>
    internal object Sync { get; } = new();

    public GpuSurface? AcquireCurrent()
    {
        lock (Sync)
        {
            if (_disposed) return null;
            var s = Surface;
            s.Memory.AddRef();
            return s;
        }
    }

    private bool _disposed;

    public VirtioGpuFormat Format { get; }
    public uint Width { get; }
    public uint Height { get; }
    public uint Stride { get; }
    /// <summary>The current pixels (the front buffer).</summary>
    public MemoryBlock Memory { get; private set; }
    public GpuSurface Surface { get; private set; }

    /// <summary>Whether a second buffer exists (it counts against the guest's host memory).</summary>
    public bool HasSpare => _spare is not null;

    public ulong SizeBytes => (ulong)Stride * Height;

    private VirtioGpuMemEntry[]? _backing;
    private (IGuestMemory Memory, BackingView View)? _resolved;

    /// <summary>ATTACH_BACKING's scatter list, or null when the resource has no backing.</summary>
    public VirtioGpuMemEntry[]? Backing
    {
        get => _backing;
        set
        {
            _backing = value;
            _resolved = null;
            BackingLength = value is null ? 0 : value.Aggregate(0UL, (s, e) => s + e.Length);
        }
    }

    /// <summary>Total bytes of the scatter list.</summary>
    public ulong BackingLength { get; private set; }

    /// <summary>
    /// The backing resolved in <paramref name="memory"/> (null if part of it is not guest RAM).
    /// Kept while the memory snapshot stays the same, so a transfer of a small rect does not
    /// walk the whole scatter list again; a new memory table means a new snapshot object.
    /// </summary>
    internal BackingView? ResolveBacking(IGuestMemory memory)
    {
        if (_resolved is { } r && ReferenceEquals(r.Memory, memory)) return r.View;
        var view = _backing is null ? null : BackingView.Resolve(memory, _backing);
        _resolved = view is null ? null : (memory, view);
        return view;
    }

    // Double buffering. Readers (IPixelSource) only ever take the published buffer (Memory), and
    // a transfer never writes it while it is published: it writes the spare, outside the lock,
    // then publishes it with a pointer swap under the lock. So a compositor's frame thread never
    // waits for a VM's copy (an untrusted VM's thread runs at nice +10: a frame waiting on its
    // 8 MiB copy would wait as long as the scheduler starves that thread), and never sees a
    // transfer half done. Partial transfers keep the spare current from the rects it lacks
    // (what was written into the other buffer since), not by copying the whole resource.
    // Spare fields are used by the device's thread only (and Dispose, under the lock).
    private List<VirtioGpuRect>? _spareStale; // rects the spare lacks; null = all of it
    private const int MaxStaleRects = 8;

    /// <summary>
    /// The spare to write a transfer into (allocated with <paramref name="allocate"/> the first
    /// time), or null when there is none to be had: the host-memory budget has no room, or a
    /// reader still holds it (it was published and acquired before the last swap).
    /// </summary>
    internal MemoryBlock? TakeSpare(Func<MemoryBlock?> allocate)
    {
        if (_spare is null)
        {
            _spare = allocate();
            _spareStale = null;
            return _spare;
        }
        return _spare.IsExclusive ? _spare : null;
    }

    /// <summary>
    /// Copies into the spare, from the published buffer, the rects it lacks outside
    /// <paramref name="covered"/> (about to be written whole). Returns the bytes copied. Reads the
    /// published buffer without the lock: only this (the device's) thread ever writes it.
    /// </summary>
    internal ulong CatchUpSpare(VirtioGpuRect covered)
    {
        var spare = _spare!;
        var full = new VirtioGpuRect(0, 0, Width, Height);
        ulong copied = 0;
        foreach (var stale in _spareStale ?? [full])
        {
            if (Contains(covered, stale)) continue;
            uint rowBytes = stale.Width * PixelFormats.BytesPerPixel;
            for (uint y = stale.Y; y < stale.Y + stale.Height; y++)
            {
                ulong at = (ulong)y * Stride + (ulong)stale.X * PixelFormats.BytesPerPixel;
                Memory.AsSpan(at, (int)rowBytes).CopyTo(spare.AsSpan(at, (int)rowBytes));
            }
            copied += (ulong)rowBytes * stale.Height;
        }
        _spareStale = [];
        return copied;
    }

    /// <summary>Publishes the spare (written with <paramref name="written"/>) as the current pixels; the old ones become the spare, lacking that rect. Under <see cref="Sync"/>.</summary>
    internal void PublishSpare(VirtioGpuRect written)
    {
        var next = _spare!;
        _spare = Memory;
        _spareStale = [written];
        Memory = next;
        Surface = new GpuSurface(next, 0, Width, Height, Stride, Format) { Source = this };
    }

    /// <summary>The published pixels were written in place (no spare to be had): the spare, if any, now lacks <paramref name="written"/> too.</summary>
    internal void NoteWrittenInPlace(VirtioGpuRect written)
    {
        if (_spare is null || _spareStale is null) return;
        if (_spareStale.Count >= MaxStaleRects)
        {
            // Bounded bookkeeping: past a few rects the spare is simply caught up from their bounds.
            var b = written;
            foreach (var r in _spareStale) b = Union(b, r);
            _spareStale.Clear();
            _spareStale.Add(b);
        }
        else
        {
            _spareStale.Add(written);
        }
    }

    private static bool Contains(VirtioGpuRect outer, VirtioGpuRect inner) =>
        inner.X >= outer.X && inner.Y >= outer.Y && inner.X + inner.Width <= outer.X + outer.Width && inner.Y + inner.Height <= outer.Y + outer.Height;

    private static VirtioGpuRect Union(VirtioGpuRect a, VirtioGpuRect b)
    {
        uint x = Math.Min(a.X, b.X), y = Math.Min(a.Y, b.Y);
        return new VirtioGpuRect(x, y, Math.Max(a.X + a.Width, b.X + b.Width) - x, Math.Max(a.Y + a.Height, b.Y + b.Height) - y);
    }

    public override void Dispose()
    {
        lock (Sync)
        {
            if (_disposed) return;
            _disposed = true;
            Memory.Release();
            _spare?.Release();
            _spare = null;
        }
    }

    public override string ToString() => $"resource {Id} ({Width}x{Height} {Format})";
}
