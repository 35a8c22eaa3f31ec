using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using VirtioGpuHost.Device.Wire;

namespace VirtioGpuHost.Device;

/// <summary>
/// The 32-bit formats of virtio-gpu and conversion of rows to what displays read:
/// XRGB8888 / ARGB8888 as native little-endian u32s, i.e. bytes B, G, R, X|A in memory
/// (pixman x8r8g8b8 / a8r8g8b8, DRM XRGB8888 / ARGB8888). QEMU's C back-end sends the
/// resource's own byte order in UPDATE whatever the format; we convert.
/// </summary>
public static class PixelFormats
{
    public const int BytesPerPixel = 4;

    public static bool IsSupported(VirtioGpuFormat format) => format is
        VirtioGpuFormat.B8G8R8A8Unorm or VirtioGpuFormat.B8G8R8X8Unorm or
        VirtioGpuFormat.A8R8G8B8Unorm or VirtioGpuFormat.X8R8G8B8Unorm or
        VirtioGpuFormat.R8G8B8A8Unorm or VirtioGpuFormat.X8B8G8R8Unorm or
        VirtioGpuFormat.A8B8G8R8Unorm or VirtioGpuFormat.R8G8B8X8Unorm;

    /// <summary>Formats whose bytes already are B, G, R, X|A: sent as they are (zero copy).</summary>
    public static bool IsBgrxLayout(VirtioGpuFormat format) =>
        format is VirtioGpuFormat.B8G8R8A8Unorm or VirtioGpuFormat.B8G8R8X8Unorm;

    public static bool HasAlpha(VirtioGpuFormat format) => format is
        VirtioGpuFormat.B8G8R8A8Unorm or VirtioGpuFormat.A8R8G8B8Unorm or
        VirtioGpuFormat.R8G8B8A8Unorm or VirtioGpuFormat.A8B8G8R8Unorm;

    /// <summary>DRM fourcc of the format (for DMABUF scanouts and logs).</summary>
    public static uint DrmFourcc(VirtioGpuFormat format) => format switch
    {
        VirtioGpuFormat.B8G8R8A8Unorm => Fourcc("AR24"),
        VirtioGpuFormat.B8G8R8X8Unorm => Fourcc("XR24"),
        VirtioGpuFormat.A8R8G8B8Unorm => Fourcc("BA24"),
        VirtioGpuFormat.X8R8G8B8Unorm => Fourcc("BX24"),
        VirtioGpuFormat.R8G8B8A8Unorm => Fourcc("AB24"),
        VirtioGpuFormat.R8G8B8X8Unorm => Fourcc("XB24"),
        VirtioGpuFormat.A8B8G8R8Unorm => Fourcc("RA24"),
        VirtioGpuFormat.X8B8G8R8Unorm => Fourcc("RX24"),
        _ => 0,
    };

    private static uint Fourcc(string s) => (uint)(s[0] | s[1] << 8 | s[2] << 16 | s[3] << 24);

