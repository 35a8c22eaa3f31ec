using VirtioGpuHost.Compositor.Core.Scene;
using VirtioGpuHost.Device.Display;
using VirtioGpuHost.Device.Wire;

namespace VirtioGpuHost.Compositor;

/// <summary>
/// A VM's virtio-gpu device presents here instead of on QEMU's display socket: its scanouts
/// become scene surfaces. The device answers display queries from its own options (the
/// compositor gave it its zones' sizes), and the compositor never makes it wait.
/// </summary>
public sealed class CompositorDisplay(string vm, SurfaceStore store) : IGpuDisplay
{
    public bool OwnsOutputCount => false;
    public Task<byte[]?>? QueryDisplayInfo() => null;
    public Task<byte[]?>? QueryEdid(uint scanoutId) => null;
    public bool IsBusy => false;
    public void WhenIdle(Action resume) => resume();

    public void ScanoutChanged(uint scanoutId, GpuSurface? surface, VirtioGpuRect source) =>
        store.SetScanout(new SurfaceKey(vm, (int)scanoutId), surface?.Source, source, surface?.Format ?? VirtioGpuFormat.B8G8R8X8Unorm);

    public void ScanoutFlushed(uint scanoutId, GpuSurface surface, VirtioGpuRect source, VirtioGpuRect damage) =>
        store.Flushed(new SurfaceKey(vm, (int)scanoutId), surface.Source, source, surface.Format, damage);

    // The cursor is not composited yet (guests in the recipe draw none); its state is kept by the device.
    public void CursorChanged(uint scanoutId, uint x, uint y, uint hotX, uint hotY, ReadOnlySpan<byte> bgra) { }

    public void CursorMoved(uint scanoutId, uint x, uint y, bool visible) { }
}
