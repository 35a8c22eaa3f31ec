using VirtioGpuHost.Compositor.Core.Geometry;

namespace VirtioGpuHost.Compositor.Rendering.Cpu;

/// <summary>Which pixels each call really draws, and the source-x tables of scaled calls.</summary>
public sealed partial class CpuRenderPass
{
    private readonly RectList _pieces = new();
    private readonly RectList _occluders = new();
    private RectList _scratchA = new(), _scratchB = new();
    private readonly NativeIntBuffer _tables = new();

    /// <summary>
    /// Front to back: a call's pieces are its clip ∩ the pass damage, minus what later opaque
    /// calls cover (when culling); an opaque call's pieces then cover the calls before it. All
    /// pieces of one call are disjoint, so no pixel is drawn twice by one call.
    /// </summary>
    private RenderStats ComputeVisibility(bool culling)
    {
        _pieces.Clear();
        _occluders.Clear();
        int drawnCalls = 0;
        long drawn = 0, culled = 0;
        for (int i = _opCount - 1; i >= 0; i--)
        {
            ref var op = ref _ops[i];
            var a = _scratchA;
            a.Clear();
            foreach (var clip in _clips.Slice(op.ClipStart, op.ClipCount))
                foreach (var d in _damage.AsSpan())
                {
                    var r = clip.Intersect(d);
                    if (!r.IsEmpty) a.Add(r);
                }
            long before = Area(a.AsSpan());
            if (culling) a = SubtractOccluders(a, op.Visible);
            long after = Area(a.AsSpan());
            op.PieceStart = _pieces.Count;
            op.PieceCount = a.Count;
            _pieces.AddRange(a.AsSpan());
            if (culling && op.Occludes) _occluders.AddRange(a.AsSpan());
            drawn += after;
            culled += before - after;
            if (a.Count > 0) drawnCalls++;
        }
        return new RenderStats(_opCount, drawnCalls, drawn, culled, 0, false);
    }

    /// <summary>Removes every occluder from the pieces in <paramref name="pieces"/>; returns the list holding the rest.</summary>
    private RectList SubtractOccluders(RectList pieces, RectI bounds)
    {
        var current = pieces;
        foreach (var o in _occluders.AsSpan())
        {
            if (current.Count == 0) break;
            if (!o.Intersects(bounds)) continue;
            var next = ReferenceEquals(current, _scratchA) ? _scratchB : _scratchA;
            next.Clear();
            foreach (var p in current.AsSpan()) RectMath.SubtractInto(p, o, next);
            current = next;
        }
        return current;
    }

    private static long Area(ReadOnlySpan<RectI> rects)
    {
        long sum = 0;
        foreach (var r in rects) sum += r.Area;
        return sum;
    }

    /// <summary>
    /// For every scaled call with pieces, the source x of each destination x its pieces span
    /// (the documented centre-sample mapping), computed once per call and shared by all rows.
    /// </summary>
    private unsafe void BuildSourceTables()
    {
        int total = 0;
        for (int i = 0; i < _opCount; i++)
        {
            ref var op = ref _ops[i];
            if (!op.Scaled || op.PieceCount == 0) continue;
            int left = int.MaxValue, right = int.MinValue;
            foreach (var p in _pieces.Slice(op.PieceStart, op.PieceCount))
            {
                left = Math.Min(left, p.X);
                right = Math.Max(right, p.Right);
            }
            op.TableX0 = left;
            op.TableWidth = right - left;
            op.TableOffset = total;
            total += op.TableWidth;
        }
        if (total == 0) return;
        _tables.EnsureCapacity(total);
        for (int i = 0; i < _opCount; i++)
        {
            ref var op = ref _ops[i];
            if (!op.Scaled || op.PieceCount == 0) continue;
            int* t = _tables.Pointer + op.TableOffset;
            for (int k = 0; k < op.TableWidth; k++)
                t[k] = NearestMapping.Sample(op.TableX0 + k, op.Destination.X, op.Destination.Width, op.Source.X, op.Source.Width);
        }
    }
}
