using CsCheck;
using VirtioGpuHost.Compositor.Core.Geometry;
using VirtioGpuHost.Compositor.Rendering;
using VirtioGpuHost.Compositor.Rendering.Vulkan;

namespace VirtioGpuHost.Compositor.Tests.Rendering.Gpu;

/// <summary>
/// The Vulkan renderer's block classes of premultiplied textures (calls left out of tiles where
/// they read only transparent words, opaque blocks culling what lies under them): the pixels are
/// the reference's, bit-exact, after any sequence of damaged updates, imported or copied, drawn at
/// an offset that is not a multiple of the 16-pixel tile; and transparent blocks really are left
/// out once classified (the contract: only the damage changed). Skipped without a Vulkan device.
/// </summary>
public class VulkanTileMapTests
{
    private static readonly Region All = RenderTestKit.All;
    private static readonly SizeI Size = new(200, 40);

    public static TheoryData<string> Configurations => RendererFactories.Data(["vulkan", "vulkan-copy"]);

    /// <summary>Draws the texture 1:1 at (3, 2) with dim over an opaque fill.</summary>
    private static uint[] Draw(IRenderer renderer, IRenderTarget target, ITexture texture, byte dim)
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
        Gen.Select(Gen.Int, Gen.OneOfConst(8, 16, 64), Gen.Select(Gen.Int[0, 180], Gen.Int[0, 30], Gen.Int[1, 180], Gen.Int[1, 30]), Gen.Int[0, 9], Gen.Byte)
            .Select(t => (t.Item1, t.Item2, new RectI(t.Item3.Item1, t.Item3.Item2, t.Item3.Item3, t.Item3.Item4), t.Item4, t.Item5));

    [Theory]
    [MemberData(nameof(Configurations))]
    public void UpdateSurface_RandomChangesWithinDamage_MatchesReference(string name)
    {
        var renderer = RendererFactories.Shared(name);
        GenUpdate.List[1, 4].Sample(updates =>
        {
            using var target = renderer.CreateTarget(Size);
            var surface = new PinnedSurface(190, 32, SourceLayout.BgraPremultiplied, padPixels: 2).Fill(RenderTestKit.Noise(1, 16, 8));
            using var texture = renderer.ImportSurface(surface.View);
            Assert.Equal(Reference(surface, 255), Draw(renderer, target, texture, 255)); // all blocks unknown
            Assert.Equal(Reference(surface, 255), Draw(renderer, target, texture, 255)); // classified
            foreach (var u in updates)
            {
                var noise = RenderTestKit.Noise(u.Seed, u.Block, 8);
                for (int y = u.Change.Y; y < Math.Min(u.Change.Bottom, 32); y++)
                    for (int x = u.Change.X; x < Math.Min(u.Change.Right, 190); x++) surface[x, y] = noise(x, y);
                renderer.UpdateSurface(texture, surface.View, new Region(u.Change.Inset(-u.Grow, -u.Grow, -u.Grow, -u.Grow)));
                Assert.Equal(Reference(surface, u.Dim), Draw(renderer, target, texture, u.Dim)); // damaged blocks unknown
                Assert.Equal(Reference(surface, u.Dim), Draw(renderer, target, texture, u.Dim)); // reclassified
            }
        }, iter: 60, print: u => string.Join("; ", u));
    }

    [Fact]
    public void Submit_TileMapsOff_SamePixels()
    {
        RendererFactories.Shared("vulkan"); // skips without a device
        var surface = new PinnedSurface(190, 32, SourceLayout.BgraPremultiplied).Fill(RenderTestKit.Noise(9, 16, 8));
        uint[] Render(bool maps)
        {
            using var renderer = VulkanRenderer.TryCreate(out string reason, new VulkanRendererOptions { TileMaps = maps })
                ?? throw new InvalidOperationException(reason);
            using var target = renderer.CreateTarget(Size);
            using var texture = renderer.ImportSurface(surface.View);
            Draw(renderer, target, texture, 200);
            return Draw(renderer, target, texture, 200); // the second draw uses the classes
        }
        Assert.Equal(Render(false), Render(true));
    }

    [Fact]
    public void Submit_TransparentBlockChangedWithoutDamage_IsLeftOutOnceClassified()
    {
        var renderer = RendererFactories.Shared("vulkan");
        using var target = renderer.CreateTarget(Size);
        var surface = new PinnedSurface(128, 16, SourceLayout.BgraPremultiplied);
        using var texture = renderer.ImportSurface(surface.View);
        Assert.True(((VulkanTexture)texture).IsZeroCopy);
        int at = (2 + 3) * Size.Width + 3 + 70;
        surface[70, 3] = 0xFFFFFFFFu; // not reported, but nothing is classified yet: drawn
        Assert.Equal(0xFFFFFFFFu, Draw(renderer, target, texture, 255)[at]);
        surface[70, 3] = 0;
        renderer.UpdateSurface(texture, surface.View, new Region(new RectI(70, 3, 1, 1)));
        Draw(renderer, target, texture, 255); // changed since the last draw: blended, not classified
        Draw(renderer, target, texture, 255); // unchanged since: classified (all transparent)
        surface[70, 3] = 0xFFFFFFFFu; // not reported: left out
        Assert.Equal(0xFF285078u, Draw(renderer, target, texture, 255)[at]);
        renderer.UpdateSurface(texture, surface.View, new Region(new RectI(70, 3, 1, 1)));
        Assert.Equal(0xFFFFFFFFu, Draw(renderer, target, texture, 255)[at]);
    }
}
