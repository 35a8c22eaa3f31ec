using VirtioGpuHost.Device.Wire;

namespace VirtioGpuHost.Device.Display;

/// <summary>
/// Where the device presents its scanouts and cursor: QEMU's display socket, the
/// compositor, or nothing. Implementations run on the device's event loop thread.
/// Scanout ids passed here are always below <see cref="VirtioGpuLimits.MaxScanouts"/>.
/// </summary>
public interface IGpuDisplay
{
    /// <summary>
    /// True when the display owns the number of outputs (QEMU's max_outputs, which QEMU
    /// writes into the guest's config itself): then any scanout id below 16 is accepted.
    /// False: only the device's configured scanouts exist.
    /// </summary>
    bool OwnsOutputCount { get; }

    /// <summary>
    /// Asks the display for virtio_gpu_resp_display_info (408 bytes). Null when this display
    /// does not answer such queries; a task that yields null when it could not answer in time.
    /// </summary>
    Task<byte[]?>? QueryDisplayInfo();

    /// <summary>Asks the display for virtio_gpu_resp_edid (1056 bytes) of one scanout; null as above.</summary>
    Task<byte[]?>? QueryEdid(uint scanoutId);

    /// <summary>True while the display cannot take more output (the device pauses its control queue).</summary>
    bool IsBusy { get; }

    /// <summary>Calls <paramref name="resume"/> once, on the loop, when <see cref="IsBusy"/> turns false.</summary>
    void WhenIdle(Action resume);

    /// <summary>A scanout now shows <paramref name="source"/> of <paramref name="surface"/>, or is disabled (null).</summary>
    void ScanoutChanged(uint scanoutId, GpuSurface? surface, VirtioGpuRect source);

    /// <summary>
    /// New pixels: <paramref name="damage"/> is in scanout coordinates (0,0 = the scanout's
    /// top-left, which is source.X, source.Y in the surface).
    /// </summary>
    void ScanoutFlushed(uint scanoutId, GpuSurface surface, VirtioGpuRect source, VirtioGpuRect damage);

    /// <summary>A new cursor image (64x64 B,G,R,A bytes) at a position with a hotspot.</summary>
    void CursorChanged(uint scanoutId, uint x, uint y, uint hotX, uint hotY, ReadOnlySpan<byte> bgra);

    /// <summary>The cursor moved, or was hidden.</summary>
    void CursorMoved(uint scanoutId, uint x, uint y, bool visible);
}

/// <summary>A display that shows nothing (before QEMU hands over its display socket).</summary>
public sealed class NullDisplay : IGpuDisplay
{
    public static NullDisplay Instance { get; } = new();
    public bool OwnsOutputCount => false;
    public Task<byte[]?>? QueryDisplayInfo() => null;
    public Task<byte[]?>? QueryEdid(uint scanoutId) => null;
    public bool IsBusy => false;
    public void WhenIdle(Action resume) => resume();
    public void ScanoutChanged(uint scanoutId, GpuSurface? surface, VirtioGpuRect source) { }
    public void ScanoutFlushed(uint scanoutId, GpuSurface surface, VirtioGpuRect source, VirtioGpuRect damage) { }
    public void CursorChanged(uint scanoutId, uint x, uint y, uint hotX, uint hotY, ReadOnlySpan<byte> bgra) { }
    public void CursorMoved(uint scanoutId, uint x, uint y, bool visible) { }
}
