using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace VirtioGpuHost.Compositor.Rendering.Cpu.Kernels;

/// <summary>
/// The row kernels on 256-bit vectors (8 pixels), AVX2. Same contract and bytes as
/// <see cref="ScalarKernels"/>; tails (n mod 8) go through the scalar code. Rounding of x·a/255
/// is (t + (t >> 8)) >> 8 with t = x·a + 128 on 16-bit lanes (t ≤ 65153, no overflow).
/// </summary>
internal static unsafe class Avx2Kernels
{
    public static bool IsSupported => Avx2.IsSupported;

    private static readonly Vector256<byte> AlphaIdx = PixelPattern(3, 3, 3, 3);
    private static readonly Vector256<byte> XrgbIdx = PixelPattern(3, 2, 1, 0);
    private static readonly Vector256<byte> RgbxIdx = PixelPattern(2, 1, 0, 3);
    private static readonly Vector256<byte> XbgrIdx = PixelPattern(1, 2, 3, 0);
    private static readonly Vector256<byte> AlphaBits = Vector256.Create(0xFF000000u).AsByte();

    /// <summary>vpshufb indices taking bytes p0..p3 of each pixel (indices are per 128-bit lane).</summary>
    internal static Vector256<byte> PixelPattern(int p0, int p1, int p2, int p3)
    {
        Span<byte> b = stackalloc byte[32];
        for (int k = 0; k < 8; k++)
        {
            int baseIndex = (k % 4) * 4;
            b[k * 4] = (byte)(baseIndex + p0);
            b[k * 4 + 1] = (byte)(baseIndex + p1);
            b[k * 4 + 2] = (byte)(baseIndex + p2);
            b[k * 4 + 3] = (byte)(baseIndex + p3);
        }
        return Vector256.Create((ReadOnlySpan<byte>)b);
    }

    internal static Vector256<byte> LayoutIdx(SourceLayout layout) => layout switch
    {
        SourceLayout.Xrgb => XrgbIdx,
        SourceLayout.Rgbx => RgbxIdx,
        SourceLayout.Xbgr => XbgrIdx,
        _ => default,
    };

    /// <summary>16-bit weights (dim, dim, dim, 255) per pixel: colour scaled, alpha kept.</summary>
    private static Vector256<ushort> DimWeights(byte dim) => Vector256.Create(0x00FF0000_00000000ul | (ulong)dim << 32 | (ulong)dim << 16 | dim).AsUInt16();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<ushort> Div255(Vector256<ushort> t) => (t + (t >>> 8)) >>> 8;

    /// <summary>Every byte times the matching 16-bit weight (same weights for both halves), /255 rounded.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<byte> MulWeights(Vector256<byte> x, Vector256<ushort> w)
    {
        var z = Vector256<byte>.Zero;
        var c = Vector256.Create((ushort)128);
        var lo = Div255(Avx2.UnpackLow(x, z).AsUInt16() * w + c);
        var hi = Div255(Avx2.UnpackHigh(x, z).AsUInt16() * w + c);
        return Avx2.PackUnsignedSaturate(lo.AsInt16(), hi.AsInt16());
    }

    /// <summary>Every byte of <paramref name="x"/> times the byte of <paramref name="a"/>, /255 rounded.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<byte> MulBytes(Vector256<byte> x, Vector256<byte> a)
    {
        var z = Vector256<byte>.Zero;
        var c = Vector256.Create((ushort)128);
        var lo = Div255(Avx2.UnpackLow(x, z).AsUInt16() * Avx2.UnpackLow(a, z).AsUInt16() + c);
        var hi = Div255(Avx2.UnpackHigh(x, z).AsUInt16() * Avx2.UnpackHigh(a, z).AsUInt16() + c);
        return Avx2.PackUnsignedSaturate(lo.AsInt16(), hi.AsInt16());
    }

