using SkiaSharp;
using VirtioGpuHost.Compositor.Core.Geometry;

namespace VirtioGpuHost.Compositor.Outputs;

/// <summary>PNG files of frames (opaque BGRA), through SkiaSharp's encoder.</summary>
public static class PngFile
{
    public static void Write(string path, SizeI size, ReadOnlySpan<uint> pixels)
    {
        using var stream = File.Create(path);
        Write(stream, size, pixels);
    }

    public static unsafe void Write(Stream stream, SizeI size, ReadOnlySpan<uint> pixels)
    {
        var info = new SKImageInfo(size.Width, size.Height, SKColorType.Bgra8888, SKAlphaType.Premul);
        fixed (uint* p = pixels)
        {
            using var pixmap = new SKPixmap(info, (nint)p, size.Width * 4);
            using var data = pixmap.Encode(SKEncodedImageFormat.Png, 100) ?? throw new IOException("PNG encoding failed");
            data.SaveTo(stream);
        }
    }

    /// <summary>Reads a PNG into 0xAARRGGBB pixels (premultiplied; opaque images unchanged).</summary>
    public static (SizeI Size, uint[] Pixels) Read(string path)
    {
        using var bitmap = SKBitmap.Decode(path) ?? throw new IOException($"{path}: not a PNG");
        using var converted = new SKBitmap(new SKImageInfo(bitmap.Width, bitmap.Height, SKColorType.Bgra8888, SKAlphaType.Premul));
        bitmap.CopyTo(converted, SKColorType.Bgra8888);
        var pixels = new uint[bitmap.Width * bitmap.Height];
        System.Runtime.InteropServices.MemoryMarshal.Cast<byte, uint>(converted.GetPixelSpan()).CopyTo(pixels);
        return (new SizeI(bitmap.Width, bitmap.Height), pixels);
    }
}
