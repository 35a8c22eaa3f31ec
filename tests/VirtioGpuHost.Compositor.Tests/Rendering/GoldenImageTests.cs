using VirtioGpuHost.Compositor.Core.Geometry;
using VirtioGpuHost.Compositor.Rendering.Png;

namespace VirtioGpuHost.Compositor.Tests.Rendering;

/// <summary>
/// Scenes rendered and compared pixel-exactly with Golden/*.png. A failure writes
/// artifacts/golden-failures/NAME.actual.png and NAME.diff.png; after an intended change,
/// `UPDATE_GOLDENS=1 dotnet test tests/VirtioGpuHost.Compositor.Tests` rewrites the goldens
/// (review them before committing).
/// </summary>
public class GoldenImageTests
{
    private delegate uint[] Scene(out SizeI size, string renderer);

    /// <summary>Every renderer of <see cref="RendererFactories"/> against the same golden (GPU renderers within 1/255 per channel).</summary>
    private static void Check(string name, Scene scene, string renderer)
    {
        var pixels = scene(out var size, renderer);
        GoldenImages.Default.AssertMatches(name, pixels, size, RendererFactories.Tolerance(renderer), renderer == "cpu" ? null : renderer);
    }

    [Theory]
    [MemberData(nameof(RendererFactories.Names), MemberType = typeof(RendererFactories))]
    public void HeadUnit_FourSurfacesWithLabels_MatchesGolden(string renderer) => Check("headunit-quadrants", GoldenScenes.HeadUnit, renderer);

    [Theory]
    [MemberData(nameof(RendererFactories.Names), MemberType = typeof(RendererFactories))]
    public void BlendAndDim_TranslucentLayers_MatchesGolden(string renderer) => Check("blend-dim", GoldenScenes.BlendAndDim, renderer);

    [Theory]
    [MemberData(nameof(RendererFactories.Names), MemberType = typeof(RendererFactories))]
    public void ClipAndDamage_SecondFrame_MatchesGolden(string renderer) => Check("clip-damage", GoldenScenes.ClipAndDamage, renderer);

    [Theory]
    [MemberData(nameof(RendererFactories.Names), MemberType = typeof(RendererFactories))]
    public void NoSignal_DimmedFrameWithOverlay_MatchesGolden(string renderer) => Check("no-signal", GoldenScenes.NoSignal, renderer);

    [Theory]
    [MemberData(nameof(RendererFactories.Names), MemberType = typeof(RendererFactories))]
    public void LayoutsAndScaling_FourLayouts_MatchesGolden(string renderer) => Check("layouts-scaling", GoldenScenes.LayoutsAndScaling, renderer);

    [Fact]
    public void LayoutsAndScaling_FourLayouts_CellsIdentical()
    {
        var pixels = GoldenScenes.LayoutsAndScaling(out var size);
        for (int cell = 1; cell < 4; cell++)
            for (int y = 0; y < 63; y++)
                for (int x = 0; x < 97; x++)
                {
                    int at(int c) => (3 + c / 2 * 70 + y) * size.Width + 3 + c % 2 * 100 + x;
                    Assert.Equal(pixels[at(0)], pixels[at(cell)]);
                }
    }

    [Fact]
    public void AssertMatches_OnePixelDiffers_FailsAndWritesActualAndDiff()
    {
        var dir = Directory.CreateTempSubdirectory("golden-test.").FullName;
        try
        {
            var size = new SizeI(4, 3);
            var golden = Enumerable.Repeat(0xFF336699u, 12).ToArray();
            new GoldenImages(dir, Path.Combine(dir, "failures"), update: true).AssertMatches("x", golden, size);
            var actual = (uint[])golden.Clone();
            actual[5] = 0xFF336698u;
            var checker = new GoldenImages(dir, Path.Combine(dir, "failures"), update: false);
            var e = Assert.ThrowsAny<Exception>(() => checker.AssertMatches("x", actual, size));
            Assert.Contains("1 of 12 pixels differ", e.Message);
            Assert.Contains("(1, 1)", e.Message);
            Assert.Equal(actual, RenderTargetPng.Load(Path.Combine(dir, "failures", "x.actual.png")).Pixels);
            var diff = RenderTargetPng.Load(Path.Combine(dir, "failures", "x.diff.png")).Pixels;
            Assert.Equal(0xFF840000u, diff[5]);
            checker.AssertMatches("x", golden, size); // and the golden itself passes
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void AssertMatches_MissingGolden_FailsNamingUpdateGoldens()
    {
        var dir = Directory.CreateTempSubdirectory("golden-test.").FullName;
        try
        {
            var e = Assert.ThrowsAny<Exception>(() => new GoldenImages(dir, dir, update: false).AssertMatches("none", new uint[1], new SizeI(1, 1)));
            Assert.Contains("UPDATE_GOLDENS=1", e.Message);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
