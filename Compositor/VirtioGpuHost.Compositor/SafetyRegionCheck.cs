using System.Buffers;
using System.Buffers.Binary;
using System.IO.Hashing;
using System.Runtime.InteropServices;
using VirtioGpuHost.Compositor.Core.Geometry;
using VirtioGpuHost.Compositor.Core.Layout;
using VirtioGpuHost.Compositor.Rendering;

namespace VirtioGpuHost.Compositor;

/// <summary>The outcome of one safety-region check.</summary>
public sealed record SafetyCheckResult(string Output, string Zone, string Surface, long Pixels, uint OutputCrc, uint ExpectedCrc, bool Full)
{
    public bool Ok => OutputCrc == ExpectedCrc;

    public override string ToString() =>
        $"output \"{Output}\" zone \"{Zone}\" ({Surface}): {Pixels} px {(Full ? "full" : "damaged")} check {(Ok ? "ok" : "MISMATCH")} (output crc {OutputCrc:x8}, expected {ExpectedCrc:x8})";
}

/// <summary>
/// The safety-region check: after a frame, the CRC-32 of the output pixels where a critical
/// zone shows its VM is compared with the CRC-32 of what those pixels must be, computed here
/// independently of the renderer (straight from the guest's pixels with the documented
/// nearest-neighbour mapping). A mismatch means the output does not show the critical content
/// exactly (a renderer fault, memory corruption, something drawn over it).
/// </summary>
public static class SafetyRegionCheck
{
    /// <summary>
    /// Where <paramref name="plan"/>'s item <paramref name="index"/> (a surface) is the last thing
    /// drawn: its clip within its destination, less everything later items draw over it.
    /// </summary>
    public static Region VisibleRegion(FramePlan plan, int index)
    {
        var item = (SurfaceItem)plan.Items[index];
        var visible = item.Clip.Clone();
        visible.Intersect(item.Destination);
        for (int i = index + 1; i < plan.Items.Count && !visible.IsEmpty; i++)
        {
            var later = plan.Items[i];
            var covered = later.Clip.Clone();
            var dest = later switch
            {
                SurfaceItem s => s.Destination,
                FillItem f => f.Destination,
                LabelItem l => l.Destination,
                _ => default,
            };
            covered.Intersect(dest);
            // A fully transparent fill changes nothing, but the solver never makes one.
            visible.Subtract(covered);
        }
        return visible;
    }

    /// <summary>The two CRCs over <paramref name="region"/> (output pixels), row by row, rect by rect.</summary>
    public static unsafe (uint Output, uint Expected) Compute(IRenderTarget target, Region region, in SurfaceView source, SurfaceItem item)
    {
        var outputCrc = new Crc32();
        var expectedCrc = new Crc32();
        var src = item.Source;
        var dst = item.Destination;
        foreach (var rect in region.Rects)
        {
            int n = rect.Width * rect.Height;
            var pixels = ArrayPool<uint>.Shared.Rent(n);
            var row = ArrayPool<uint>.Shared.Rent(rect.Width);
            var sxs = ArrayPool<int>.Shared.Rent(rect.Width);
            try
            {
                target.ReadPixels(rect, pixels.AsSpan(0, n));
                for (int i = 0; i < rect.Width; i++)
                    sxs[i] = src.X + (int)(((long)(rect.X + i - dst.X) * 2 + 1) * src.Width / (2L * dst.Width));
                bool identityX = src.Width == dst.Width;
                for (int y = 0; y < rect.Height; y++)
                {
                    int sy = src.Y + (int)(((long)(rect.Y + y - dst.Y) * 2 + 1) * src.Height / (2L * dst.Height));
                    byte* line = (byte*)source.Address + (long)sy * source.Stride;
                    var expected = row.AsSpan(0, rect.Width);
                    if (source.Layout == SourceLayout.Bgrx && item.Dim == 255)
                    {
                        // The common case, kept cheap enough to run on every frame: BGRX is the
                        // output's own byte order, so a pixel is the guest's with alpha forced.
                        var guest = new ReadOnlySpan<uint>(line, source.Width);
                        if (identityX) guest.Slice(sxs[0], rect.Width).CopyTo(expected);
                        else for (int i = 0; i < rect.Width; i++) expected[i] = guest[sxs[i]];
                        OrAlpha(expected);
                    }
                    else
                    {
                        for (int i = 0; i < rect.Width; i++) expected[i] = Opaque(source.Layout, line + sxs[i] * 4, item.Dim);
                    }
                    expectedCrc.Append(MemoryMarshal.AsBytes(expected));
                    outputCrc.Append(MemoryMarshal.AsBytes(pixels.AsSpan(y * rect.Width, rect.Width)));
                }
            }
            finally
            {
                ArrayPool<uint>.Shared.Return(pixels);
                ArrayPool<uint>.Shared.Return(row);
                ArrayPool<int>.Shared.Return(sxs);
            }
        }
        return (outputCrc.GetCurrentHashAsUInt32(), expectedCrc.GetCurrentHashAsUInt32());
    }

    private static void OrAlpha(Span<uint> pixels)
    {
        var alpha = new System.Numerics.Vector<uint>(0xFF000000u);
        var vectors = MemoryMarshal.Cast<uint, System.Numerics.Vector<uint>>(pixels);
        for (int i = 0; i < vectors.Length; i++) vectors[i] |= alpha;
        for (int i = vectors.Length * System.Numerics.Vector<uint>.Count; i < pixels.Length; i++) pixels[i] |= 0xFF000000u;
    }

    /// <summary>A guest pixel as the output shows it: 0xFFRRGGBB, dimmed as the renderer contract says.</summary>
    private static unsafe uint Opaque(SourceLayout layout, byte* p, byte dim)
    {
        uint r, g, b;
        switch (layout)
        {
            case SourceLayout.Bgrx: b = p[0]; g = p[1]; r = p[2]; break;
            case SourceLayout.Xrgb: r = p[1]; g = p[2]; b = p[3]; break;
            case SourceLayout.Rgbx: r = p[0]; g = p[1]; b = p[2]; break;
            case SourceLayout.Xbgr: b = p[1]; g = p[2]; r = p[3]; break;
            default: return BinaryPrimitives.ReadUInt32LittleEndian(new ReadOnlySpan<byte>(p, 4));
        }
        if (dim != 255) { r = Mul(r, dim); g = Mul(g, dim); b = Mul(b, dim); }
        return 0xFF000000u | r << 16 | g << 8 | b;
    }

    private static uint Mul(uint x, uint a)
    {
        uint t = x * a + 128;
        return (t + (t >> 8)) >> 8;
    }
}
