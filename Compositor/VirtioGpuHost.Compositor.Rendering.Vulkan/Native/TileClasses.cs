using System.Runtime.Intrinsics;
using VirtioGpuHost.Compositor.Core.Geometry;

namespace VirtioGpuHost.Compositor.Rendering.Vulkan.Native;

/// <summary>
/// What each 16x16 block of a premultiplied texture holds (the CPU renderer's tile map, at the
/// Vulkan renderer's tile size): nothing (every word zero), only opaque pixels, a mix, or
/// unknown. The pass leaves a call out of a target tile whose source blocks are all transparent
/// (source-over of 0 leaves the target as it is, exactly) and treats it as opaque where they are
/// all opaque (culling what lies under it). Kept current through the contract's damage, as the
/// CPU renderer does: an update marks the blocks under its damage unknown (no reads), and unknown
/// blocks are scanned, from the memory the shader reads, when the texture is drawn again without
/// having changed in between (a texture updated every frame is never scanned).
/// </summary>
internal sealed unsafe class TileClasses
{
    public const int Shift = 4;
    public const byte Transparent = 0, Opaque = 1, Mixed = 2, Unknown = 3;

    private readonly byte[] _classes;

    public TileClasses(int width, int height)
    {
        Width = width;
        Height = height;
        Columns = (width + (1 << Shift) - 1) >> Shift;
        Rows = (height + (1 << Shift) - 1) >> Shift;
        _classes = new byte[Columns * Rows];
        _classes.AsSpan().Fill(Unknown);
        HasUnknown = true;
    }

    public int Width { get; }
    public int Height { get; }
    public int Columns { get; }
    public int Rows { get; }
    public bool HasUnknown { get; private set; }

    /// <summary>Marks the blocks that <paramref name="damage"/> (texture pixels) touches unknown.</summary>
    public void Invalidate(Region damage)
    {
        foreach (var rect in damage.Rects)
        {
            var r = rect.Intersect(new RectI(0, 0, Width, Height));
            if (r.IsEmpty) continue;
            int col0 = r.X >> Shift, col1 = ((r.Right - 1) >> Shift) + 1;
            for (int ty = r.Y >> Shift; ty <= (r.Bottom - 1) >> Shift; ty++)
                _classes.AsSpan(ty * Columns + col0, col1 - col0).Fill(Unknown);
            HasUnknown = true;
        }
    }

    /// <summary>Classifies every unknown block from the words the shader reads: <paramref name="buffer"/> at <paramref name="baseWord"/>, rows <paramref name="strideWords"/> apart.</summary>
    public void ClassifyUnknown(GpuBuffer buffer, int baseWord, int strideWords)
    {
        ObjectDisposedException.ThrowIf(buffer.IsFreed, buffer);
        uint* origin = (uint*)buffer.Mapped + baseWord;
        for (int ty = 0; ty < Rows; ty++)
        {
            int y = ty << Shift, h = Math.Min(1 << Shift, Height - y);
            for (int tx = 0; tx < Columns; tx++)
            {
                ref byte c = ref _classes[ty * Columns + tx];
                if (c != Unknown) continue;
                int x = tx << Shift, w = Math.Min(1 << Shift, Width - x);
                c = Classify(origin + (long)y * strideWords + x, strideWords, w, h);
            }
        }
        HasUnknown = false;
    }

    /// <summary>
    /// The class of the texture rectangle <paramref name="r"/> (inside the texture): transparent
    /// or opaque only when every block it touches is, otherwise mixed (unknown counts as mixed).
    /// </summary>
    public byte ClassOf(RectI r)
    {
        int col0 = r.X >> Shift, col1 = (r.Right - 1) >> Shift;
        int row0 = r.Y >> Shift, row1 = (r.Bottom - 1) >> Shift;
        byte first = _classes[row0 * Columns + col0];
        if (first > Opaque) return Mixed;
        for (int ty = row0; ty <= row1; ty++)
            for (int tx = col0; tx <= col1; tx++)
                if (_classes[ty * Columns + tx] != first) return Mixed;
        return first;
    }

    /// <summary>OR of all words zero = transparent, AND of all alphas 255 = opaque.</summary>
    private static byte Classify(uint* first, int strideWords, int w, int h)
    {
        var any = Vector256<uint>.Zero;
        var all = Vector256<uint>.AllBitsSet;
        uint anyTail = 0, allTail = uint.MaxValue;
        for (int y = 0; y < h; y++)
        {
            uint* row = first + (long)y * strideWords;
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
        for (int i = 0; i < Vector256<uint>.Count; i++)
        {
            anyTail |= any[i];
            allTail &= all[i];
        }
        if (anyTail == 0) return Transparent;
        return (allTail & 0xFF000000u) == 0xFF000000u ? Opaque : Mixed;
    }
}
