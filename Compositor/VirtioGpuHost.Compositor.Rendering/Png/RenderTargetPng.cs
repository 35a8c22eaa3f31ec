using SkiaSharp;
using VirtioGpuHost.Compositor.Core.Geometry;

namespace VirtioGpuHost.Compositor.Rendering.Png;

/// <summary>Decoded PNG pixels: premultiplied BGRA (u32 0xAARRGGBB), row-major.</summary>
public sealed record PngImage(SizeI Size, uint[] Pixels);

/// <summary>
/// PNG files of frames and textures through SkiaSharp's encoder and decoder. Opaque pixels
/// round-trip exactly; translucent ones go through PNG's straight alpha (rounded).
/// </summary>
public static class RenderTargetPng
{
    /// <summary>Writes the whole target (makes the folder).</summary>
    public static void Save(IRenderTarget target, string path)
    {
        ArgumentNullException.ThrowIfNull(target);
        var pixels = new uint[target.Size.Width * target.Size.Height];
        target.ReadPixels(pixels);
        Save(pixels, target.Size, path);
    }

    public static void Save(ReadOnlySpan<uint> premultipliedBgra, SizeI size, string path)
    {
        var bytes = Encode(premultipliedBgra, size);
        var dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (dir is not null) Directory.CreateDirectory(dir);
        File.WriteAllBytes(path, bytes);
    }

    public static unsafe byte[] Encode(ReadOnlySpan<uint> premultipliedBgra, SizeI size)
    {
        if (size.IsEmpty) throw new ArgumentOutOfRangeException(nameof(size), size, "an image needs a positive size");
        if (premultipliedBgra.Length < (long)size.Width * size.Height) throw new ArgumentException($"{size} needs {(long)size.Width * size.Height} pixels", nameof(premultipliedBgra));
        var info = new SKImageInfo(size.Width, size.Height, SKColorType.Bgra8888, SKAlphaType.Premul);
        fixed (uint* p = premultipliedBgra)
        {
            using var pixmap = new SKPixmap(info, (nint)p, size.Width * 4);
            using var data = pixmap.Encode(new SKPngEncoderOptions(SKPngEncoderFilterFlags.AllFilters, 6))
                ?? throw new InvalidOperationException("SkiaSharp could not encode the PNG");
            return data.ToArray();
        }
    }

    public static PngImage Load(string path) => Decode(File.ReadAllBytes(path));

    public static unsafe PngImage Decode(ReadOnlySpan<byte> png)
    {
        using var data = SKData.CreateCopy(png);
        using var codec = SKCodec.Create(data) ?? throw new InvalidDataException("not an image SkiaSharp can decode");
        var info = new SKImageInfo(codec.Info.Width, codec.Info.Height, SKColorType.Bgra8888, SKAlphaType.Premul);
        var pixels = new uint[info.Width * info.Height];
        fixed (uint* p = pixels)
        {
            var result = codec.GetPixels(info, (nint)p);
            if (result != SKCodecResult.Success)
                throw new InvalidDataException($"decoding failed: {result}");
        }
        return new PngImage(new SizeI(info.Width, info.Height), pixels);
    }
}
