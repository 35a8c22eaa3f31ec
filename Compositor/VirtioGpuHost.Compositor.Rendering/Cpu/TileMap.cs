using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using VirtioGpuHost.Compositor.Core.Geometry;

namespace VirtioGpuHost.Compositor.Rendering.Cpu;

/// <summary>
/// What each 64x8 tile of a premultiplied texture holds: nothing (every byte zero), only opaque
/// pixels, a mix, or unknown. Blending skips transparent tiles without reading them, copies
/// opaque ones without reading the target and blends the rest. Kept current through the
/// contract's damage: an update only marks the tiles under its damage unknown (no reads), and
/// unknown tiles are scanned when a texture is drawn again without having changed in between,
/// so a texture updated every frame costs nothing extra and a settled one is scanned once.
/// </summary>
internal sealed unsafe class TileMap : IDisposable
{
    public const int WidthShift = 6, HeightShift = 3;
    public const byte Transparent = 0, Opaque = 1, Mixed = 2, Unknown = 3;

    private byte* _classes;

    private TileMap(int width, int height)
    {
        Width = width;
        Height = height;
        Columns = (width + (1 << WidthShift) - 1) >> WidthShift;
        Rows = (height + (1 << HeightShift) - 1) >> HeightShift;
        _classes = (byte*)NativeMemory.Alloc((nuint)Columns * (nuint)Rows);
    }

    public int Width { get; }
    public int Height { get; }
    public int Columns { get; }
    public int Rows { get; }

    /// <summary>Row-major tile classes, <see cref="Columns"/> per tile row.</summary>
    public byte* Classes => _classes;

    /// <summary>Whether some tile is <see cref="Unknown"/>.</summary>
    public bool HasUnknown { get; private set; }

    /// <summary>A map of a <paramref name="width"/> x <paramref name="height"/> texture with every tile unknown.</summary>
    public static TileMap CreateUnknown(int width, int height)
    {
        var map = new TileMap(width, height);
        new Span<byte>(map._classes, map.Columns * map.Rows).Fill(Unknown);
        map.HasUnknown = true;
        return map;
    }

    /// <summary>Marks the tiles that <paramref name="damage"/> (texture pixels) touches unknown.</summary>
    public void Invalidate(Region damage)
    {
        var rects = damage.Rects;
        for (int i = 0; i < rects.Count; i++)
        {
            var r = RectMath.ClipTo(rects[i], new SizeI(Width, Height));
            if (r.IsEmpty) continue;
            int col0 = r.X >> WidthShift, col1 = ((r.Right - 1) >> WidthShift) + 1;
            for (int ty = r.Y >> HeightShift; ty <= (r.Bottom - 1) >> HeightShift; ty++)
                new Span<byte>(_classes + ty * Columns + col0, col1 - col0).Fill(Unknown);
            HasUnknown = true;
        }
    }

    /// <summary>Classifies every unknown tile from <paramref name="view"/>'s pixels.</summary>
    public void ClassifyUnknown(in SurfaceView view)
    {
        for (int ty = 0; ty < Rows; ty++)
        {
            int y = ty << HeightShift, h = Math.Min(1 << HeightShift, Height - y);
            byte* row = _classes + ty * Columns;
            for (int tx = 0; tx < Columns; tx++)
            {
                if (row[tx] != Unknown) continue;
                int x = tx << WidthShift, w = Math.Min(1 << WidthShift, Width - x);
                row[tx] = Classify((byte*)view.Address + (long)y * view.Stride + (long)x * 4, view.Stride, w, h);
            }
        }
        HasUnknown = false;
    }

    /// <summary>The class of a w x h block: OR of all pixels zero = transparent, AND of all alphas 255 = opaque.</summary>
    internal static byte Classify(byte* first, int stride, int w, int h)
    {
        var any = Vector256<uint>.Zero;
        var all = Vector256<uint>.AllBitsSet;
        uint anyTail = 0, allTail = uint.MaxValue;
        for (int y = 0; y < h; y++)
        {
            uint* row = (uint*)(first + (long)y * stride);
            int x = 0;
            for (; x + 8 <= w; x += 8)
            {
                var v = Vector256.Load(row + x);
                any |= v;
                all &= v;
            }
            for (; x < w; x++)
            {
                anyTail |= row[x];
                allTail &= row[x];
            }
        }
        uint anyBits = anyTail | any[0] | any[1] | any[2] | any[3] | any[4] | any[5] | any[6] | any[7];
        uint allBits = allTail & all[0] & all[1] & all[2] & all[3] & all[4] & all[5] & all[6] & all[7];
        if (anyBits == 0) return Transparent;
        return (allBits & 0xFF000000u) == 0xFF000000u ? Opaque : Mixed;
    }

    public void Dispose()
    {
        NativeMemory.Free(_classes);
        _classes = null;
    }
}
