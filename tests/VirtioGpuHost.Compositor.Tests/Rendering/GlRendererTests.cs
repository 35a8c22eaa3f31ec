using CsCheck;
using VirtioGpuHost.Compositor.Core.Geometry;
using VirtioGpuHost.Compositor.Rendering;
using VirtioGpuHost.Compositor.Rendering.Cpu;
using VirtioGpuHost.Compositor.Rendering.Labels;
using VirtioGpuHost.Compositor.Rendering.OpenGL;
using VirtioGpuHost.Compositor.Rendering.Png;

namespace VirtioGpuHost.Compositor.Tests.Rendering;

/// <summary>
/// The OpenGL renderer (EGL surfaceless, Mesa llvmpipe here) against the same references as the CPU
/// renderer: the golden images, the contract, random scenes against <see cref="ReferenceRenderer"/>.
/// Stated tolerance: 1/255 per channel (<see cref="GlTestKit.Tolerance"/>); the renderer is designed
/// to be exact, and <see cref="Submit_RandomScene_MatchesCpuRendererExactly"/> checks that it is.
/// Every test skips with the reason when EGL/GL 4.3 is unavailable.
/// </summary>
public class GlRendererTests
{
    private static readonly Region All = RenderTestKit.All;

    // The golden images run on the GL renderer in GoldenImageTests (RendererFactories names
    // "opengl", tolerance 1/255), like every other renderer.

    // ---- the contract ----

    [Fact]
    public void TryCreate_Available_NamedOpenGlWithoutZeroCopy()
    {
        using var renderer = GlTestKit.RendererOrSkip();
        Assert.Equal("opengl", renderer.Capabilities.Name);
        Assert.False(renderer.Capabilities.ZeroCopySurfaces);
        Assert.Contains("GL", renderer.Capabilities.Details);
    }

    [Fact]
    public void CreateTarget_NewTarget_IsOpaqueBlack()
    {
        using var renderer = GlTestKit.RendererOrSkip();
        using var target = renderer.CreateTarget(new SizeI(5, 3));
        Assert.All(RenderTestKit.Read(target), p => Assert.Equal(0xFF000000u, p));
    }

    [Fact]
    public void ImportSurface_MemoryChangedWithoutUpdate_ShowsTheImportedCopy()
    {
        using var renderer = GlTestKit.RendererOrSkip();
        var surface = new PinnedSurface(4, 2, SourceLayout.Bgrx).Fill((_, _) => 0x00102030u);
        using var texture = renderer.ImportSurface(surface.View);
        surface.Fill((_, _) => 0x00405060u); // GL copies: unseen until UpdateSurface says where it changed
        Assert.All(DrawOnce(renderer, texture, new SizeI(4, 2)), p => Assert.Equal(0xFF102030u, p));
        renderer.UpdateSurface(texture, surface.View, new Region(new RectI(1, 0, 2, 1)));
        var after = DrawOnce(renderer, texture, new SizeI(4, 2));
        Assert.Equal([0xFF102030u, 0xFF405060u, 0xFF405060u, 0xFF102030u, 0xFF102030u, 0xFF102030u, 0xFF102030u, 0xFF102030u], after);
        Assert.Equal((4 * 2 + 2) * 4, ((GlTexture)texture).BytesUploaded);
    }

    [Fact]
    public void UpdateSurface_OtherBufferSizeAndLayout_DrawsFromIt()
    {
        using var renderer = GlTestKit.RendererOrSkip();
        var first = new PinnedSurface(4, 2, SourceLayout.Bgrx).Fill((_, _) => 0x00102030u);
        var second = new PinnedSurface(6, 3, SourceLayout.Xrgb, padPixels: 2).Fill((_, _) => 0x30201000u); // bytes X=00 R=10 G=20 B=30
        using var texture = renderer.ImportSurface(first.View);
        renderer.UpdateSurface(texture, second.View, new Region(new RectI(0, 0, 6, 3)));
        Assert.Equal(new SizeI(6, 3), texture.Size);
        Assert.All(DrawOnce(renderer, texture, new SizeI(6, 3)), p => Assert.Equal(0xFF102030u, p));
    }

