using VirtioGpuHost.Compositor.Core.Geometry;
using VirtioGpuHost.Compositor.Rendering;
using VirtioGpuHost.Compositor.Rendering.Cpu;

namespace VirtioGpuHost.Compositor.Tests.Rendering;

/// <summary>
/// The renderer contract on every renderer of <see cref="RendererFactories"/> (the CPU renderer and the GPU ones): targets,
/// zero-copy surfaces, owned textures, pass lifecycle, errors. Pixels are compared exactly (GPU renderers are exact too).
/// </summary>
public class CpuRendererContractTests
{
    private static readonly Region All = RenderTestKit.All;

    private static uint[] DrawOnce(IRenderer renderer, ITexture texture, SizeI size)
    {
        using var target = renderer.CreateTarget(size);
        var pass = renderer.BeginPass(target, All);
        pass.DrawTexture(texture, texture.Size.ToRect(), size.ToRect(), All);
        pass.Submit();
        return RenderTestKit.Read(target);
    }

    [Fact]
    public void Capabilities_CpuRenderer_NamedCpuWithZeroCopy()
    {
        using var renderer = new CpuRenderer();
        Assert.Equal("cpu", renderer.Capabilities.Name);
        Assert.True(renderer.Capabilities.ZeroCopySurfaces);
    }

    [Theory]
    [MemberData(nameof(RendererFactories.Names), MemberType = typeof(RendererFactories))]
    public void CreateTarget_NewTarget_IsOpaqueBlack(string renderer)
    {
        using var r = RendererFactories.Create(renderer);
        using var target = r.CreateTarget(new SizeI(5, 3));
        Assert.All(RenderTestKit.Read(target), p => Assert.Equal(0xFF000000u, p));
    }

    [Theory]
    [MemberData(nameof(RendererFactories.Names), MemberType = typeof(RendererFactories))]
    public void ImportSurface_MemoryChangedAfterImport_DrawsNewPixels(string renderer)
    {
        using var r = RendererFactories.Create(renderer);
        var surface = new PinnedSurface(4, 2, SourceLayout.Bgrx).Fill((_, _) => 0x00102030u);
        using var texture = r.ImportSurface(surface.View);
        surface.Fill((_, _) => 0x00405060u);
        // A zero-copy renderer reads the memory itself; a copying one (ZeroCopySurfaces = false,
        // e.g. GL) keeps what it copied at import until UpdateSurface says what changed.
        uint expected = r.Capabilities.ZeroCopySurfaces ? 0xFF405060u : 0xFF102030u;
        Assert.All(DrawOnce(r, texture, new SizeI(4, 2)), p => Assert.Equal(expected, p));
        GC.KeepAlive(surface); // read in place: must outlive the pass
    }

    [Theory]
    [MemberData(nameof(RendererFactories.Names), MemberType = typeof(RendererFactories))]
    public void UpdateSurface_OtherBufferAndLayout_DrawsFromIt(string renderer)
    {
        using var r = RendererFactories.Create(renderer);
        var first = new PinnedSurface(4, 2, SourceLayout.Bgrx).Fill((_, _) => 0x00102030u);
        var second = new PinnedSurface(6, 3, SourceLayout.Xrgb, padPixels: 2).Fill((_, _) => 0x30201000u); // bytes X=00 R=10 G=20 B=30
        using var texture = r.ImportSurface(first.View);
        r.UpdateSurface(texture, second.View, new Region(new RectI(0, 0, 6, 3)));
        Assert.Equal(new SizeI(6, 3), texture.Size);
        Assert.All(DrawOnce(r, texture, new SizeI(6, 3)), p => Assert.Equal(0xFF102030u, p));
        GC.KeepAlive(second);
    }

    [Theory]
    [MemberData(nameof(RendererFactories.Names), MemberType = typeof(RendererFactories))]
    public void CreateTexture_SourceArrayChangedAfterwards_KeepsCopy(string renderer)
    {
        using var r = RendererFactories.Create(renderer);
        var pixels = Enumerable.Repeat(0xFF112233u, 6).ToArray();
        using var texture = r.CreateTexture(new SizeI(3, 2), pixels);
        Array.Fill(pixels, 0xFF445566u);
        Assert.False(texture.IsOpaque);
        Assert.All(DrawOnce(r, texture, new SizeI(3, 2)), p => Assert.Equal(0xFF112233u, p));
    }

    [Theory]
    [MemberData(nameof(RendererFactories.Names), MemberType = typeof(RendererFactories))]
    public void CreateTexture_TooFewPixels_Throws(string renderer)
    {
        using var r = RendererFactories.Create(renderer);
        Assert.Throws<ArgumentException>(() => r.CreateTexture(new SizeI(3, 2), new uint[5]));
    }

    [Theory]
    [MemberData(nameof(RendererFactories.Names), MemberType = typeof(RendererFactories))]
    public void ImportSurface_StrideBelowWidth_Throws(string renderer)
    {
        using var r = RendererFactories.Create(renderer);
        var surface = new PinnedSurface(4, 2, SourceLayout.Bgrx);
        Assert.Throws<ArgumentException>(() => r.ImportSurface(surface.View with { Stride = 12 }));
    }

