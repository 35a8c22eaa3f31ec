namespace VirtioGpuHost.Compositor.Rendering.Cpu.Kernels;

/// <summary>
/// The reference for every row kernel: one pixel at a time, written for clarity. The SIMD
/// kernels must produce exactly these bytes (the property tests compare them), and use these
/// functions for their tails. Pixels are native u32 0xAARRGGBB (bytes B, G, R, A). Scaled
/// kernels read srcRow[xIndex[i]]; srcWidth is how many pixels of the row may be read at all
/// (the vector kernels load whole windows of the row where the indices are close together).
/// </summary>
internal static unsafe class ScalarKernels
{
    /// <summary>x·a/255 rounded: (t + (t >> 8)) >> 8 with t = x·a + 128.</summary>
    public static uint Mul(uint x, uint a)
    {
        uint t = x * a + 128;
        return (t + (t >> 8)) >> 8;
    }

    /// <summary>An opaque source pixel (its bytes as read from memory) as B, G, R, 0xFF.</summary>
    public static uint ToOpaqueBgra(uint p, SourceLayout layout)
    {
        uint b0 = p & 0xFF, b1 = (p >> 8) & 0xFF, b2 = (p >> 16) & 0xFF, b3 = p >> 24;
        (uint b, uint g, uint r) = layout switch
        {
            SourceLayout.Xrgb => (b3, b2, b1),
            SourceLayout.Rgbx => (b2, b1, b0),
            SourceLayout.Xbgr => (b1, b2, b3),
            _ => (b0, b1, b2),
        };
        return 0xFF000000u | r << 16 | g << 8 | b;
    }

    /// <summary>Colour channels times dim/255; alpha unchanged.</summary>
    public static uint Dim(uint c, uint dim)
    {
        if (dim == 255) return c;
        return (c & 0xFF000000u) | Mul((c >> 16) & 0xFF, dim) << 16 | Mul((c >> 8) & 0xFF, dim) << 8 | Mul(c & 0xFF, dim);
    }

    /// <summary>Premultiplied source-over, each channel s + d·(255 − sa)/255 (saturating).</summary>
    public static uint Over(uint s, uint d)
    {
        uint ia = 255 - (s >> 24);
        uint result = 0;
        for (int shift = 0; shift < 32; shift += 8)
        {
            uint c = ((s >> shift) & 0xFF) + Mul((d >> shift) & 0xFF, ia);
            result |= Math.Min(c, 255u) << shift;
        }
        return result;
    }

    public static void CopyOpaque(uint* dst, uint* src, int n, SourceLayout layout, byte dim)
    {
        for (int i = 0; i < n; i++) dst[i] = Dim(ToOpaqueBgra(src[i], layout), dim);
    }

    public static void CopyOpaqueScaled(uint* dst, uint* srcRow, int srcWidth, int* xIndex, int n, SourceLayout layout, byte dim)
    {
        for (int i = 0; i < n; i++) dst[i] = Dim(ToOpaqueBgra(srcRow[xIndex[i]], layout), dim);
    }

    public static void Blend(uint* dst, uint* src, int n, byte dim)
    {
        for (int i = 0; i < n; i++) dst[i] = Over(Dim(src[i], dim), dst[i]);
    }

    public static void BlendScaled(uint* dst, uint* srcRow, int srcWidth, int* xIndex, int n, byte dim)
    {
        for (int i = 0; i < n; i++) dst[i] = Over(Dim(srcRow[xIndex[i]], dim), dst[i]);
    }

    public static void Fill(uint* dst, uint color, int n)
    {
        for (int i = 0; i < n; i++) dst[i] = color;
    }

    public static void BlendFill(uint* dst, uint color, int n)
    {
        for (int i = 0; i < n; i++) dst[i] = Over(color, dst[i]);
    }
}
