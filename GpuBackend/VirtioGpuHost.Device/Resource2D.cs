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

    /// <summary>Held while the device decides where to write and writes (see <see cref="IPixelSource"/>).</summary>
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

    /// <summary>
    /// Makes the spare buffer the front one (allocating it with <paramref name="allocate"/> the
    /// first time), so a transfer can write while a display still reads the old pixels; with
    /// <paramref name="keepContent"/> the old pixels are copied over first (a partial transfer).
    /// False when no exclusive spare is to be had: the caller then writes in place.
    /// </summary>
    internal bool TrySwapBuffers(Func<MemoryBlock?> allocate, bool keepContent)
    {
        var next = _spare;
        if (next is null)
        {
            next = allocate();
            if (next is null) return false;
        }
        else if (!next.IsExclusive)
        {
            return false;
        }
        if (keepContent) Memory.AsSpan(0, (int)SizeBytes).CopyTo(next.AsSpan(0, (int)SizeBytes));
        _spare = Memory;
        Memory = next;
        Surface = new GpuSurface(next, 0, Width, Height, Stride, Format) { Source = this };
        return true;
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
