using VirtioGpuHost.Compositor.Core.Scene;
using VirtioGpuHost.Device.Display;
using VirtioGpuHost.Device.Wire;

namespace VirtioGpuHost.Compositor;

/// <summary>
/// A VM connection's virtio-gpu device presents here instead of on QEMU's display socket: its
/// scanouts become scene surfaces. The device answers display queries from its own options
/// (the compositor gave it its zones' sizes), and the compositor never makes it wait.
/// </summary>
public sealed class CompositorDisplay : IGpuDisplay
{
    private readonly string _vm;
    private readonly SurfaceStore _store;
    private int _ended;

    /// <summary>Takes over <paramref name="vm"/>'s scanouts in <paramref name="store"/> (see <see cref="SurfaceStore.Connect"/>).</summary>
    public CompositorDisplay(string vm, SurfaceStore store)
    {
        _vm = vm;
        _store = store;
        Generation = store.Connect(vm);
    }

    public string Vm => _vm;
    public long Generation { get; }

    public bool OwnsOutputCount => false;
    public Task<byte[]?>? QueryDisplayInfo() => null;
    public Task<byte[]?>? QueryEdid(uint scanoutId) => null;
    public bool IsBusy => false;
    public void WhenIdle(Action resume) => resume();

    public void ScanoutChanged(uint scanoutId, GpuSurface? surface, VirtioGpuRect source) =>
        _store.SetScanout(new SurfaceKey(_vm, (int)scanoutId), Generation, surface?.Source, source, surface?.Format ?? VirtioGpuFormat.B8G8R8X8Unorm);

    public void ScanoutFlushed(uint scanoutId, GpuSurface surface, VirtioGpuRect source, VirtioGpuRect damage) =>
        _store.Flushed(new SurfaceKey(_vm, (int)scanoutId), Generation, surface.Source, source, surface.Format, damage);

    // The cursor is not composited yet (guests in the recipe draw none); its state is kept by the device.
    public void CursorChanged(uint scanoutId, uint x, uint y, uint hotX, uint hotY, ReadOnlySpan<byte> bgra) { }

    public void CursorMoved(uint scanoutId, uint x, uint y, bool visible) { }

    /// <summary>The connection ended: the VM's scanouts go unless a newer connection owns them.</summary>
    public void Disconnected()
    {
        if (Interlocked.Exchange(ref _ended, 1) == 0) _store.Disconnect(_vm, Generation);
    }
}
