using System.Runtime.InteropServices;

namespace VirtioGpuHost.Compositor.Wayland;

/// <summary>An integer rectangle (x, y may be negative); empty when W or H is not positive.</summary>
internal readonly record struct IntRect(int X, int Y, int W, int H)
{
    public bool IsEmpty => W <= 0 || H <= 0;
    public long Right => (long)X + W;
    public long Bottom => (long)Y + H;

    public IntRect Intersect(IntRect o)
    {
        long x1 = Math.Max(X, o.X), y1 = Math.Max(Y, o.Y);
        long x2 = Math.Min(Right, o.Right), y2 = Math.Min(Bottom, o.Bottom);
        return x2 <= x1 || y2 <= y1 ? default : new IntRect((int)x1, (int)y1, (int)(x2 - x1), (int)(y2 - y1));
    }

    public IntRect Union(IntRect o)
    {
        if (IsEmpty) return o;
        if (o.IsEmpty) return this;
        long x1 = Math.Min(X, o.X), y1 = Math.Min(Y, o.Y);
        long x2 = Math.Max(Right, o.Right), y2 = Math.Max(Bottom, o.Bottom);
        return Clamp(x1, y1, x2, y2);
    }

    public IntRect Offset(int dx, int dy) => IsEmpty ? this : Clamp((long)X + dx, (long)Y + dy, Right + dx, Bottom + dy);

    /// <summary>A client's rectangle (damage with INT32_MAX sizes is common): clamped, never overflowing.</summary>
    public static IntRect FromClient(int x, int y, int w, int h) =>
        w <= 0 || h <= 0 ? default : Clamp(x, y, (long)x + w, (long)y + h);

    private static IntRect Clamp(long x1, long y1, long x2, long y2)
    {
        const long Lim = 1 << 24; // far beyond any surface; keeps sums inside int
        x1 = Math.Clamp(x1, -Lim, Lim); y1 = Math.Clamp(y1, -Lim, Lim);
        x2 = Math.Clamp(x2, -Lim, Lim); y2 = Math.Clamp(y2, -Lim, Lim);
        return x2 <= x1 || y2 <= y1 ? default : new IntRect((int)x1, (int)y1, (int)(x2 - x1), (int)(y2 - y1));
    }
}

/// <summary>Pixel loops on premultiplied B8G8R8A8 rows.</summary>
internal static class PixelOps
{
    /// <summary>xrgb8888 stores X in the alpha byte: make it opaque.</summary>
    public static void ForceOpaque(Span<byte> row)
    {
        var px = MemoryMarshal.Cast<byte, uint>(row);
        for (int i = 0; i < px.Length; i++) px[i] |= 0xff000000u;
    }

    /// <summary>Premultiplied source-over of <paramref name="src"/> onto <paramref name="dst"/>.</summary>
    public static void BlendOver(ReadOnlySpan<uint> src, Span<uint> dst)
    {
        for (int i = 0; i < src.Length; i++)
        {
            uint s = src[i];
            uint a = s >> 24;
            if (a == 255) { dst[i] = s; continue; }
            if (s == 0) continue;
            dst[i] = BlendPixel(s, dst[i]);
        }
    }

    public static uint BlendPixel(uint s, uint d)
    {
        uint inv = 255 - (s >> 24);
        uint rb = (d & 0x00ff00ff) * inv + 0x00800080;
        rb = ((rb + ((rb >> 8) & 0x00ff00ff)) >> 8) & 0x00ff00ff;
        uint ag = ((d >> 8) & 0x00ff00ff) * inv + 0x00800080;
        ag = (ag + ((ag >> 8) & 0x00ff00ff)) & 0xff00ff00;
        uint r = rb | ag;
        // Per-channel saturating add (premultiplied inputs never exceed 255 per channel in theory; clamp anyway).
        uint lo = (s & 0x00ff00ff) + (r & 0x00ff00ff);
        uint hi = ((s >> 8) & 0x00ff00ff) + ((r >> 8) & 0x00ff00ff);
        lo |= 0x01000100 - ((lo >> 8) & 0x00010001);
        hi |= 0x01000100 - ((hi >> 8) & 0x00010001);
        return (lo & 0x00ff00ff) | ((hi & 0x00ff00ff) << 8);
    }
}
