using VirtioGpuHost.Compositor.Core.Geometry;

namespace VirtioGpuHost.Compositor.Rendering.Cpu;

/// <summary>A growable list of rectangles that is cleared and reused frame after frame (no allocation once warm).</summary>
internal sealed class RectList
{
    private RectI[] _items = new RectI[16];

    public int Count { get; private set; }

    public ref RectI this[int index] => ref _items[index];

    public ReadOnlySpan<RectI> AsSpan() => _items.AsSpan(0, Count);

    public ReadOnlySpan<RectI> Slice(int start, int count) => _items.AsSpan(start, count);

    public void Clear() => Count = 0;

    public void Add(RectI r)
    {
        if (Count == _items.Length) Array.Resize(ref _items, _items.Length * 2);
        _items[Count++] = r;
    }

    public void AddRange(ReadOnlySpan<RectI> rects)
    {
        foreach (var r in rects) Add(r);
    }

    /// <summary>Drops everything from <paramref name="count"/> on.</summary>
    public void Truncate(int count) => Count = count;
}

/// <summary>Rectangle arithmetic safe for any int coordinates (RectI.Right can overflow for hostile rects).</summary>
internal static class RectMath
{
    /// <summary><paramref name="r"/> ∩ (0, 0, size), computed in 64 bits.</summary>
    public static RectI ClipTo(RectI r, SizeI size)
    {
        if (r.IsEmpty) return default;
        long l = Math.Max(r.X, 0L), t = Math.Max(r.Y, 0L);
        long right = Math.Min((long)r.X + r.Width, size.Width), bottom = Math.Min((long)r.Y + r.Height, size.Height);
        return right <= l || bottom <= t ? default : RectI.FromEdges((int)l, (int)t, (int)right, (int)bottom);
    }

    /// <summary>Appends the parts of <paramref name="a"/> outside <paramref name="b"/> (up to four; both inside the target).</summary>
    public static void SubtractInto(RectI a, RectI b, RectList output)
    {
        var i = a.Intersect(b);
        if (i.IsEmpty)
        {
            output.Add(a);
            return;
        }
        if (i.Y > a.Y) output.Add(RectI.FromEdges(a.X, a.Y, a.Right, i.Y));
        if (i.Bottom < a.Bottom) output.Add(RectI.FromEdges(a.X, i.Bottom, a.Right, a.Bottom));
        if (i.X > a.X) output.Add(RectI.FromEdges(a.X, i.Y, i.X, i.Bottom));
        if (i.Right < a.Right) output.Add(RectI.FromEdges(i.Right, i.Y, a.Right, i.Bottom));
    }
}
