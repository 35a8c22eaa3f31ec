using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace VirtioGpuHost.Compositor.Rendering.Cpu.Kernels;

/// <summary>
/// The row kernels on 512-bit vectors (16 pixels), AVX-512BW. Same contract and bytes as
/// <see cref="ScalarKernels"/>; tails (n mod 16) go through the AVX2 kernels, then the scalar
/// code. Rounding of x·a/255 is (t + (t >> 8)) >> 8 with t = x·a + 128 on 16-bit lanes
/// (t ≤ 65153, no overflow).
/// </summary>
internal static unsafe class Avx512Kernels
{
    public static bool IsSupported => Avx512BW.IsSupported;

    private static readonly Vector512<byte> AlphaIdx = PixelPattern(3, 3, 3, 3);
    private static readonly Vector512<byte> XrgbIdx = PixelPattern(3, 2, 1, 0);
    private static readonly Vector512<byte> RgbxIdx = PixelPattern(2, 1, 0, 3);
    private static readonly Vector512<byte> XbgrIdx = PixelPattern(1, 2, 3, 0);
    private static readonly Vector512<byte> AlphaBits = Vector512.Create(0xFF000000u).AsByte();

    /// <summary>vpshufb indices taking bytes p0..p3 of each pixel (indices are per 128-bit lane).</summary>
    internal static Vector512<byte> PixelPattern(int p0, int p1, int p2, int p3)
    {
        Span<byte> b = stackalloc byte[64];
        for (int k = 0; k < 16; k++)
        {
            int baseIndex = (k % 4) * 4;
            b[k * 4] = (byte)(baseIndex + p0);
            b[k * 4 + 1] = (byte)(baseIndex + p1);
            b[k * 4 + 2] = (byte)(baseIndex + p2);
            b[k * 4 + 3] = (byte)(baseIndex + p3);
        }
        return Vector512.Create((ReadOnlySpan<byte>)b);
    }

    internal static Vector512<byte> LayoutIdx(SourceLayout layout) => layout switch
    {
        SourceLayout.Xrgb => XrgbIdx,
        SourceLayout.Rgbx => RgbxIdx,
        SourceLayout.Xbgr => XbgrIdx,
        _ => default,
    };

    /// <summary>16-bit weights (dim, dim, dim, 255) per pixel: colour scaled, alpha kept.</summary>
    private static Vector512<ushort> DimWeights(byte dim) => Vector512.Create(0x00FF0000_00000000ul | (ulong)dim << 32 | (ulong)dim << 16 | dim).AsUInt16();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<ushort> Div255(Vector512<ushort> t) => (t + (t >>> 8)) >>> 8;

    /// <summary>Every byte times the matching 16-bit weight (same weights for both halves), /255 rounded.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<byte> MulWeights(Vector512<byte> x, Vector512<ushort> w)
    {
        var z = Vector512<byte>.Zero;
        var c = Vector512.Create((ushort)128);
        var lo = Div255(Avx512BW.UnpackLow(x, z).AsUInt16() * w + c);
        var hi = Div255(Avx512BW.UnpackHigh(x, z).AsUInt16() * w + c);
        return Avx512BW.PackUnsignedSaturate(lo.AsInt16(), hi.AsInt16());
    }

    /// <summary>Every byte of <paramref name="x"/> times the byte of <paramref name="a"/>, /255 rounded.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<byte> MulBytes(Vector512<byte> x, Vector512<byte> a)
    {
        var z = Vector512<byte>.Zero;
        var c = Vector512.Create((ushort)128);
        var lo = Div255(Avx512BW.UnpackLow(x, z).AsUInt16() * Avx512BW.UnpackLow(a, z).AsUInt16() + c);
        var hi = Div255(Avx512BW.UnpackHigh(x, z).AsUInt16() * Avx512BW.UnpackHigh(a, z).AsUInt16() + c);
        return Avx512BW.PackUnsignedSaturate(lo.AsInt16(), hi.AsInt16());
    }

