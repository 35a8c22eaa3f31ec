using System.Reflection;
using System.Runtime.InteropServices;
using VirtioGpuHost.Compositor.Core.Geometry;
using VirtioGpuHost.Compositor.Rendering;

namespace VirtioGpuHost.Compositor.Tests.Rendering;

/// <summary>
/// Pixels at a fixed address without unsafe code: a pinned array (pinned object heap) whose
/// rows are <see cref="StridePixels"/> apart, as a guest surface would be.
/// </summary>
internal sealed class PinnedSurface
{
    public PinnedSurface(int width, int height, SourceLayout layout, int padPixels = 0)
    {
        Width = width;
        Height = height;
        Layout = layout;
        StridePixels = width + padPixels;
        Pixels = GC.AllocateArray<uint>(StridePixels * height, pinned: true);
    }

    public int Width { get; }
    public int Height { get; }
    public SourceLayout Layout { get; set; }
    public int StridePixels { get; }
    public uint[] Pixels { get; }

    public nint Address => Marshal.UnsafeAddrOfPinnedArrayElement(Pixels, 0);

    public SurfaceView View => new(Address, Width, Height, StridePixels * 4, Layout);

    public SizeI Size => new(Width, Height);

    public ref uint this[int x, int y] => ref Pixels[y * StridePixels + x];

    /// <summary>Fills every pixel (padding included) from <paramref name="pixel"/>(x, y).</summary>
    public PinnedSurface Fill(Func<int, int, uint> pixel)
    {
        for (int y = 0; y < Height; y++)
            for (int x = 0; x < StridePixels; x++)
                Pixels[y * StridePixels + x] = pixel(x, y);
        return this;
    }

    public override string ToString() => $"{Width}x{Height} {Layout} stride {StridePixels}";
}

internal static class RenderTestKit
{
    public static string RepoRoot { get; } =
        typeof(RenderTestKit).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().First(a => a.Key == "RepoRoot").Value!;

    public static Region All => new(new RectI(0, 0, 1 << 20, 1 << 20));

    public static uint[] Read(IRenderTarget target)
    {
        var pixels = new uint[target.Size.Width * target.Size.Height];
        target.ReadPixels(pixels);
        return pixels;
    }

    /// <summary>
    /// Deterministic test pixels in 8x3 blocks of one kind each, so that whole SIMD vectors are
    /// transparent or opaque as often as mixed: 0 transparent, 1 opaque, 2 translucent
    /// premultiplied, 3 arbitrary bytes (colour above alpha: the saturating path).
    /// </summary>
    public static Func<int, int, uint> Noise(int seed) => Noise(seed, 8, 3);

    /// <summary>The same in blocks of <paramref name="blockWidth"/> x <paramref name="blockHeight"/> (64x8 = the CPU renderer's tiles).</summary>
    public static Func<int, int, uint> Noise(int seed, int blockWidth, int blockHeight) => (x, y) =>
    {
        uint h = Hash((uint)seed, (uint)(x / blockWidth), (uint)(y / blockHeight));
        uint p = Hash((uint)seed ^ 0x9E3779B9u, (uint)x, (uint)y);
        switch (h % 4)
        {
            case 0: return 0;
            case 1: return p | 0xFF000000u;
            case 2:
                uint a = p >> 24;
                return a << 24 | (uint)ColorBgra.Mul((int)(p >> 16) & 0xFF, (int)a) << 16
                    | (uint)ColorBgra.Mul((int)(p >> 8) & 0xFF, (int)a) << 8 | ColorBgra.Mul((int)p & 0xFF, (int)a);
            default: return p;
        }
    };

    public static uint Hash(uint a, uint b, uint c)
    {
        uint h = a * 0x85EBCA6Bu ^ b * 0xC2B2AE35u ^ c * 0x27D4EB2Fu;
        h ^= h >> 15;
        h *= 0x2C1B3C6Du;
        h ^= h >> 12;
        h *= 0x297A2D39u;
        return h ^ (h >> 15);
    }
}
