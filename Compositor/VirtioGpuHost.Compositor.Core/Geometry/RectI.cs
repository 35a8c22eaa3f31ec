namespace VirtioGpuHost.Compositor.Core.Geometry;

/// <summary>An integer rectangle (x, y, width, height); empty when width or height is not positive.</summary>
public readonly record struct RectI(int X, int Y, int Width, int Height)
{
    public int Right => X + Width;
    public int Bottom => Y + Height;
    public bool IsEmpty => Width <= 0 || Height <= 0;
    public long Area => IsEmpty ? 0 : (long)Width * Height;

    public static RectI FromEdges(int left, int top, int right, int bottom) => new(left, top, right - left, bottom - top);

    public RectI Intersect(RectI o)
    {
        int l = Math.Max(X, o.X), t = Math.Max(Y, o.Y), r = Math.Min(Right, o.Right), b = Math.Min(Bottom, o.Bottom);
        return r <= l || b <= t ? default : FromEdges(l, t, r, b);
    }

    public bool Intersects(RectI o) => !Intersect(o).IsEmpty;

    public bool Contains(RectI o) => !o.IsEmpty && o.X >= X && o.Y >= Y && o.Right <= Right && o.Bottom <= Bottom;

    public bool Contains(int x, int y) => x >= X && y >= Y && x < Right && y < Bottom;

    /// <summary>The smallest rectangle holding both (an empty one is ignored).</summary>
    public RectI Union(RectI o)
    {
        if (IsEmpty) return o;
        if (o.IsEmpty) return this;
        return FromEdges(Math.Min(X, o.X), Math.Min(Y, o.Y), Math.Max(Right, o.Right), Math.Max(Bottom, o.Bottom));
    }

    public RectI Offset(int dx, int dy) => new(X + dx, Y + dy, Width, Height);

    /// <summary>Shrinks by <paramref name="left"/>.. on each side (never below empty).</summary>
    public RectI Inset(int left, int top, int right, int bottom) =>
        new(X + left, Y + top, Math.Max(0, Width - left - right), Math.Max(0, Height - top - bottom));

    public override string ToString() => $"{Width}x{Height}+{X}+{Y}";
}
