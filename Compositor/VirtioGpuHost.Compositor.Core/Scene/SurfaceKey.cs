namespace VirtioGpuHost.Compositor.Core.Scene;

/// <summary>Names one guest scanout: the VM and its scanout index.</summary>
public readonly record struct SurfaceKey(string Vm, int Scanout)
{
    public override string ToString() => $"{Vm}:{Scanout}";
}