    /// <summary>s over d; s already dimmed. Skips work for transparent (all-zero) and opaque vectors.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void OverStore(uint* dst, Vector256<byte> s)
    {
        var ia = ~Avx2.Shuffle(s, AlphaIdx);
        if (ia == Vector256<byte>.Zero)
        {
            s.AsUInt32().Store(dst);
            return;
        }
        var d = Vector256.Load((byte*)dst);
        Avx2.AddSaturate(s, MulBytes(d, ia)).AsUInt32().Store(dst);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<byte> ToOpaque(Vector256<byte> v, Vector256<byte> idx, bool shuffle, bool dim, Vector256<ushort> w)
    {
        if (shuffle) v = Avx2.Shuffle(v, idx);
        v |= AlphaBits;
        return dim ? MulWeights(v, w) : v;
    }

    public static void CopyOpaque(uint* dst, uint* src, int n, SourceLayout layout, byte dim)
    {
        bool shuffle = layout is not (SourceLayout.Bgrx or SourceLayout.BgraPremultiplied);
        int done = (shuffle, dim != 255) switch
        {
            (false, false) => CopyLoop(dst, src, n, layout, dim, false, false),
            (true, false) => CopyLoop(dst, src, n, layout, dim, true, false),
            (false, true) => CopyLoop(dst, src, n, layout, dim, false, true),
            _ => CopyLoop(dst, src, n, layout, dim, true, true),
        };
        ScalarKernels.CopyOpaque(dst + done, src + done, n - done, layout, dim);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int CopyLoop(uint* dst, uint* src, int n, SourceLayout layout, byte dim, bool shuffle, bool dimmed)
    {
        var idx = LayoutIdx(layout);
        var w = DimWeights(dim);
        int i = 0;
        for (; i + 16 <= n; i += 16)
        {
            var a = Vector256.Load((byte*)(src + i));
            var b = Vector256.Load((byte*)(src + i + 8));
            ToOpaque(a, idx, shuffle, dimmed, w).AsUInt32().Store(dst + i);
            ToOpaque(b, idx, shuffle, dimmed, w).AsUInt32().Store(dst + i + 8);
        }
        for (; i + 8 <= n; i += 8)
            ToOpaque(Vector256.Load((byte*)(src + i)), idx, shuffle, dimmed, w).AsUInt32().Store(dst + i);
        return i;
    }

    /// <summary>
    /// srcRow[xIndex[0..7]]. Indices of a scaled row rise slowly, so usually all 8 fall in a
    /// window of 16 pixels: two loads and two permutes, much cheaper than a hardware gather
    /// (which remains for steep downscales and the row's end).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<byte> Gather8(uint* srcRow, int srcWidth, int* xIndex)
    {
        int first = xIndex[0], span = xIndex[7] - first;
        var index = Vector256.Load(xIndex);
        if (span < 8 && first + 8 <= srcWidth)
            return Avx2.PermuteVar8x32(Vector256.Load(srcRow + first), (index - Vector256.Create(first)).AsUInt32()).AsByte();
        if (span < 16 && first + 16 <= srcWidth)
        {
            var relative = index - Vector256.Create(first);
            var lo = Avx2.PermuteVar8x32(Vector256.Load(srcRow + first), relative.AsUInt32());
            var hi = Avx2.PermuteVar8x32(Vector256.Load(srcRow + first + 8), relative.AsUInt32());
            return Vector256.ConditionalSelect(Vector256.GreaterThan(relative, Vector256.Create(7)).AsUInt32(), hi, lo).AsByte();
        }
        return Avx2.GatherVector256((int*)srcRow, index, 4).AsByte();
    }

    public static void CopyOpaqueScaled(uint* dst, uint* srcRow, int srcWidth, int* xIndex, int n, SourceLayout layout, byte dim)
    {
        bool shuffle = layout is not (SourceLayout.Bgrx or SourceLayout.BgraPremultiplied);
        int done = (shuffle, dim != 255) switch
        {
            (false, false) => ScaledLoop(dst, srcRow, srcWidth, xIndex, n, layout, dim, false, false),
            (true, false) => ScaledLoop(dst, srcRow, srcWidth, xIndex, n, layout, dim, true, false),
            (false, true) => ScaledLoop(dst, srcRow, srcWidth, xIndex, n, layout, dim, false, true),
            _ => ScaledLoop(dst, srcRow, srcWidth, xIndex, n, layout, dim, true, true),
        };
        ScalarKernels.CopyOpaqueScaled(dst + done, srcRow, srcWidth, xIndex + done, n - done, layout, dim);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int ScaledLoop(uint* dst, uint* srcRow, int srcWidth, int* xIndex, int n, SourceLayout layout, byte dim, bool shuffle, bool dimmed)
    {
        var idx = LayoutIdx(layout);
        var w = DimWeights(dim);
        int i = 0;
        for (; i + 8 <= n; i += 8)
        {
            var v = Gather8(srcRow, srcWidth, xIndex + i);
            ToOpaque(v, idx, shuffle, dimmed, w).AsUInt32().Store(dst + i);
        }
        return i;
    }

    public static void Blend(uint* dst, uint* src, int n, byte dim)
    {
        int i = 0;
        if (dim == 255)
        {
            for (; i + 8 <= n; i += 8)
            {
                var s = Vector256.Load((byte*)(src + i));
                if (s != Vector256<byte>.Zero) OverStore(dst + i, s);
            }
        }
        else
        {
            var w = DimWeights(dim);
            for (; i + 8 <= n; i += 8)
            {
                var s = Vector256.Load((byte*)(src + i));
                if (s != Vector256<byte>.Zero) OverStore(dst + i, MulWeights(s, w));
            }
        }
        ScalarKernels.Blend(dst + i, src + i, n - i, dim);
    }

    public static void BlendScaled(uint* dst, uint* srcRow, int srcWidth, int* xIndex, int n, byte dim)
    {
        int i = 0;
        var w = DimWeights(dim);
        bool dimmed = dim != 255;
        for (; i + 8 <= n; i += 8)
        {
            var s = Gather8(srcRow, srcWidth, xIndex + i);
            if (s == Vector256<byte>.Zero) continue;
            OverStore(dst + i, dimmed ? MulWeights(s, w) : s);
        }
        ScalarKernels.BlendScaled(dst + i, srcRow, srcWidth, xIndex + i, n - i, dim);
    }

    public static void Fill(uint* dst, uint color, int n)
    {
        var c = Vector256.Create(color);
        int i = 0;
        for (; i + 8 <= n; i += 8) c.Store(dst + i);
        ScalarKernels.Fill(dst + i, color, n - i);
    }

    public static void BlendFill(uint* dst, uint color, int n)
    {
        var s = Vector256.Create(color).AsByte();
        var w = Vector256.Create((ushort)(255 - (color >> 24)));
        int i = 0;
        for (; i + 8 <= n; i += 8)
        {
            var d = Vector256.Load((byte*)(dst + i));
            Avx2.AddSaturate(s, MulWeights(d, w)).AsUInt32().Store(dst + i);
        }
        ScalarKernels.BlendFill(dst + i, color, n - i);
    }
}
