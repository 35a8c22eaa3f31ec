using VirtioGpuHost.Device.Display;
using VirtioGpuHost.Device.Wire;
using VirtioGpuHost.GuestMemory;

namespace VirtioGpuHost.Device.Blobs;

/// <summary>
/// A blob on a scanout (SET_SCANOUT_BLOB): the blob's bytes seen as width x height pixels of
/// a format, <see cref="Stride"/> bytes a row, starting <see cref="Offset"/> bytes in.
/// <list type="bullet">
/// <item>HOST3D blob, or GUEST blob whose pages lie in one piece of one guest RAM region: the
/// surface IS that memory (zero copy). The view holds a reference on the block, so it never
/// dangles when the memory table changes; it is re-resolved in the current snapshot at every
/// flush.</item>
/// <item>Scattered GUEST blob: a host copy (memfd, charged to the host-memory budget) that each
/// flush refreshes for the flushed rect only (a gather).</item>
/// </list>
/// No tear protection is possible: the guest writes blob memory whenever it likes, so a display
/// reading the surface may see a frame in progress (the guest's own page-flipping avoids that).
/// </summary>
internal sealed class BlobScanout : IPixelSource, IDisposable
{
    private readonly object _sync = new();
    private GpuSurface? _surface; // holds one reference on its Memory
    private MemoryBlock? _gather;
    private IGuestMemory? _boundTo;
    private bool _disposed;

    public BlobScanout(BlobResource blob, ulong offset, uint width, uint height, uint stride, VirtioGpuFormat format)
    {
        Blob = blob;
        Offset = offset;
        Width = width;
        Height = height;
        Stride = stride;
        Format = format;
    }

    public BlobResource Blob { get; }
    public ulong Offset { get; }
    public uint Width { get; }
    public uint Height { get; }
    public uint Stride { get; }
    public VirtioGpuFormat Format { get; }

    /// <summary>Bytes of the blob the pixels span (from <see cref="Offset"/>).</summary>
    public ulong Extent => (ulong)Stride * (Height - 1) + (ulong)Width * PixelFormats.BytesPerPixel;

    /// <summary>The current surface (valid after a successful <see cref="Bind"/>).</summary>
    public GpuSurface Surface => _surface ?? throw new InvalidOperationException("blob scanout not bound");

    /// <summary>True when the surface is a host copy refreshed by <see cref="Gather"/>.</summary>
    public bool IsGathered => _gather is not null;

    /// <summary>Host memory held for the gather copy (charged to the budget by the device).</summary>
    public ulong GatherCharge { get; private set; }

    /// <summary>
    /// Points the surface at the blob's bytes in <paramref name="memory"/>: zero copy when they lie
    /// in one piece, else a gather buffer from <paramref name="allocateGather"/> (null: no room).
    /// Nothing to do when already bound to this snapshot. Returns an error, or null.
    /// </summary>
    public string? Bind(IGuestMemory memory, Func<ulong, MemoryBlock?> allocateGather)
    {
        if (_surface is not null && (Blob.Kind == BlobMemory.Host3D || ReferenceEquals(_boundTo, memory))) return null;
        if (Blob.Locate(memory) is { } p)
        {
            SetSurface(new GpuSurface(p.Block.AddRef(), p.Offset + Offset, Width, Height, Stride, Format) { Source = this });
            ReleaseGather();
        }
        else
        {
            if (Blob.ResolveScattered(memory) is null) return "its pages are no longer in guest memory";
            if (_gather is null)
            {
                var block = allocateGather(Extent);
                if (block is null) return $"no host memory for a {Extent}-byte copy of the scattered blob";
                _gather = block;
                GatherCharge = Extent;
                SetSurface(new GpuSurface(block.AddRef(), 0, Width, Height, Stride, Format) { Source = this });
            }
        }
        _boundTo = memory;
        return null;
    }

    /// <summary>Copies <paramref name="rect"/> (blob pixel coordinates, inside width x height) from the guest pages; bytes copied.</summary>
    public ulong Gather(IGuestMemory memory, VirtioGpuRect rect)
    {
        if (_gather is null || rect.IsEmpty) return 0;
        var view = Blob.ResolveScattered(memory);
        if (view is null) return 0;
        int rowBytes = checked((int)rect.Width * PixelFormats.BytesPerPixel);
        for (uint y = 0; y < rect.Height; y++)
        {
            ulong at = (ulong)(rect.Y + y) * Stride + (ulong)rect.X * PixelFormats.BytesPerPixel;
            view.CopyTo(Offset + at, _gather.AsSpan(at, rowBytes));
        }
        return (ulong)rowBytes * rect.Height;
    }

    public GpuSurface? AcquireCurrent()
    {
        lock (_sync)
        {
            if (_disposed || _surface is null) return null;
            _surface.Memory.AddRef();
            return _surface;
        }
    }

    private void SetSurface(GpuSurface surface)
    {
        GpuSurface? old;
        lock (_sync)
        {
            old = _surface;
            _surface = surface;
        }
        old?.Memory.Release();
    }

    private void ReleaseGather()
    {
        _gather?.Release();
        _gather = null;
        GatherCharge = 0;
    }

    public void Dispose()
    {
        lock (_sync)
        {
            if (_disposed) return;
            _disposed = true;
            _surface?.Memory.Release();
            _surface = null;
        }
        ReleaseGather();
    }
}