    [Theory]
    [MemberData(nameof(RendererFactories.Names), MemberType = typeof(RendererFactories))]
    public void DrawTexture_SourceOutsideTexture_Throws(string renderer)
    {
        using var r = RendererFactories.Create(renderer);
        using var target = r.CreateTarget(new SizeI(8, 8));
        using var texture = r.CreateTexture(new SizeI(4, 4), new uint[16]);
        var pass = r.BeginPass(target, All);
        Assert.Throws<ArgumentOutOfRangeException>(() => pass.DrawTexture(texture, new RectI(2, 2, 3, 2), new RectI(0, 0, 8, 8), All));
        pass.Submit();
    }

    [Theory]
    [MemberData(nameof(RendererFactories.Names), MemberType = typeof(RendererFactories))]
    public void DrawTexture_TextureOfAnotherRenderer_Throws(string renderer)
    {
        using var r = RendererFactories.Create(renderer);
        using var other = RendererFactories.Create(renderer);
        using var target = r.CreateTarget(new SizeI(8, 8));
        using var texture = other.CreateTexture(new SizeI(4, 4), new uint[16]);
        var pass = r.BeginPass(target, All);
        Assert.Throws<ArgumentException>(() => pass.DrawTexture(texture, new RectI(0, 0, 4, 4), new RectI(0, 0, 8, 8), All));
        pass.Submit();
    }

    [Theory]
    [MemberData(nameof(RendererFactories.Names), MemberType = typeof(RendererFactories))]
    public void Submit_TextureDisposedAfterDrawCall_ThrowsAndClosesPass(string renderer)
    {
        using var r = RendererFactories.Create(renderer);
        using var target = r.CreateTarget(new SizeI(8, 8));
        var texture = r.CreateTexture(new SizeI(4, 4), new uint[16]);
        var pass = r.BeginPass(target, All);
        pass.DrawTexture(texture, new RectI(0, 0, 4, 4), new RectI(0, 0, 8, 8), All);
        texture.Dispose();
        Assert.Throws<ObjectDisposedException>(pass.Submit);
        r.BeginPass(target, All).Submit(); // the target is usable again
    }

    [Theory]
    [MemberData(nameof(RendererFactories.Names), MemberType = typeof(RendererFactories))]
    public void BeginPass_PassAlreadyOpen_Throws(string renderer)
    {
        using var r = RendererFactories.Create(renderer);
        using var target = r.CreateTarget(new SizeI(8, 8));
        r.BeginPass(target, All);
        Assert.Throws<InvalidOperationException>(() => r.BeginPass(target, All));
    }

    [Theory]
    [MemberData(nameof(RendererFactories.Names), MemberType = typeof(RendererFactories))]
    public void FillRect_AfterSubmit_Throws(string renderer)
    {
        using var r = RendererFactories.Create(renderer);
        using var target = r.CreateTarget(new SizeI(8, 8));
        var pass = r.BeginPass(target, All);
        pass.Submit();
        Assert.Throws<InvalidOperationException>(() => pass.FillRect(new RectI(0, 0, 2, 2), ColorBgra.Opaque(1, 2, 3), All));
    }

    [Theory]
    [MemberData(nameof(RendererFactories.Names), MemberType = typeof(RendererFactories))]
    public void ReadPixels_Rect_CopiesThatRectRowByRow(string renderer)
    {
        using var r = RendererFactories.Create(renderer);
        var surface = new PinnedSurface(5, 4, SourceLayout.Bgrx).Fill((x, y) => (uint)(y * 16 + x));
        using var texture = r.ImportSurface(surface.View);
        using var target = r.CreateTarget(new SizeI(5, 4));
        var pass = r.BeginPass(target, All);
        pass.DrawTexture(texture, new RectI(0, 0, 5, 4), new RectI(0, 0, 5, 4), All);
        pass.Submit();
        GC.KeepAlive(surface);
        var part = new uint[4];
        target.ReadPixels(new RectI(2, 1, 2, 2), part);
        Assert.Equal([0xFF000012u, 0xFF000013u, 0xFF000022u, 0xFF000023u], part);
    }

    [Theory]
    [MemberData(nameof(RendererFactories.Names), MemberType = typeof(RendererFactories))]
    public void DrawTexture_DestinationFarOutsideTarget_DrawsOnlyTheVisiblePart(string renderer)
    {
        using var r = RendererFactories.Create(renderer);
        var surface = new PinnedSurface(2, 1, SourceLayout.Bgrx).Fill((x, _) => x == 0 ? 0x000000AAu : 0x000000BBu);
        using var texture = r.ImportSurface(surface.View);
        using var target = r.CreateTarget(new SizeI(4, 1));
        var pass = r.BeginPass(target, All);
        // Two source pixels over [int.MinValue + 10, 9): the target lies in the right half.
        pass.DrawTexture(texture, new RectI(0, 0, 2, 1), new RectI(int.MinValue + 10, 0, int.MaxValue, 1), All);
        pass.Submit();
        GC.KeepAlive(surface);
        Assert.All(RenderTestKit.Read(target), p => Assert.Equal(0xFF0000BBu, p));
    }
}
