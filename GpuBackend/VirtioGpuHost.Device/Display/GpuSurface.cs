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
    /// <summary>
    /// Where to get this resource's current pixels from another thread (a compositor that
    /// renders while the device keeps transferring); null for surfaces that never change.
    /// </summary>
    public IPixelSource? Source { get; init; }

    /// <summary>One row of <paramref name="rect"/> (bytes of width*4 starting at column rect.X).</summary>
    public Span<byte> Row(VirtioGpuRect rect, uint row) =>
        Memory.AsSpan(Offset + (ulong)(rect.Y + row) * Stride + (ulong)rect.X * PixelFormats.BytesPerPixel, checked((int)rect.Width * PixelFormats.BytesPerPixel));

    /// <summary>Native address of pixel (x, y) (for zero-copy sends).</summary>
    public nint Address(uint x, uint y) => Memory.Address + (nint)(Offset + (ulong)y * Stride + (ulong)x * PixelFormats.BytesPerPixel);
}

/// <summary>
/// A resource's pixels as another thread reads them. The device writes new pixels into a buffer
/// that is not published and publishes it under a short lock (a pointer swap), so taking the
/// current pixels never waits for a copy, and a reader holding the acquired surface never sees a
/// transfer in progress, except when the VM's host-memory budget has no room for a second
/// buffer (or a reader still holds both): then that VM's own pixels are written in place.
/// </summary>
public interface IPixelSource
{
    /// <summary>The current pixels with a reference taken (Release <see cref="GpuSurface.Memory"/> when done); null once the resource is gone.</summary>
    GpuSurface? AcquireCurrent();
}
