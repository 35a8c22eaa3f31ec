using VirtioGpuHost.Compositor.Core.Geometry;
using VirtioGpuHost.Compositor.Rendering;
using VirtioGpuHost.Compositor.Rendering.Cpu.Kernels;

namespace VirtioGpuHost.Compositor.Tests.Rendering;

/// <summary>The scalar reference kernels against the contract's arithmetic, exhaustively where it is small.</summary>
public class ScalarKernelTests
{
    [Fact]
    public void Mul_AllBytePairs_EqualsRoundedDivisionBy255()
    {
        for (uint x = 0; x < 256; x++)
            for (uint a = 0; a < 256; a++)
                Assert.Equal(Math.Round(x * a / 255.0, MidpointRounding.AwayFromZero), ScalarKernels.Mul(x, a));
    }

    [Fact]
    public void Mul_AllBytePairs_MatchesColorBgraMul()
    {
        for (int x = 0; x < 256; x++)
            for (int a = 0; a < 256; a++)
                Assert.Equal(ColorBgra.Mul(x, a), (int)ScalarKernels.Mul((uint)x, (uint)a));
    }

    [Fact]
    public void Over_AllAlphasOverOpaque_KeepsAlpha255()
    {
        for (uint a = 0; a < 256; a++)
            for (uint d = 0; d < 256; d += 5)
            {
                uint src = a << 24 | ScalarKernels.Mul(200, a) << 16 | ScalarKernels.Mul(100, a) << 8 | ScalarKernels.Mul(50, a);
                uint dst = 0xFF000000u | d << 16 | d << 8 | d;
                Assert.Equal(0xFFu, ScalarKernels.Over(src, dst) >> 24);
            }
    }

    [Fact]
    public void Over_TransparentBlackSource_LeavesDestination()
    {
        foreach (uint d in new[] { 0u, 0xFF123456u, 0x80402010u, 0xFFFFFFFFu })
            Assert.Equal(d, ScalarKernels.Over(0, d));
    }

    [Fact]
    public void Over_ColourAboveAlpha_Saturates()
    {
        Assert.Equal(0xFFFFFFFFu, ScalarKernels.Over(0x00FFFFFFu, 0xFFFFFFFFu));
    }

    [Theory]
    [InlineData(SourceLayout.Bgrx, 0x11223344u, 0xFF223344u)]
    [InlineData(SourceLayout.Xrgb, 0x44332211u, 0xFF223344u)] // bytes X,R,G,B = 11,22,33,44
    [InlineData(SourceLayout.Rgbx, 0x00443322u, 0xFF223344u)] // bytes R,G,B,X = 22,33,44,00
    [InlineData(SourceLayout.Xbgr, 0x22334400u, 0xFF223344u)] // bytes X,B,G,R = 00,44,33,22
    public void ToOpaqueBgra_EachLayout_ReordersToBgraWithOpaqueAlpha(SourceLayout layout, uint memory, uint expected)
    {
        Assert.Equal(expected, ScalarKernels.ToOpaqueBgra(memory, layout));
    }

    [Fact]
    public void Dim_255_LeavesColour()
    {
        Assert.Equal(0x80402010u, ScalarKernels.Dim(0x80402010u, 255));
    }

    [Fact]
    public void Dim_Half_ScalesColourKeepsAlpha()
    {
        Assert.Equal(0xFF808080u, ScalarKernels.Dim(0xFFFFFFFFu, 128));
    }
}
