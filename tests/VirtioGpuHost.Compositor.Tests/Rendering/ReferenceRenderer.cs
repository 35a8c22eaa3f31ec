using VirtioGpuHost.Compositor.Core.Geometry;
using VirtioGpuHost.Compositor.Rendering;

namespace VirtioGpuHost.Compositor.Tests.Rendering;

/// <summary>A draw call as the reference sees it.</summary>
internal abstract record RefCall(RectI Destination, Region Clip);

internal sealed record RefFill(RectI Destination, ColorBgra Color, Region Clip) : RefCall(Destination, Clip)
{
    public override string ToString() => $"Fill {Destination} {Color} clip {Clip}";
}

internal sealed record RefDraw(int Surface, RectI Source, RectI Destination, Region Clip, byte Dim) : RefCall(Destination, Clip)
{
    public override string ToString() => $"Draw s{Surface} {Source} -> {Destination} dim {Dim} clip {Clip}";
}

/// <summary>
/// The contract written as directly as possible, pixel by pixel, independent of the renderer's
/// code: for each target pixel in the damage, each call in order whose destination and clip
/// hold it samples its source at the pixel centre and replaces (opaque) or blends (premultiplied
/// source-over, x·a/255 rounded to nearest as (x·a + 127) / 255).
/// </summary>
internal static class ReferenceRenderer
{
    public static void Apply(uint[] pixels, SizeI size, Region damage, IReadOnlyList<RefCall> calls, IReadOnlyList<PinnedSurface> surfaces)
    {
        for (int y = 0; y < size.Height; y++)
            for (int x = 0; x < size.Width; x++)
            {
                if (!damage.Contains(x, y)) continue;
                uint c = pixels[y * size.Width + x];
                foreach (var call in calls)
                {
                    if (!Contains(call.Destination, x, y) || !call.Clip.Contains(x, y)) continue;
                    c = call switch
                    {
                        RefFill f => Over(f.Color.Value, c),
                        RefDraw d => Sample(d, surfaces[d.Surface], x, y, c),
                        _ => throw new InvalidOperationException(),
                    };
                }
                pixels[y * size.Width + x] = c;
            }
    }

    private static bool Contains(RectI r, int x, int y) =>
        x >= r.X && y >= r.Y && x < (long)r.X + r.Width && y < (long)r.Y + r.Height;

    private static uint Sample(RefDraw d, PinnedSurface s, int x, int y, uint below)
    {
        long sx = d.Source.X + (((long)x - d.Destination.X) * 2 + 1) * d.Source.Width / (2L * d.Destination.Width);
        long sy = d.Source.Y + (((long)y - d.Destination.Y) * 2 + 1) * d.Source.Height / (2L * d.Destination.Height);
        uint p = s[(int)sx, (int)sy];
        if (s.Layout == SourceLayout.BgraPremultiplied) return Over(Dim(p, d.Dim), below);
        byte b0 = (byte)p, b1 = (byte)(p >> 8), b2 = (byte)(p >> 16), b3 = (byte)(p >> 24);
        (byte b, byte g, byte r) = s.Layout switch
        {
            SourceLayout.Bgrx => (b0, b1, b2),
            SourceLayout.Xrgb => (b3, b2, b1),
            SourceLayout.Rgbx => (b2, b1, b0),
            SourceLayout.Xbgr => (b1, b2, b3),
            _ => throw new InvalidOperationException(),
        };
        return Dim(0xFF000000u | (uint)r << 16 | (uint)g << 8 | b, d.Dim);
    }

    public static uint Mul(uint x, uint a) => (x * a + 127) / 255;

    public static uint Dim(uint c, byte dim) =>
        (c & 0xFF000000u) | Mul((c >> 16) & 0xFF, dim) << 16 | Mul((c >> 8) & 0xFF, dim) << 8 | Mul(c & 0xFF, dim);

    public static uint Over(uint s, uint d)
    {
        uint ia = 255 - (s >> 24);
        uint r = 0;
        for (int shift = 0; shift < 32; shift += 8)
            r |= Math.Min(255u, ((s >> shift) & 0xFF) + Mul((d >> shift) & 0xFF, ia)) << shift;
        return r;
    }
}
