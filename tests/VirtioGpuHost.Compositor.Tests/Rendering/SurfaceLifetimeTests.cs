using VirtioGpuHost.Compositor.Core.Geometry;
using VirtioGpuHost.Compositor.Rendering;
using VirtioGpuHost.Compositor.Rendering.Cpu;

namespace VirtioGpuHost.Compositor.Tests.Rendering;

/// <summary>
/// The test harness keeps the pinned memory of imported surfaces alive while passes read it.
/// Imported surfaces are read in place, and a pinned array is still collected once unreachable:
/// optimized (tier-1) code ends a local's life at its last use, so a harness that imports
/// <c>surface.View</c> and never touches <c>surface</c> again lets the renderer read freed memory
/// (the GC's free-list words, or whatever is allocated there next) whenever a GC runs mid-frame.
/// That made <see cref="RendererPropertyTests"/> fail rarely, only on loaded machines (several
/// CsCheck threads allocating) and only after <see cref="RandomScene.Render(IRenderer)"/> had been
/// re-jitted at tier 1 (it is now always fully optimized). Here a GC, followed by pinned
/// allocations that reuse freed memory, runs before every submit.
/// </summary>
public class SurfaceLifetimeTests
{
    private static readonly RandomScene Scene = new(
        new SizeI(48, 32),
        [new SurfaceSpec(64, 24, SourceLayout.Bgrx, 1, 5, Owned: false), new SurfaceSpec(40, 16, SourceLayout.BgraPremultiplied, 0, 6, Owned: false)],
        [
            new RefDraw(0, new RectI(0, 0, 64, 24), new RectI(-4, 2, 64, 24), RenderTestKit.All, 255),
            new RefDraw(1, new RectI(0, 0, 40, 16), new RectI(5, 10, 40, 16), RenderTestKit.All, 200),
        ],
        new Region([new RectI(0, 20, 48, 12), new RectI(30, 0, 18, 32)]), // the background stays visible elsewhere
        BackgroundSeed: 11);

    [Fact]
    public void RandomSceneRender_GcBeforeEverySubmit_MatchesReference()
    {
        var expected = Scene.Reference();
        using var renderer = new CollectingRenderer(new CpuRenderer(new CpuRendererOptions { Threads = 1 }));
        for (int i = 0; i < 20; i++)
            Assert.Equal(expected, Scene.Render(renderer));
    }

    /// <summary>A renderer that collects garbage and reuses the freed pinned memory just before each pass runs.</summary>
    private sealed class CollectingRenderer(IRenderer inner) : IRenderer
    {
        public RendererCapabilities Capabilities => inner.Capabilities;
        public IRenderTarget CreateTarget(SizeI size) => inner.CreateTarget(size);
        public ITexture ImportSurface(in SurfaceView view) => inner.ImportSurface(view);
        public void UpdateSurface(ITexture texture, in SurfaceView view, Region damage) => inner.UpdateSurface(texture, view, damage);
        public ITexture CreateTexture(SizeI size, ReadOnlySpan<uint> premultipliedBgra) => inner.CreateTexture(size, premultipliedBgra);
        public IRenderPass BeginPass(IRenderTarget target, Region damage) => new Pass(inner.BeginPass(target, damage));
        public void Dispose() => inner.Dispose();

        private sealed class Pass(IRenderPass inner) : IRenderPass
        {
            public void FillRect(RectI destination, ColorBgra color, Region clip) => inner.FillRect(destination, color, clip);
            public void DrawTexture(ITexture texture, RectI source, RectI destination, Region clip, byte dim = 255) =>
                inner.DrawTexture(texture, source, destination, clip, dim);

            public void Submit()
            {
                GC.Collect();
                GC.WaitForPendingFinalizers();
                // Pinned arrays of the scene's sizes land in what was freed: a dead surface now reads as this.
                for (int n = 64; n <= 4096; n *= 2)
                    GC.AllocateArray<uint>(n, pinned: true).AsSpan().Fill(0x00FF00FFu);
                inner.Submit();
            }
        }
    }
}
