namespace VirtioGpuHost.Compositor.Core.Geometry;

/// <summary>
/// A set of pixels as non-overlapping rectangles (damage, visibility). Small and exact: the
/// operations split rectangles; region sizes stay small for display damage.
/// </summary>
public sealed class Region
{
    private readonly List<RectI> _rects = new();

    public Region() { }

    public Region(RectI r)
    {
        if (!r.IsEmpty) _rects.Add(r);
    }

    public Region(IEnumerable<RectI> rects)
    {
        foreach (var r in rects) Add(r);
    }

    public IReadOnlyList<RectI> Rects => _rects;
    public bool IsEmpty => _rects.Count == 0;
    public long Area => _rects.Sum(r => r.Area);

    public RectI Bounds => _rects.Aggregate(default(RectI), (b, r) => b.Union(r));

    public Region Clone() => new(_rects);

    public void Clear() => _rects.Clear();

    /// <summary>Adds the pixels of <paramref name="r"/> (only the parts not already present are stored).</summary>
    public void Add(RectI r)
    {
        if (r.IsEmpty) return;
        var pieces = new List<RectI> { r };
        foreach (var existing in _rects)
        {
            var next = new List<RectI>();
            foreach (var p in pieces) Subtract(p, existing, next);
            pieces = next;
            if (pieces.Count == 0) return;
        }
        _rects.AddRange(pieces);
    }

    public void Add(Region other)
    {
        foreach (var r in other._rects) Add(r);
    }

    /// <summary>Removes the pixels of <paramref name="r"/>.</summary>
    public void Subtract(RectI r)
    {
        if (r.IsEmpty || _rects.Count == 0) return;
        var next = new List<RectI>(_rects.Count + 4);
        foreach (var e in _rects) Subtract(e, r, next);
        _rects.Clear();
        _rects.AddRange(next);
    }

    public void Subtract(Region other)
    {
        foreach (var r in other._rects) Subtract(r);
    }

    /// <summary>Keeps only the pixels inside <paramref name="r"/>.</summary>
    public void Intersect(RectI r)
    {
        for (int i = _rects.Count - 1; i >= 0; i--)
        {
            var x = _rects[i].Intersect(r);
            if (x.IsEmpty) _rects.RemoveAt(i);
            else _rects[i] = x;
        }
    }

    public bool Intersects(RectI r) => _rects.Any(x => x.Intersects(r));

    public bool Contains(int x, int y) => _rects.Any(r => r.Contains(x, y));

    /// <summary>The parts of <paramref name="a"/> outside <paramref name="b"/> (up to four rectangles).</summary>
    private static void Subtract(RectI a, RectI b, List<RectI> output)
    {
        var i = a.Intersect(b);
        if (i.IsEmpty)
        {
            output.Add(a);
            return;
        }
        if (i.Y > a.Y) output.Add(RectI.FromEdges(a.X, a.Y, a.Right, i.Y));                 // above
        if (i.Bottom < a.Bottom) output.Add(RectI.FromEdges(a.X, i.Bottom, a.Right, a.Bottom)); // below
        if (i.X > a.X) output.Add(RectI.FromEdges(a.X, i.Y, i.X, i.Bottom));                 // left
        if (i.Right < a.Right) output.Add(RectI.FromEdges(i.Right, i.Y, a.Right, i.Bottom));  // right
    }

    public override string ToString() => IsEmpty ? "empty" : string.Join(" ", _rects);
}
