using VirtioGpuHost.Compositor.Core.Geometry;
using VirtioGpuHost.Compositor.Rendering.Cpu;
using VirtioGpuHost.Compositor.Rendering.Labels;
using VirtioGpuHost.Compositor.Rendering.Png;

namespace VirtioGpuHost.Compositor.Tests.Rendering;

/// <summary>Labels (embedded font, cache, exact colours) and PNG round trips.</summary>
public class LabelAndPngTests
{
    private static readonly ColorBgra Red = ColorBgra.Opaque(170, 20, 20), White = ColorBgra.Opaque(255, 255, 255);

    [Fact]
    public void Bold_EmbeddedFont_IsDejaVuWithGlyphs()
    {
        Assert.Equal("DejaVu Sans", LabelFonts.Bold.FamilyName);
        Assert.True(LabelFonts.Bold.GlyphCount > 1000);
    }

    [Fact]
    public void RenderBar_Text_BackgroundAtEdgesAndTextPixelsInside()
    {
        var image = new LabelRenderer().RenderBar("CLUSTER", Red, White, new SizeI(160, 24));
        var px = image.Pixels;
        Assert.Equal(Red.Value, px[0]);
        Assert.Equal(Red.Value, px[^1]);
        Assert.Contains(White.Value, px.ToArray());
        Assert.All(px.ToArray(), p => Assert.Equal(0xFFu, p >> 24));
    }

    [Fact]
    public void RenderBar_SameKey_ReturnsCachedImage()
    {
        var labels = new LabelRenderer();
        var a = labels.RenderBar("IVI", Red, White, new SizeI(100, 20));
        var b = labels.RenderBar("IVI", Red, White, new SizeI(100, 20));
        var c = labels.RenderBar("IVI", Red, White, new SizeI(101, 20));
        Assert.Same(a, b);
        Assert.NotSame(a, c);
        Assert.Equal(2, labels.Rendered);
    }

    [Fact]
    public void RenderBar_CacheFull_EvictsLeastRecentlyUsed()
    {
        var labels = new LabelRenderer(capacity: 2);
        var a = labels.RenderBar("a", Red, White, new SizeI(20, 10));
        labels.RenderBar("b", Red, White, new SizeI(20, 10));
        labels.RenderBar("a", Red, White, new SizeI(20, 10));
        labels.RenderBar("c", Red, White, new SizeI(20, 10)); // evicts b
        Assert.Same(a, labels.RenderBar("a", Red, White, new SizeI(20, 10)));
        Assert.Equal(3, labels.Rendered);
        labels.RenderBar("b", Red, White, new SizeI(20, 10));
        Assert.Equal(4, labels.Rendered);
    }

    [Fact]
    public void RenderBar_TextTooLong_StaysInsideBarWithBackgroundMargin()
    {
        var image = new LabelRenderer().RenderBar(new string('W', 200), Red, White, new SizeI(120, 20));
        var px = image.Pixels;
        for (int y = 0; y < 20; y++)
            for (int x = 114; x < 120; x++) Assert.Equal(Red.Value, px[y * 120 + x]);
    }

    [Fact]
    public void RenderOverlay_Panel_CornersTransparentCentrePanelColour()
    {
        var panel = ColorBgra.FromStraight(0, 0, 0, 190);
        var image = new LabelRenderer().RenderOverlay("NO SIGNAL", panel, White, new SizeI(180, 48));
        var px = image.Pixels;
        Assert.Equal(0u, px[0]);
        Assert.Equal(0u, px[^1]);
        Assert.Equal(panel.Value, px[24 * 180 + 4]);
        Assert.Contains(White.Value, px.ToArray());
    }

    [Fact]
    public void GetBar_UnusedForAFrame_TextureDisposed()
    {
        using var renderer = new CpuRenderer();
        using var cache = new LabelTextureCache(renderer);
        var kept = cache.GetBar("kept", Red, White, new SizeI(40, 10));
        var dropped = cache.GetBar("dropped", Red, White, new SizeI(40, 10));
        cache.EndFrame();
        Assert.Same(kept, cache.GetBar("kept", Red, White, new SizeI(40, 10)));
        cache.EndFrame();
        Assert.True(((CpuTexture)dropped).IsDisposed);
        Assert.False(((CpuTexture)kept).IsDisposed);
        Assert.Equal(1, cache.Count);
    }

    [Fact]
    public void Save_RenderTarget_LoadsBackSamePixels()
    {
        using var renderer = new CpuRenderer();
        using var target = renderer.CreateTarget(new SizeI(33, 17));
        var pass = renderer.BeginPass(target, RenderTestKit.All);
        pass.FillRect(new RectI(3, 2, 20, 10), ColorBgra.FromStraight(10, 200, 90, 77), RenderTestKit.All);
        pass.FillRect(new RectI(10, 5, 20, 10), ColorBgra.Opaque(250, 1, 128), RenderTestKit.All);
        pass.Submit();
        var path = Path.Combine(Directory.CreateTempSubdirectory("png-test.").FullName, "frame.png");
        RenderTargetPng.Save(target, path);
        var png = RenderTargetPng.Load(path);
        Assert.Equal(target.Size, png.Size);
        Assert.Equal(RenderTestKit.Read(target), png.Pixels);
        Directory.Delete(Path.GetDirectoryName(path)!, recursive: true);
    }

    [Fact]
    public void Decode_NotAnImage_Throws()
    {
        Assert.Throws<InvalidDataException>(() => RenderTargetPng.Decode("not a png"u8));
    }
}
