using CsCheck;
using VirtioGpuHost.Compositor.Core.Geometry;
using VirtioGpuHost.Compositor.Rendering;
using VirtioGpuHost.Compositor.Rendering.Cpu;

namespace VirtioGpuHost.Compositor.Tests.Rendering;

/// <summary>
/// Premultiplied textures' tile maps (transparent tiles skipped, opaque ones copied): the
/// pixels are those of the reference after any sequence of damaged updates, with or without
/// maps, and transparent tiles really are skipped.
/// </summary>
public class TileMapTests
{
    private static readonly Region All = RenderTestKit.All;
    private static readonly SizeI Size = new(200, 40);

    /// <summary>Draws <paramref name="surface"/> 1:1 at (3, 2) with dim over a noise background.</summary>
    private static uint[] Draw(CpuRenderer renderer, IRenderTarget target, ITexture texture, byte dim)
    {
        var pass = renderer.BeginPass(target, All);
        pass.FillRect(Size.ToRect(), ColorBgra.Opaque(40, 80, 120), All);
        pass.DrawTexture(texture, new RectI(0, 0, texture.Size.Width, texture.Size.Height), new RectI(3, 2, texture.Size.Width, texture.Size.Height), All, dim);
        pass.Submit();
        return RenderTestKit.Read(target);
    }

    private static uint[] Reference(PinnedSurface surface, byte dim)
    {
        var pixels = Enumerable.Repeat(0xFF285078u, Size.Width * Size.Height).ToArray();
        ReferenceRenderer.Apply(pixels, Size, All,
            [new RefDraw(0, new RectI(0, 0, surface.Width, surface.Height), new RectI(3, 2, surface.Width, surface.Height), All, dim)], [surface]);
        return pixels;
    }

    private static readonly Gen<(int Seed, int Block, RectI Change, int Grow, byte Dim)> GenUpdate =
        Gen.Select(Gen.Int, Gen.OneOfConst(8, 64, 128), Gen.Select(Gen.Int[0, 180], Gen.Int[0, 30], Gen.Int[1, 180], Gen.Int[1, 30]), Gen.Int[0, 9], Gen.Byte)
            .Select(t => (t.Item1, t.Item2, new RectI(t.Item3.Item1, t.Item3.Item2, t.Item3.Item3, t.Item3.Item4), t.Item4, t.Item5));

    [Fact]
    public void UpdateSurface_RandomChangesWithinDamage_MatchesReference()
    {
        GenUpdate.List[1, 4].Sample(updates =>
        {
            using var renderer = new CpuRenderer();
            using var target = renderer.CreateTarget(Size);
            var surface = new PinnedSurface(190, 32, SourceLayout.BgraPremultiplied, padPixels: 2).Fill(RenderTestKit.Noise(1, 64, 8));
            using var texture = renderer.ImportSurface(surface.View);
            Assert.Equal(Reference(surface, 255), Draw(renderer, target, texture, 255)); // all tiles unknown
            Assert.Equal(Reference(surface, 255), Draw(renderer, target, texture, 255)); // classified
            foreach (var u in updates)
            {
                var noise = RenderTestKit.Noise(u.Seed, u.Block, 8);
                for (int y = u.Change.Y; y < Math.Min(u.Change.Bottom, 32); y++)
                    for (int x = u.Change.X; x < Math.Min(u.Change.Right, 190); x++) surface[x, y] = noise(x, y);
                renderer.UpdateSurface(texture, surface.View, new Region(u.Change.Inset(-u.Grow, -u.Grow, -u.Grow, -u.Grow)));
                Assert.Equal(Reference(surface, u.Dim), Draw(renderer, target, texture, u.Dim)); // damaged tiles unknown
                Assert.Equal(Reference(surface, u.Dim), Draw(renderer, target, texture, u.Dim)); // reclassified
            }
            GC.KeepAlive(surface); // read in place: must outlive every draw
        }, iter: 300, print: u => string.Join("; ", u));
    }

    [Fact]
    public void UpdateSurface_OtherBufferOtherSize_RescansEverything()
    {
        using var renderer = new CpuRenderer();
        using var target = renderer.CreateTarget(Size);
        var first = new PinnedSurface(100, 20, SourceLayout.BgraPremultiplied); // all transparent
        var second = new PinnedSurface(150, 30, SourceLayout.BgraPremultiplied).Fill(RenderTestKit.Noise(5, 64, 8));
        using var texture = renderer.ImportSurface(first.View);
        Draw(renderer, target, texture, 255);
        renderer.UpdateSurface(texture, second.View, new Region()); // a new shape is scanned whatever the damage says
        Assert.Equal(Reference(second, 255), Draw(renderer, target, texture, 255));
        GC.KeepAlive(second);
    }

    [Fact]
    public void Submit_TileMapsOff_SamePixels()
    {
        var surface = new PinnedSurface(190, 32, SourceLayout.BgraPremultiplied).Fill(RenderTestKit.Noise(9, 64, 8));
        uint[] Render(bool maps)
        {
            using var renderer = new CpuRenderer(new CpuRendererOptions { TileMaps = maps });
            using var target = renderer.CreateTarget(Size);
            using var texture = renderer.ImportSurface(surface.View);
            return Draw(renderer, target, texture, 200);
        }
        Assert.Equal(Render(false), Render(true));
    }

    [Fact]
    public void Submit_TransparentTileChangedWithoutDamage_IsSkippedOnceClassified()
    {
        // The contract: only the damage changed. Tiles are classified when a texture is drawn
        // again unchanged; from then on a transparent tile is not read, which is what makes the
        // blend cost follow the visible content.
        using var renderer = new CpuRenderer();
        using var target = renderer.CreateTarget(Size);
        var surface = new PinnedSurface(128, 16, SourceLayout.BgraPremultiplied);
        using var texture = renderer.ImportSurface(surface.View);
        int at = (2 + 3) * Size.Width + 3 + 70;
        surface[70, 3] = 0xFFFFFFFFu; // not reported, but nothing is classified yet: drawn
        Assert.Equal(0xFFFFFFFFu, Draw(renderer, target, texture, 255)[at]);
        surface[70, 3] = 0;
        renderer.UpdateSurface(texture, surface.View, new Region(new RectI(70, 3, 1, 1)));
        Draw(renderer, target, texture, 255); // changed since the last draw: blended, not classified
        Draw(renderer, target, texture, 255); // unchanged since: classified (all transparent)
        surface[70, 3] = 0xFFFFFFFFu; // not reported: skipped
        Assert.Equal(0xFF285078u, Draw(renderer, target, texture, 255)[at]);
        renderer.UpdateSurface(texture, surface.View, new Region(new RectI(70, 3, 1, 1)));
        Assert.Equal(0xFFFFFFFFu, Draw(renderer, target, texture, 255)[at]);
        GC.KeepAlive(surface);
    }
}
