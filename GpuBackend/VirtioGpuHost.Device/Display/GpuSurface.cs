using VirtioGpuHost.Device.Wire;
using VirtioGpuHost.GuestMemory;

namespace VirtioGpuHost.Device.Display;

/// <summary>
/// Pixels as a display consumes them: a dma-buf-like description (memory, offset, size,
/// stride, format). The memory is reference counted; a display that keeps the surface
/// beyond the call must AddRef it (and Release when done).
/// </summary>
public sealed record GpuSurface(MemoryBlock Memory, ulong Offset, uint Width, uint Height, uint Stride, VirtioGpuFormat Format)
{
    /// <summary>One row of <paramref name="rect"/> (bytes of width*4 starting at column rect.X).</summary>
    public Span<byte> Row(VirtioGpuRect rect, uint row) =>
        Memory.AsSpan(Offset + (ulong)(rect.Y + row) * Stride + (ulong)rect.X * PixelFormats.BytesPerPixel, checked((int)rect.Width * PixelFormats.BytesPerPixel));

    /// <summary>Native address of pixel (x, y) (for zero-copy sends).</summary>
    public nint Address(uint x, uint y) => Memory.Address + (nint)(Offset + (ulong)y * Stride + (ulong)x * PixelFormats.BytesPerPixel);
}