    /// <summary>s over d; s already dimmed. Skips work for transparent (all-zero) and opaque vectors.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void OverStore(uint* dst, Vector512<byte> s)
    {
        var ia = ~Avx512BW.Shuffle(s, AlphaIdx);
        if (ia == Vector512<byte>.Zero)
        {
            s.AsUInt32().Store(dst);
            return;
        }
        var d = Vector512.Load((byte*)dst);
        Avx512BW.AddSaturate(s, MulBytes(d, ia)).AsUInt32().Store(dst);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<byte> ToOpaque(Vector512<byte> v, Vector512<byte> idx, bool shuffle, bool dim, Vector512<ushort> w)
    {
        if (shuffle) v = Avx512BW.Shuffle(v, idx);
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
        Avx2Kernels.CopyOpaque(dst + done, src + done, n - done, layout, dim);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int CopyLoop(uint* dst, uint* src, int n, SourceLayout layout, byte dim, bool shuffle, bool dimmed)
    {
        var idx = LayoutIdx(layout);
        var w = DimWeights(dim);
        int i = 0;
        for (; i + 32 <= n; i += 32)
        {
            var a = Vector512.Load((byte*)(src + i));
            var b = Vector512.Load((byte*)(src + i + 16));
            ToOpaque(a, idx, shuffle, dimmed, w).AsUInt32().Store(dst + i);
            ToOpaque(b, idx, shuffle, dimmed, w).AsUInt32().Store(dst + i + 16);
        }
        for (; i + 16 <= n; i += 16)
            ToOpaque(Vector512.Load((byte*)(src + i)), idx, shuffle, dimmed, w).AsUInt32().Store(dst + i);
        return i;
    }

    /// <summary>
    /// srcRow[xIndex[0..15]]: one or two loads and a permute when the 16 indices fall within a
    /// window of 16 or 32 pixels (any upscale, downscales to about 2:1), else two AVX2 gathers
    /// (.NET has no 512-bit gather).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<byte> Gather16(uint* srcRow, int srcWidth, int* xIndex)
    {
        int first = xIndex[0], span = xIndex[15] - first;
        if (span < 32 && first + 32 <= srcWidth)
        {
            var relative = (Vector512.Load(xIndex) - Vector512.Create(first)).AsUInt32();
            return Avx512F.PermuteVar16x32x2(Vector512.Load(srcRow + first), relative, Vector512.Load(srcRow + first + 16)).AsByte();
        }
        if (span < 16 && first + 16 <= srcWidth)
            return Avx512F.PermuteVar16x32(Vector512.Load(srcRow + first), (Vector512.Load(xIndex) - Vector512.Create(first)).AsUInt32()).AsByte();
        return Vector512.Create(Avx2Kernels.Gather8(srcRow, srcWidth, xIndex), Avx2Kernels.Gather8(srcRow, srcWidth, xIndex + 8));
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
        Avx2Kernels.CopyOpaqueScaled(dst + done, srcRow, srcWidth, xIndex + done, n - done, layout, dim);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int ScaledLoop(uint* dst, uint* srcRow, int srcWidth, int* xIndex, int n, SourceLayout layout, byte dim, bool shuffle, bool dimmed)
    {
        var idx = LayoutIdx(layout);
        var w = DimWeights(dim);
        int i = 0;
        for (; i + 16 <= n; i += 16)
        {
            var v = Gather16(srcRow, srcWidth, xIndex + i).AsByte();
            ToOpaque(v, idx, shuffle, dimmed, w).AsUInt32().Store(dst + i);
        }
        return i;
    }

    public static void Blend(uint* dst, uint* src, int n, byte dim)
    {
        int i = 0;
        if (dim == 255)
        {
            for (; i + 16 <= n; i += 16)
            {
                var s = Vector512.Load((byte*)(src + i));
                if (s != Vector512<byte>.Zero) OverStore(dst + i, s);
            }
        }
        else
        {
            var w = DimWeights(dim);
            for (; i + 16 <= n; i += 16)
            {
                var s = Vector512.Load((byte*)(src + i));
                if (s != Vector512<byte>.Zero) OverStore(dst + i, MulWeights(s, w));
            }
        }
        Avx2Kernels.Blend(dst + i, src + i, n - i, dim);
    }

    public static void BlendScaled(uint* dst, uint* srcRow, int srcWidth, int* xIndex, int n, byte dim)
    {
        int i = 0;
        var w = DimWeights(dim);
        bool dimmed = dim != 255;
        for (; i + 16 <= n; i += 16)
        {
            var s = Gather16(srcRow, srcWidth, xIndex + i).AsByte();
            if (s == Vector512<byte>.Zero) continue;
            OverStore(dst + i, dimmed ? MulWeights(s, w) : s);
        }
        Avx2Kernels.BlendScaled(dst + i, srcRow, srcWidth, xIndex + i, n - i, dim);
    }

    public static void Fill(uint* dst, uint color, int n)
    {
        var c = Vector512.Create(color);
        int i = 0;
        for (; i + 16 <= n; i += 16) c.Store(dst + i);
        Avx2Kernels.Fill(dst + i, color, n - i);
    }

    public static void BlendFill(uint* dst, uint color, int n)
    {
        var s = Vector512.Create(color).AsByte();
        var w = Vector512.Create((ushort)(255 - (color >> 24)));
        int i = 0;
        for (; i + 16 <= n; i += 16)
        {
            var d = Vector512.Load((byte*)(dst + i));
            Avx512BW.AddSaturate(s, MulWeights(d, w)).AsUInt32().Store(dst + i);
        }
        Avx2Kernels.BlendFill(dst + i, color, n - i);
    }
}