    [Fact]
    public void ImportSurface_StrideNotWholePixels_UploadsRowByRow()
    {
        using var renderer = GlTestKit.RendererOrSkip();
        var bytes = GC.AllocateArray<byte>(3 * 18 + 8, pinned: true);
        for (int y = 0; y < 3; y++)
            for (int x = 0; x < 4; x++)
                BitConverter.TryWriteBytes(bytes.AsSpan(y * 18 + x * 4), (uint)(y * 16 + x));
        var view = new SurfaceView(System.Runtime.InteropServices.Marshal.UnsafeAddrOfPinnedArrayElement(bytes, 0), 4, 3, 18, SourceLayout.Bgrx);
        using var texture = renderer.ImportSurface(view);
        var pixels = DrawOnce(renderer, texture, new SizeI(4, 3));
        for (int i = 0; i < 12; i++) Assert.Equal(0xFF000000u | (uint)(i / 4 * 16 + i % 4), pixels[i]);
    }

    [Fact]
    public void CreateTexture_SourceArrayChangedAfterwards_KeepsCopy()
    {
        using var renderer = GlTestKit.RendererOrSkip();
        var pixels = Enumerable.Repeat(0xFF112233u, 6).ToArray();
        using var texture = renderer.CreateTexture(new SizeI(3, 2), pixels);
        Array.Fill(pixels, 0xFF445566u);
        Assert.False(texture.IsOpaque);
        Assert.All(DrawOnce(renderer, texture, new SizeI(3, 2)), p => Assert.Equal(0xFF112233u, p));
    }

    [Fact]
    public void InvalidArguments_ThrowLikeTheCpuRenderer()
    {
        using var renderer = GlTestKit.RendererOrSkip();
        using var other = GlTestKit.RendererOrSkip();
        Assert.Throws<ArgumentException>(() => renderer.CreateTexture(new SizeI(3, 2), new uint[5]));
        var surface = new PinnedSurface(4, 2, SourceLayout.Bgrx);
        Assert.Throws<ArgumentException>(() => renderer.ImportSurface(surface.View with { Stride = 12 }));
        using var target = renderer.CreateTarget(new SizeI(8, 8));
        using var texture = renderer.CreateTexture(new SizeI(4, 4), new uint[16]);
        using var foreign = other.CreateTexture(new SizeI(4, 4), new uint[16]);
        var pass = renderer.BeginPass(target, All);
        Assert.Throws<ArgumentOutOfRangeException>(() => pass.DrawTexture(texture, new RectI(2, 2, 3, 2), new RectI(0, 0, 8, 8), All));
        Assert.Throws<ArgumentException>(() => pass.DrawTexture(foreign, new RectI(0, 0, 4, 4), new RectI(0, 0, 8, 8), All));
        Assert.Throws<InvalidOperationException>(() => renderer.BeginPass(target, All));
        pass.Submit();
        Assert.Throws<InvalidOperationException>(() => pass.FillRect(new RectI(0, 0, 2, 2), ColorBgra.Opaque(1, 2, 3), All));
    }

    [Fact]
    public void Submit_TextureDisposedAfterDrawCall_ThrowsAndClosesPass()
    {
        using var renderer = GlTestKit.RendererOrSkip();
        using var target = renderer.CreateTarget(new SizeI(8, 8));
        var texture = renderer.CreateTexture(new SizeI(4, 4), new uint[16]);
        var pass = renderer.BeginPass(target, All);
        pass.DrawTexture(texture, new RectI(0, 0, 4, 4), new RectI(0, 0, 8, 8), All);
        texture.Dispose();
        Assert.Throws<ObjectDisposedException>(pass.Submit);
        renderer.BeginPass(target, All).Submit(); // the target is usable again
    }

