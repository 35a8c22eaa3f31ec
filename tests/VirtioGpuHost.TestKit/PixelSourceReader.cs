using System.Runtime.InteropServices;
using VirtioGpuHost.Device.Display;

namespace VirtioGpuHost.TestKit;

/// <summary>Copies what a pixel source (a resource, a Wayland window image) shows now.</summary>
public static class PixelSourceReader
{
    /// <summary>The current pixels, row by row without stride padding, as 32-bit words; throws when there is no image.</summary>
    public static uint[] ReadAll(IPixelSource source)
    {
        var s = source.AcquireCurrent() ?? throw new InvalidOperationException("no image");
        try
        {
            var result = new uint[s.Width * s.Height];
            for (uint y = 0; y < s.Height; y++)
                MemoryMarshal.Cast<byte, uint>(s.Memory.AsSpan(s.Offset + y * s.Stride, (int)s.Width * 4)).CopyTo(result.AsSpan((int)(y * s.Width)));
            return result;
        }
        finally { s.Memory.Release(); }
    }
}
