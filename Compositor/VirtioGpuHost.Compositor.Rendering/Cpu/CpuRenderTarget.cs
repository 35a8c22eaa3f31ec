using System.Runtime.InteropServices;
using VirtioGpuHost.Compositor.Core.Geometry;

namespace VirtioGpuHost.Compositor.Rendering.Cpu;

/// <summary>
/// An output frame in native memory: premultiplied BGRA (u32 0xAARRGGBB), rows of
/// <see cref="Stride"/> bytes, 64-byte aligned. Starts opaque black; every kernel keeps alpha
/// 255 over an opaque background, so the frame stays opaque.
/// </summary>
public sealed unsafe class CpuRenderTarget : IRenderTarget
{
    private uint* _pixels;

    internal CpuRenderTarget(CpuRenderer owner, SizeI size)
    {
        if (size.IsEmpty) throw new ArgumentOutOfRangeException(nameof(size), size, "a target needs a positive size");
        if ((long)size.Width * 4 > int.MaxValue / 2 || (long)size.Width * size.Height > int.MaxValue / 4)
            throw new ArgumentOutOfRangeException(nameof(size), size, "target too large");
        Owner = owner;
        Size = size;
        Stride = size.Width * 4;
        long bytes = (long)Stride * size.Height;
        _pixels = (uint*)NativeMemory.AlignedAlloc((nuint)bytes, 64);
        new Span<uint>(_pixels, size.Width * size.Height).Fill(0xFF000000u);
        Pass = new CpuRenderPass(this);
    }

    internal CpuRenderer Owner { get; }

    /// <summary>The one pass object of this target, reused every frame (no allocation per frame).</summary>
    internal CpuRenderPass Pass { get; }

    public SizeI Size { get; }

    /// <summary>Bytes from one row to the next.</summary>
    public int Stride { get; }

    /// <summary>The first pixel; valid until Dispose.</summary>
    public nint Address => _pixels != null ? (nint)_pixels : throw new ObjectDisposedException(nameof(CpuRenderTarget));

    internal uint* Pixels => _pixels;

    internal bool IsDisposed => _pixels == null;

    /// <summary>What the last submitted pass did.</summary>
    public RenderStats LastStats { get; internal set; }

    /// <summary>The pixels as a span (row-major, width per row; valid until Dispose).</summary>
    public ReadOnlySpan<uint> Span => new((void*)Address, Size.Width * Size.Height);

    public void ReadPixels(Span<uint> destination) => Span.CopyTo(destination);

    public void ReadPixels(RectI rect, Span<uint> destination)
    {
        if (!Size.ToRect().Contains(rect)) throw new ArgumentOutOfRangeException(nameof(rect), rect, $"not inside the {Size} target");
        if (destination.Length < rect.Area) throw new ArgumentException($"{rect} needs {rect.Area} pixels", nameof(destination));
        var all = Span;
        for (int y = 0; y < rect.Height; y++)
            all.Slice((rect.Y + y) * Size.Width + rect.X, rect.Width).CopyTo(destination.Slice(y * rect.Width, rect.Width));
    }

    public void Dispose()
    {
        if (_pixels == null) return;
        Pass.Release();
        NativeMemory.AlignedFree(_pixels);
        _pixels = null;
    }
}