    [Fact]
    public void ReadPixels_Rect_CopiesThatRectRowByRow()
    {
        using var renderer = GlTestKit.RendererOrSkip();
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
        using var renderer = GlTestKit.RendererOrSkip();
        var surface = new PinnedSurface(2, 1, SourceLayout.Bgrx).Fill((x, _) => x == 0 ? 0x000000AAu : 0x000000BBu);
        using var texture = renderer.ImportSurface(surface.View);
        using var target = renderer.CreateTarget(new SizeI(4, 1));
        var pass = renderer.BeginPass(target, All);
        pass.DrawTexture(texture, new RectI(0, 0, 2, 1), new RectI(int.MinValue + 10, 0, int.MaxValue, 1), All);
        pass.Submit();
        Assert.All(RenderTestKit.Read(target), p => Assert.Equal(0xFF0000BBu, p));
    }

    [Fact]
    public void Submit_ManyTexturesAndCalls_SplitsIntoBatchesWithTheSamePixels()
    {
        using var renderer = GlTestKit.RendererOrSkip();
        using var cpu = new CpuRenderer();
        var size = new SizeI(100, 70);
        var surfaces = Enumerable.Range(0, 40).Select(i => new PinnedSurface(7 + i % 5, 5 + i % 3, i % 3 == 0 ? SourceLayout.BgraPremultiplied : (SourceLayout)(i % 4), 1)
            .Fill(RenderTestKit.Noise(i))).ToList();
        uint[] Draw(IRenderer r)
        {
            var textures = surfaces.Select(s => r.ImportSurface(s.View)).ToList();
            using var target = r.CreateTarget(size);
            var pass = r.BeginPass(target, new Region([new RectI(0, 0, 60, 70), new RectI(60, 10, 40, 40)]));
            for (int i = 0; i < 60; i++)
            {
                var t = textures[i * 7 % textures.Count];
                var dst = new RectI(i * 13 % 90 - 5, i * 7 % 60 - 3, 10 + i % 23, 8 + i % 17);
                if (i % 5 == 4) pass.FillRect(dst, ColorBgra.FromStraight((byte)(i * 40), 90, 200, (byte)(i * 11)), All);
                else pass.DrawTexture(t, t.Size.ToRect(), dst, new Region([new RectI(0, 0, 100, 35), new RectI(10, 35, 80, 35)]), (byte)(255 - i));
            }
            pass.Submit();
            var pixels = RenderTestKit.Read(target);
            textures.ForEach(t => t.Dispose());
            return pixels;
        }
        Assert.Equal(Draw(cpu), Draw(renderer));
    }

    [Fact]
    public void Submit_FromSeveralThreadsInTurn_Works()
    {
        using var renderer = GlTestKit.RendererOrSkip();
        using var target = renderer.CreateTarget(new SizeI(16, 16));
        for (int i = 0; i < 4; i++)
        {
            byte v = (byte)(i * 50);
            var thread = new Thread(() =>
            {
                var pass = renderer.BeginPass(target, All);
                pass.FillRect(new RectI(0, 0, 16, 16), ColorBgra.Opaque(v, v, v), All);
                pass.Submit();
            });
            thread.Start();
            thread.Join();
            Assert.All(RenderTestKit.Read(target), p => Assert.Equal(ColorBgra.Opaque(v, v, v).Value, p));
        }
    }

    // ---- random scenes ----

    [Fact]
    public void Submit_RandomScene_MatchesReferenceWithinTolerance()
    {
        using var renderer = GlTestKit.RendererOrSkip();
        RandomScene.Generator.Sample(scene =>
            GlTestKit.AssertClose(scene.Reference(), scene.Render(renderer), "random scene", scene.Size),
            iter: 200, threads: 1, print: s => s.ToString());
    }

    [Fact]
    public void Submit_RandomScene_MatchesCpuRendererExactly()
    {
        using var renderer = GlTestKit.RendererOrSkip();
        using var cpu = new CpuRenderer(new CpuRendererOptions { Threads = 1 });
        RandomScene.Generator.Sample(scene => Assert.Equal(scene.Render(cpu), scene.Render(renderer)),
            iter: 100, threads: 1, print: s => s.ToString());
    }

    // ---- failures ----

