namespace VirtioGpuHost.Compositor.Core.Scene;

/// <summary>
/// Names one surface of a VM: its scanout <see cref="Scanout"/> (guest display heads), or, with
/// <see cref="Window"/> &gt; 0, one of its Wayland windows (ids never reused; Scanout is then 0).
/// </summary>
public readonly record struct SurfaceKey(string Vm, int Scanout, long Window = 0)
{
    public bool IsWindow => Window != 0;

    public override string ToString() => Window != 0 ? $"{Vm}:window{Window}" : $"{Vm}:{Scanout}";
}
