using VirtioGpuHost.Compositor.Core.Geometry;
using VirtioGpuHost.Compositor.Rendering;
using VirtioGpuHost.Compositor.Rendering.Cpu;

namespace VirtioGpuHost.Compositor.Tests.Rendering;

/// <summary>The renderer contract on the CPU renderer: targets, zero-copy surfaces, owned textures, pass lifecycle, errors.</summary>
public class CpuRendererContractTests
{
    private static readonly Region All = RenderTestKit.All;

    private static uint[] DrawOnce(CpuRenderer renderer, ITexture texture, SizeI size)
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

    [Fact]
    public void CreateTarget_NewTarget_IsOpaqueBlack()
    {
        using var renderer = new CpuRenderer();
        using var target = renderer.CreateTarget(new SizeI(5, 3));
        Assert.All(RenderTestKit.Read(target), p => Assert.Equal(0xFF000000u, p));
    }

    [Fact]
    public void ImportSurface_MemoryChangedAfterImport_DrawsNewPixels()
    {
        using var renderer = new CpuRenderer();
        var surface = new PinnedSurface(4, 2, SourceLayout.Bgrx).Fill((_, _) => 0x00102030u);
        using var texture = renderer.ImportSurface(surface.View);
        surface.Fill((_, _) => 0x00405060u);
        Assert.All(DrawOnce(renderer, texture, new SizeI(4, 2)), p => Assert.Equal(0xFF405060u, p));
    }

    [Fact]
    public void UpdateSurface_OtherBufferAndLayout_DrawsFromIt()
    {
        using var renderer = new CpuRenderer();
        var first = new PinnedSurface(4, 2, SourceLayout.Bgrx).Fill((_, _) => 0x00102030u);
        var second = new PinnedSurface(6, 3, SourceLayout.Xrgb, padPixels: 2).Fill((_, _) => 0x30201000u); // bytes X=00 R=10 G=20 B=30
        using var texture = renderer.ImportSurface(first.View);
        renderer.UpdateSurface(texture, second.View, new Region(new RectI(0, 0, 6, 3)));
        Assert.Equal(new SizeI(6, 3), texture.Size);
        Assert.All(DrawOnce(renderer, texture, new SizeI(6, 3)), p => Assert.Equal(0xFF102030u, p));
    }

    [Fact]
    public void CreateTexture_SourceArrayChangedAfterwards_KeepsCopy()
    {
        using var renderer = new CpuRenderer();
        var pixels = Enumerable.Repeat(0xFF112233u, 6).ToArray();
        using var texture = renderer.CreateTexture(new SizeI(3, 2), pixels);
        Array.Fill(pixels, 0xFF445566u);
        Assert.False(texture.IsOpaque);
        Assert.All(DrawOnce(renderer, texture, new SizeI(3, 2)), p => Assert.Equal(0xFF112233u, p));
    }

    [Fact]
    public void CreateTexture_TooFewPixels_Throws()
    {
        using var renderer = new CpuRenderer();
        Assert.Throws<ArgumentException>(() => renderer.CreateTexture(new SizeI(3, 2), new uint[5]));
    }

    [Fact]
    public void ImportSurface_StrideBelowWidth_Throws()
    {
        using var renderer = new CpuRenderer();
        var surface = new PinnedSurface(4, 2, SourceLayout.Bgrx);
        Assert.Throws<ArgumentException>(() => renderer.ImportSurface(surface.View with { Stride = 12 }));
    }

    [Fact]
    public void DrawTexture_SourceOutsideTexture_Throws()
    {
        using var renderer = new CpuRenderer();
        using var target = renderer.CreateTarget(new SizeI(8, 8));
        using var texture = renderer.CreateTexture(new SizeI(4, 4), new uint[16]);
        var pass = renderer.BeginPass(target, All);
        Assert.Throws<ArgumentOutOfRangeException>(() => pass.DrawTexture(texture, new RectI(2, 2, 3, 2), new RectI(0, 0, 8, 8), All));
        pass.Submit();
    }

