using VirtioGpuHost.Compositor.Core.Geometry;
using VirtioGpuHost.Compositor.Rendering;
using VirtioGpuHost.Compositor.Rendering.Cpu;

namespace VirtioGpuHost.Compositor.Tests.Rendering;

/// <summary>Only damage and clip are written; hidden parts of calls are not drawn at all.</summary>
public class DamageAndCullingTests
{
    private static readonly Region All = RenderTestKit.All;
    private static readonly SizeI Size = new(64, 48);

    private static (CpuRenderer Renderer, CpuRenderTarget Target, uint[] Before) Setup(CpuRendererOptions? options = null)
    {
        var renderer = new CpuRenderer(options);
        var target = (CpuRenderTarget)renderer.CreateTarget(Size);
        var noise = new PinnedSurface(Size.Width, Size.Height, SourceLayout.Bgrx).Fill(RenderTestKit.Noise(7));
        using var texture = renderer.ImportSurface(noise.View);
        var pass = renderer.BeginPass(target, All);
        pass.DrawTexture(texture, Size.ToRect(), Size.ToRect(), All);
        pass.Submit();
        GC.KeepAlive(noise); // read in place: must outlive the pass
        return (renderer, target, RenderTestKit.Read(target));
    }

    [Fact]
    public void Submit_DamageTwoRects_PixelsOutsideUnchanged()
    {
        var (renderer, target, before) = Setup();
        using var _ = renderer;
        using var __ = target;
        var damage = new Region([new RectI(3, 4, 10, 5), new RectI(40, 30, 30, 30)]);
        var pass = renderer.BeginPass(target, damage);
        pass.FillRect(new RectI(0, 0, 64, 48), ColorBgra.Opaque(9, 9, 9), All);
        pass.FillRect(new RectI(0, 0, 64, 48), ColorBgra.FromStraight(200, 0, 0, 128), All);
        pass.Submit();
        var after = RenderTestKit.Read(target);
        for (int y = 0; y < Size.Height; y++)
            for (int x = 0; x < Size.Width; x++)
            {
                int i = y * Size.Width + x;
                if (damage.Contains(x, y)) Assert.NotEqual(before[i], after[i]);
                else Assert.Equal(before[i], after[i]);
            }
    }

    [Fact]
    public void Submit_EmptyDamage_ChangesNothingAndDrawsNothing()
    {
        var (renderer, target, before) = Setup();
        using var _ = renderer;
        using var __ = target;
        var pass = renderer.BeginPass(target, new Region());
        pass.FillRect(new RectI(0, 0, 64, 48), ColorBgra.Opaque(9, 9, 9), All);
        pass.Submit();
        Assert.Equal(before, RenderTestKit.Read(target));
        Assert.Equal(0, target.LastStats.PixelsDrawn);
    }

    [Fact]
    public void FillRect_ClipRegion_WritesOnlyInsideClip()
    {
        var (renderer, target, before) = Setup();
        using var _ = renderer;
        using var __ = target;
        var clip = new Region([new RectI(0, 0, 5, 5), new RectI(60, 40, 10, 10)]);
        var pass = renderer.BeginPass(target, All);
        pass.FillRect(new RectI(2, 2, 100, 100), ColorBgra.Opaque(1, 2, 3), clip);
        pass.Submit();
        var after = RenderTestKit.Read(target);
        for (int y = 0; y < Size.Height; y++)
            for (int x = 0; x < Size.Width; x++)
            {
                bool inside = clip.Contains(x, y) && x >= 2 && y >= 2;
                Assert.Equal(inside ? 0xFF010203u : before[y * Size.Width + x], after[y * Size.Width + x]);
            }
    }

    [Fact]
    public void Submit_OpaqueFillOverTexture_TextureNotDrawn()
    {
        var (renderer, target, _) = Setup();
        using var r = renderer;
        using var t = target;
        var surface = new PinnedSurface(8, 8, SourceLayout.BgraPremultiplied).Fill(RenderTestKit.Noise(3));
        using var texture = renderer.ImportSurface(surface.View);
        var pass = renderer.BeginPass(target, All);
        pass.DrawTexture(texture, new RectI(0, 0, 8, 8), new RectI(0, 0, 32, 32), All);
        pass.FillRect(new RectI(0, 0, 40, 40), ColorBgra.Opaque(5, 5, 5), All);
        pass.Submit();
        GC.KeepAlive(surface);
        Assert.Equal(new RenderStats(2, 1, 40 * 40, 32 * 32, target.LastStats.Bands, false), target.LastStats);
    }

    [Fact]
    public void Submit_OpaqueTextureHalfCoversFill_OnlyUncoveredHalfOfFillDrawn()
    {
        var (renderer, target, _) = Setup();
        using var r = renderer;
        using var t = target;
        var surface = new PinnedSurface(4, 4, SourceLayout.Xrgb).Fill(RenderTestKit.Noise(4));
        using var texture = renderer.ImportSurface(surface.View);
        var pass = renderer.BeginPass(target, All);
        pass.FillRect(new RectI(0, 0, 64, 48), ColorBgra.FromStraight(10, 20, 30, 100), All);
        pass.DrawTexture(texture, new RectI(0, 0, 4, 4), new RectI(0, 0, 32, 48), All, dim: 128);
        pass.Submit();
        GC.KeepAlive(surface);
        Assert.Equal(32 * 48, target.LastStats.PixelsCulled);
        Assert.Equal(64 * 48, target.LastStats.PixelsDrawn);
    }

    [Fact]
    public void Submit_TranslucentFillOnTop_NothingCulled()
    {
        var (renderer, target, _) = Setup();
        using var r = renderer;
        using var t = target;
        var pass = renderer.BeginPass(target, All);
        pass.FillRect(new RectI(0, 0, 64, 48), ColorBgra.Opaque(1, 1, 1), All);
        pass.FillRect(new RectI(0, 0, 64, 48), ColorBgra.FromStraight(10, 20, 30, 254), All);
        pass.Submit();
        Assert.Equal(0, target.LastStats.PixelsCulled);
        Assert.Equal(2 * 64 * 48, target.LastStats.PixelsDrawn);
    }

    [Fact]
    public void Submit_CullingDisabled_DrawsHiddenCallsWithSamePixels()
    {
        var (culled, culledTarget, _) = Setup();
        var (plain, plainTarget, _) = Setup(new CpuRendererOptions { OcclusionCulling = false });
        using (culled) using (culledTarget) using (plain) using (plainTarget)
        {
            foreach (var (renderer, target) in new[] { (culled, culledTarget), (plain, plainTarget) })
            {
                var pass = renderer.BeginPass(target, All);
                pass.FillRect(new RectI(0, 0, 64, 48), ColorBgra.FromStraight(200, 100, 0, 90), All);
                pass.FillRect(new RectI(10, 10, 20, 20), ColorBgra.Opaque(1, 2, 3), All);
                pass.FillRect(new RectI(15, 15, 40, 20), ColorBgra.FromStraight(0, 100, 200, 90), All);
                pass.Submit();
            }
            Assert.Equal(RenderTestKit.Read(plainTarget), RenderTestKit.Read(culledTarget));
            Assert.Equal(20 * 20, culledTarget.LastStats.PixelsCulled);
            Assert.Equal(0, plainTarget.LastStats.PixelsCulled);
        }
    }
}