    /// <summary>
    /// Converts one row of <paramref name="format"/> pixels to B, G, R, A bytes. With
    /// <paramref name="opaque"/> (or for X formats) the fourth byte becomes 0xFF.
    /// </summary>
    public static void ConvertRowToBgra(VirtioGpuFormat format, ReadOnlySpan<byte> src, Span<byte> dst, bool opaque)
    {
        if (dst.Length < src.Length) throw new ArgumentException("destination row is shorter than the source row");
        bool forceAlpha = opaque || !HasAlpha(format);
        // Byte shuffle per pixel: dst[i] = src[map[i]] within each 4-byte group.
        var (m0, m1, m2, m3) = format switch
        {
            VirtioGpuFormat.B8G8R8A8Unorm or VirtioGpuFormat.B8G8R8X8Unorm => (0, 1, 2, 3),
            VirtioGpuFormat.A8R8G8B8Unorm or VirtioGpuFormat.X8R8G8B8Unorm => (3, 2, 1, 0),
            VirtioGpuFormat.R8G8B8A8Unorm or VirtioGpuFormat.R8G8B8X8Unorm => (2, 1, 0, 3),
            VirtioGpuFormat.A8B8G8R8Unorm or VirtioGpuFormat.X8B8G8R8Unorm => (1, 2, 3, 0),
            _ => throw new ArgumentOutOfRangeException(nameof(format), format, "unsupported format"),
        };
        int n = src.Length & ~3;
        int i = 0;
        if (Vector256.IsHardwareAccelerated && n >= 32)
        {
            var idx = Vector256.Create(
                (byte)m0, (byte)m1, (byte)m2, (byte)m3, (byte)(4 + m0), (byte)(4 + m1), (byte)(4 + m2), (byte)(4 + m3),
                (byte)(8 + m0), (byte)(8 + m1), (byte)(8 + m2), (byte)(8 + m3), (byte)(12 + m0), (byte)(12 + m1), (byte)(12 + m2), (byte)(12 + m3),
                (byte)(16 + m0), (byte)(16 + m1), (byte)(16 + m2), (byte)(16 + m3), (byte)(20 + m0), (byte)(20 + m1), (byte)(20 + m2), (byte)(20 + m3),
                (byte)(24 + m0), (byte)(24 + m1), (byte)(24 + m2), (byte)(24 + m3), (byte)(28 + m0), (byte)(28 + m1), (byte)(28 + m2), (byte)(28 + m3));
            var alpha = forceAlpha ? Vector256.Create(0xFF000000u).AsByte() : Vector256<byte>.Zero;
            for (; i <= n - 32; i += 32)
            {
                var v = Vector256.Shuffle(Vector256.Create(src.Slice(i, 32)), idx) | alpha;
                v.CopyTo(dst.Slice(i, 32));
            }
        }
        for (; i < n; i += 4)
        {
            dst[i] = src[i + m0];
            dst[i + 1] = src[i + m1];
            dst[i + 2] = src[i + m2];
            dst[i + 3] = forceAlpha ? (byte)0xFF : src[i + m3];
        }
    }

    /// <summary>Reads one pixel as a native ARGB u32 (0xAARRGGBB), alpha 0xFF for X formats.</summary>
    public static uint ReadArgb(VirtioGpuFormat format, ReadOnlySpan<byte> pixel)
    {
        Span<byte> bgra = stackalloc byte[4];
        ConvertRowToBgra(format, pixel[..4], bgra, opaque: false);
        return BinaryPrimitives.ReadUInt32LittleEndian(bgra);
    }

    /// <summary>Encodes a native ARGB u32 in <paramref name="format"/>'s byte order.</summary>
    public static void WriteArgb(VirtioGpuFormat format, uint argb, Span<byte> pixel)
    {
        byte a = (byte)(argb >> 24), r = (byte)(argb >> 16), g = (byte)(argb >> 8), b = (byte)argb;
        (pixel[0], pixel[1], pixel[2], pixel[3]) = format switch
        {
            VirtioGpuFormat.B8G8R8A8Unorm or VirtioGpuFormat.B8G8R8X8Unorm => (b, g, r, a),
            VirtioGpuFormat.A8R8G8B8Unorm or VirtioGpuFormat.X8R8G8B8Unorm => (a, r, g, b),
            VirtioGpuFormat.R8G8B8A8Unorm or VirtioGpuFormat.R8G8B8X8Unorm => (r, g, b, a),
            VirtioGpuFormat.A8B8G8R8Unorm or VirtioGpuFormat.X8B8G8R8Unorm => (a, b, g, r),
            _ => throw new ArgumentOutOfRangeException(nameof(format)),
        };
    }

    /// <summary>All formats the spec lists (for tests and capability listings).</summary>
    public static IReadOnlyList<VirtioGpuFormat> All { get; } = Enum.GetValues<VirtioGpuFormat>();
}