    [Fact]
    public void DrawTexture_TextureOfAnotherRenderer_Throws()
    {
        using var renderer = new CpuRenderer();
        using var other = new CpuRenderer();
        using var target = renderer.CreateTarget(new SizeI(8, 8));
        using var texture = other.CreateTexture(new SizeI(4, 4), new uint[16]);
        var pass = renderer.BeginPass(target, All);
        Assert.Throws<ArgumentException>(() => pass.DrawTexture(texture, new RectI(0, 0, 4, 4), new RectI(0, 0, 8, 8), All));
        pass.Submit();
    }

    [Fact]
    public void Submit_TextureDisposedAfterDrawCall_ThrowsAndClosesPass()
    {
        using var renderer = new CpuRenderer();
        using var target = renderer.CreateTarget(new SizeI(8, 8));
        var texture = renderer.CreateTexture(new SizeI(4, 4), new uint[16]);
        var pass = renderer.BeginPass(target, All);
        pass.DrawTexture(texture, new RectI(0, 0, 4, 4), new RectI(0, 0, 8, 8), All);
        texture.Dispose();
        Assert.Throws<ObjectDisposedException>(pass.Submit);
        renderer.BeginPass(target, All).Submit(); // the target is usable again
    }

    [Fact]
    public void BeginPass_PassAlreadyOpen_Throws()
    {
        using var renderer = new CpuRenderer();
        using var target = renderer.CreateTarget(new SizeI(8, 8));
        renderer.BeginPass(target, All);
        Assert.Throws<InvalidOperationException>(() => renderer.BeginPass(target, All));
    }

    [Fact]
    public void FillRect_AfterSubmit_Throws()
    {
        using var renderer = new CpuRenderer();
        using var target = renderer.CreateTarget(new SizeI(8, 8));
        var pass = renderer.BeginPass(target, All);
        pass.Submit();
        Assert.Throws<InvalidOperationException>(() => pass.FillRect(new RectI(0, 0, 2, 2), ColorBgra.Opaque(1, 2, 3), All));
    }

    [Fact]
    public void ReadPixels_Rect_CopiesThatRectRowByRow()
    {
        using var renderer = new CpuRenderer();
        var surface = new PinnedSurface(5, 4, SourceLayout.Bgrx).Fill((x, y) => (uint)(y * 16 + x));
        using var texture = renderer.ImportSurface(surface.View);
        using var target = renderer.CreateTarget(new SizeI(5, 4));
        var pass = renderer.BeginPass(target, All);
        pass.DrawTexture(texture, new RectI(0, 0, 5, 4), new RectI(0, 0, 5, 4), All);
        pass.Submit();
        var part = new uint[4];
        target.ReadPixels(new RectI(2, 1, 2, 2), part);
        Assert.Equal([0xFF000012u, 0xFF000013u, 0xFF000022u, 0xFF000023u], part);
    }

    [Fact]
    public void DrawTexture_DestinationFarOutsideTarget_DrawsOnlyTheVisiblePart()
    {
        using var renderer = new CpuRenderer();
        var surface = new PinnedSurface(2, 1, SourceLayout.Bgrx).Fill((x, _) => x == 0 ? 0x000000AAu : 0x000000BBu);
        using var texture = renderer.ImportSurface(surface.View);
        using var target = renderer.CreateTarget(new SizeI(4, 1));
        var pass = renderer.BeginPass(target, All);
        // Two source pixels over [int.MinValue + 10, 9): the target lies in the right half.
        pass.DrawTexture(texture, new RectI(0, 0, 2, 1), new RectI(int.MinValue + 10, 0, int.MaxValue, 1), All);
        pass.Submit();
        Assert.All(RenderTestKit.Read(target), p => Assert.Equal(0xFF0000BBu, p));
    }
}