    [Theory]
    [InlineData("gl-error")]
    [InlineData("context-reset")]
    public void Submit_InjectedFailure_ThrowsRendererLostAndFreesEverything(string fault)
    {
        var renderer = GlTestKit.RendererOrSkip();
        var surface = new PinnedSurface(8, 8, SourceLayout.Bgrx).Fill(RenderTestKit.Noise(3));
        var target = renderer.CreateTarget(new SizeI(8, 8));
        var texture = renderer.ImportSurface(surface.View);
        var label = renderer.CreateTexture(new SizeI(2, 2), [0x80402010u, 0, 0xFF000000u, 0x01010101u]);
        Assert.Equal(3, renderer.LiveResources);

        renderer.InjectFault(fault == "gl-error" ? GlFault.GlError : GlFault.ContextReset);
        var pass = renderer.BeginPass(target, All);
        pass.DrawTexture(texture, new RectI(0, 0, 8, 8), new RectI(0, 0, 8, 8), All);
        var lost = Assert.Throws<RendererLostException>(pass.Submit);
        Assert.Contains(fault == "gl-error" ? "InvalidEnum" : "reset", lost.Message);
        Assert.True(renderer.IsLost);

        // Everything after the loss throws the same exception type, nothing crashes.
        Assert.Throws<RendererLostException>(() => renderer.BeginPass(target, All));
        Assert.Throws<RendererLostException>(() => renderer.CreateTarget(new SizeI(4, 4)));
        Assert.Throws<RendererLostException>(() => renderer.ImportSurface(surface.View));
        Assert.Throws<RendererLostException>(() => renderer.UpdateSurface(texture, surface.View, All));
        Assert.Throws<RendererLostException>(() => target.ReadPixels(new uint[64]));

        texture.Dispose();
        Assert.Equal(2, renderer.LiveResources);
        renderer.Dispose();
        Assert.Equal(0, renderer.LiveResources);
        label.Dispose(); // after the renderer: harmless
        target.Dispose();
        Assert.Throws<ObjectDisposedException>(() => renderer.CreateTarget(new SizeI(1, 1)));

        using var fresh = GlTestKit.RendererOrSkip(); // the platform still works for a new renderer
        using var t2 = fresh.CreateTarget(new SizeI(2, 2));
        Assert.All(RenderTestKit.Read(t2), p => Assert.Equal(0xFF000000u, p));
    }

    private static uint[] DrawOnce(IRenderer renderer, ITexture texture, SizeI size)
    {
        using var target = renderer.CreateTarget(size);
        var pass = renderer.BeginPass(target, All);
        pass.DrawTexture(texture, texture.Size.ToRect(), size.ToRect(), All);
        pass.Submit();
        return RenderTestKit.Read(target);
    }
}

/// <summary>Creating the GL renderer or skipping the test with why not; the tolerance comparison.</summary>
internal static class GlTestKit
{
    /// <summary>The stated tolerance against references: 1/255 per channel.</summary>
    public const int Tolerance = 1;

    public static GlRenderer RendererOrSkip()
    {
        var renderer = GlRenderer.TryCreate(out string reason);
        if (renderer is null) Assert.Skip(reason);
        return renderer;
    }

    /// <summary>Every channel of every pixel within <see cref="Tolerance"/>; the failure names the worst pixel.</summary>
    public static void AssertClose(uint[] expected, uint[] actual, string what, SizeI size)
    {
        Assert.Equal(expected.Length, actual.Length);
        int worst = 0, at = -1, differing = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            if (expected[i] == actual[i]) continue;
            differing++;
            for (int shift = 0; shift < 32; shift += 8)
            {
                int d = Math.Abs((int)((expected[i] >> shift) & 0xFF) - (int)((actual[i] >> shift) & 0xFF));
                if (d > worst) (worst, at) = (d, i);
            }
        }
        if (worst > Tolerance)
            Assert.Fail($"{what}: {differing} of {expected.Length} pixels differ, worst by {worst}/255 at ({at % size.Width}, {at / size.Width}): " +
                        $"expected {expected[at]:X8}, actual {actual[at]:X8} (tolerance {Tolerance}/255)");
    }
}
