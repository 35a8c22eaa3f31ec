using System.Globalization;

namespace VirtioGpuHost.Compositor.Core.Geometry;

/// <summary>
/// A colour as the compositor stores pixels: one native little-endian u32 0xAARRGGBB, i.e. bytes
/// B, G, R, A in memory, with premultiplied alpha.
/// </summary>
public readonly record struct ColorBgra(uint Value)
{
    public byte A => (byte)(Value >> 24);
    public byte R => (byte)(Value >> 16);
    public byte G => (byte)(Value >> 8);
    public byte B => (byte)Value;

    public bool IsOpaque => A == 255;

    public static ColorBgra Opaque(byte r, byte g, byte b) => new(0xFF000000u | (uint)r << 16 | (uint)g << 8 | b);

    /// <summary>Straight (non-premultiplied) RGBA to premultiplied BGRA, rounding like the renderers.</summary>
    public static ColorBgra FromStraight(byte r, byte g, byte b, byte a) =>
        new((uint)a << 24 | (uint)Mul(r, a) << 16 | (uint)Mul(g, a) << 8 | Mul(b, a));

    /// <summary>x*a/255 rounded, exactly as the SIMD kernels compute it.</summary>
    public static byte Mul(int x, int a)
    {
        int t = x * a + 128;
        return (byte)((t + (t >> 8)) >> 8);
    }

    /// <summary>Parses "#RRGGBB" or "#RRGGBBAA" (straight alpha).</summary>
    public static bool TryParse(string? text, out ColorBgra color)
    {
        color = default;
        if (text is null || text.Length is not (7 or 9) || text[0] != '#') return false;
        if (!uint.TryParse(text.AsSpan(1), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out uint v)) return false;
        if (text.Length == 7) v = v << 8 | 0xFF;
        color = FromStraight((byte)(v >> 24), (byte)(v >> 16), (byte)(v >> 8), (byte)v);
        return true;
    }

    public override string ToString() => $"#{R:x2}{G:x2}{B:x2}{A:x2}";
}
