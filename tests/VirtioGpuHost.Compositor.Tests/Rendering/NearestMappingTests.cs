using CsCheck;
using VirtioGpuHost.Compositor.Rendering;

namespace VirtioGpuHost.Compositor.Tests.Rendering;

/// <summary>The documented centre-sample mapping: exact values, range, monotonicity, no overflow.</summary>
public class NearestMappingTests
{
    [Fact]
    public void Sample_HalfScale_TakesOddSourcePixels()
    {
        Assert.Equal([1, 3, 5], Enumerable.Range(0, 3).Select(d => NearestMapping.Sample(d, 0, 3, 0, 6)));
    }

    [Fact]
    public void Sample_TripleScale_RepeatsEachSourcePixelThreeTimes()
    {
        Assert.Equal([0, 0, 0, 1, 1, 1], Enumerable.Range(0, 6).Select(d => NearestMapping.Sample(d, 0, 6, 0, 2)));
    }

    [Fact]
    public void Sample_SameSize_IsIdentityWithOffsets()
    {
        Assert.Equal([7, 8, 9, 10], Enumerable.Range(-2, 4).Select(d => NearestMapping.Sample(d, -2, 4, 7, 4)));
    }

    [Fact]
    public void Sample_HugeSizes_DoesNotOverflow()
    {
        Assert.Equal(int.MaxValue - 1, NearestMapping.Sample(int.MaxValue - 1, 0, int.MaxValue, 0, int.MaxValue));
        Assert.Equal(int.MaxValue / 2, NearestMapping.Sample(int.MinValue + int.MaxValue / 2, int.MinValue, int.MaxValue, 0, int.MaxValue));
    }

    [Fact]
    public void Sample_RandomSizes_StaysInSourceAndNeverGoesBack()
    {
        Gen.Select(Gen.Int[1, 5000], Gen.Int[1, 5000], Gen.Int[-10000, 10000], Gen.Int[-10000, 10000]).Sample((dstLen, srcLen, dstStart, srcStart) =>
        {
            int previous = int.MinValue;
            for (int d = dstStart; d < dstStart + dstLen; d += 1 + dstLen / 97)
            {
                int s = NearestMapping.Sample(d, dstStart, dstLen, srcStart, srcLen);
                Assert.InRange(s, srcStart, srcStart + srcLen - 1);
                Assert.True(s >= previous);
                previous = s;
            }
        }, iter: 2000);
    }
}
