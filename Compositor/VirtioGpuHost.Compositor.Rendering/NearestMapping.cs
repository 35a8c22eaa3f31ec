namespace VirtioGpuHost.Compositor.Rendering;

/// <summary>
/// The nearest-neighbour mapping every renderer uses (see <see cref="IRenderer"/>): the sample
/// is taken at the destination pixel's centre, s = srcStart + ((d − dstStart)·2 + 1)·srcLength /
/// (2·dstLength), in 64-bit integers so that no size can overflow it.
/// </summary>
public static class NearestMapping
{
    /// <summary>
    /// The source coordinate for destination coordinate <paramref name="d"/>, which must lie in
    /// [dstStart, dstStart + dstLength); the result lies in [srcStart, srcStart + srcLength).
    /// </summary>
    public static int Sample(int d, int dstStart, int dstLength, int srcStart, int srcLength)
    {
        long k = (long)d - dstStart;
        return srcStart + (int)((k * 2 + 1) * srcLength / (2L * dstLength));
    }
}
