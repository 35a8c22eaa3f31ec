namespace VirtioGpuHost.Compositor.Core.Geometry;

public readonly record struct SizeI(int Width, int Height)
{
    public bool IsEmpty => Width <= 0 || Height <= 0;
    public RectI ToRect() => new(0, 0, Width, Height);
    public override string ToString() => $"{Width}x{Height}";
}
