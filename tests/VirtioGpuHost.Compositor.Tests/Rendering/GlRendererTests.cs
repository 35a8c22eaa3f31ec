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

    // ---- golden images (the scenes of GoldenScenes, drawn by the GL renderer) ----

    [Theory]
    [InlineData("headunit-quadrants")]
    [InlineData("blend-dim")]
    [InlineData("clip-damage")]
    [InlineData("no-signal")]
    [InlineData("layouts-scaling")]
    public void GoldenScene_GlRenderer_MatchesGoldenWithinTolerance(string name)
    {
        using var renderer = GlTestKit.RendererOrSkip();
        SizeI size = default;
        var pixels = name switch
        {
            "headunit-quadrants" => GlScenes.HeadUnit(renderer, out size),
            "blend-dim" => GlScenes.BlendAndDim(renderer, out size),
            "clip-damage" => GlScenes.ClipAndDamage(renderer, out size),
            "no-signal" => GlScenes.NoSignal(renderer, out size),
            _ => GlScenes.LayoutsAndScaling(renderer, out size),
        };
        var golden = RenderTargetPng.Load(Path.Combine(RenderTestKit.RepoRoot, "tests", "VirtioGpuHost.Compositor.Tests", "Golden", name + ".png"));
        Assert.Equal(golden.Size, size);
        GlTestKit.AssertClose(golden.Pixels, pixels, name, size);
    }

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
            GlTestKit.AssertClose(scene.Reference(), GlScenes.Render(scene, renderer), "random scene", scene.Size),
            iter: 200, threads: 1, print: s => s.ToString());
    }

    [Fact]
    public void Submit_RandomScene_MatchesCpuRendererExactly()
    {
        using var renderer = GlTestKit.RendererOrSkip();
        using var cpu = new CpuRenderer(new CpuRendererOptions { Threads = 1 });
        RandomScene.Generator.Sample(scene => Assert.Equal(GlScenes.Render(scene, cpu), GlScenes.Render(scene, renderer)),
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

/// <summary>
/// The golden scenes of <see cref="GoldenScenes"/> and a <see cref="RandomScene"/> drawn by any
/// renderer (GoldenScenes makes its own CPU renderer; these take one). Kept in step with it by
/// the golden comparison itself.
/// </summary>
internal static class GlScenes
{
    private static readonly Region All = RenderTestKit.All;

    public static uint[] Render(RandomScene scene, IRenderer renderer)
    {
        var surfaces = scene.Surfaces.Select(s => s.Make()).ToList();
        var textures = scene.Surfaces.Select((s, i) => s.Owned
            ? renderer.CreateTexture(new SizeI(s.Width, s.Height), Packed(surfaces[i]))
            : renderer.ImportSurface(surfaces[i].View)).ToList();
        using var target = renderer.CreateTarget(scene.Size);
        var background = new PinnedSurface(scene.Size.Width, scene.Size.Height, SourceLayout.Bgrx).Fill(RenderTestKit.Noise(scene.BackgroundSeed));
        using (var bg = renderer.ImportSurface(background.View))
        {
            var first = renderer.BeginPass(target, All);
            first.DrawTexture(bg, scene.Size.ToRect(), scene.Size.ToRect(), All);
            first.Submit();
        }
        var pass = renderer.BeginPass(target, scene.Damage);
        foreach (var call in scene.Calls)
        {
            switch (call)
            {
                case RefFill f: pass.FillRect(f.Destination, f.Color, f.Clip); break;
                case RefDraw d: pass.DrawTexture(textures[d.Surface], d.Source, d.Destination, d.Clip, d.Dim); break;
            }
        }
        pass.Submit();
        foreach (var t in textures) t.Dispose();
        return RenderTestKit.Read(target);
    }

    private static uint[] Packed(PinnedSurface s)
    {
        var p = new uint[s.Width * s.Height];
        for (int y = 0; y < s.Height; y++)
            for (int x = 0; x < s.Width; x++) p[y * s.Width + x] = s[x, y];
        return p;
    }

    private static PinnedSurface Surface(int w, int h, SourceLayout layout, Func<int, int, (byte R, byte G, byte B)> colour)
    {
        var s = new PinnedSurface(w, h, layout, padPixels: 3);
        return s.Fill((x, y) => { var c = colour(Math.Min(x, w - 1), y); return GoldenScenes.Encode(layout, c.R, c.G, c.B); });
    }

    private static (byte, byte, byte) Bars(int x, int y, int w, int h)
    {
        ReadOnlySpan<uint> bars = [0xC0C0C0, 0xC0C000, 0x00C0C0, 0x00C000, 0xC000C0, 0xC00000, 0x0000C0, 0x101010];
        if (y > h * 3 / 4) { byte v = (byte)(x * 255 / Math.Max(1, w - 1)); return (v, v, v); }
        uint c = bars[x * 8 / w];
        return ((byte)(c >> 16), (byte)(c >> 8), (byte)c);
    }

    private static (byte, byte, byte) Gradient(int x, int y, int w, int h) =>
        ((byte)(20 + x * 180 / w), (byte)(40 + y * 80 / h), (byte)(((x + y) / 6 % 2 == 0) ? 160 : 90));

    private static (byte, byte, byte) Checker(int x, int y, int cell) =>
        ((x / cell + y / cell) % 2 == 0 ? ((byte)(x * 37 % 256), (byte)200, (byte)(y * 53 % 256)) : ((byte)30, (byte)(x * 11 % 256), (byte)90));

    private static (byte, byte, byte) Rings(int x, int y, int w, int h)
    {
        int dx = x - w / 2, dy = y - h / 2;
        int ring = (dx * dx + dy * dy) / 97 % 3;
        return ring switch { 0 => ((byte)240, (byte)200, (byte)40), 1 => ((byte)30, (byte)60, (byte)140), _ => ((byte)220, (byte)80, (byte)60) };
    }

    public static uint[] HeadUnit(IRenderer renderer, out SizeI size)
    {
        size = new SizeI(480, 270);
        var labels = new LabelRenderer();
        var surfaces = new[]
        {
            Surface(320, 180, SourceLayout.Xrgb, (x, y) => Bars(x, y, 320, 180)),
            Surface(200, 200, SourceLayout.Bgrx, (x, y) => Gradient(x, y, 200, 200)),
            Surface(160, 120, SourceLayout.Rgbx, (x, y) => Checker(x, y, 10)),
            Surface(256, 144, SourceLayout.Xbgr, (x, y) => Rings(x, y, 256, 144)),
        };
        (string Text, ColorBgra Bar)[] vms =
        [
            ("CLUSTER  critical", ColorBgra.Opaque(170, 20, 20)),
            ("IVI  normal", ColorBgra.Opaque(20, 90, 170)),
            ("third-party apps  untrusted", ColorBgra.Opaque(90, 90, 90)),
            ("REAR CAMERA", ColorBgra.Opaque(20, 130, 60)),
        ];
        var textures = surfaces.Select(s => renderer.ImportSurface(s.View)).ToList();
        using var target = renderer.CreateTarget(size);
        var pass = renderer.BeginPass(target, All);
        pass.FillRect(size.ToRect(), ColorBgra.Opaque(16, 16, 20), All);
        var labelTextures = new List<ITexture>();
        for (int i = 0; i < 4; i++)
        {
            var zone = new RectI(i % 2 * 240, i / 2 * 135, 240, 135);
            var bar = new RectI(zone.X + 2, zone.Y + 2, zone.Width - 4, 18);
            var content = RectI.FromEdges(zone.X + 2, bar.Bottom, zone.Right - 2, zone.Bottom - 2);
            pass.DrawTexture(textures[i], surfaces[i].Size.ToRect(), GoldenScenes.Fit(surfaces[i].Size, content), new Region(content));
            var label = labels.RenderBar(vms[i].Text, vms[i].Bar, ColorBgra.Opaque(255, 255, 255), new SizeI(bar.Width, bar.Height)).CreateTexture(renderer);
            labelTextures.Add(label);
            pass.DrawTexture(label, label.Size.ToRect(), bar, All);
        }
        pass.Submit();
        textures.Concat(labelTextures).ToList().ForEach(t => t.Dispose());
        return RenderTestKit.Read(target);
    }

    public static uint[] BlendAndDim(IRenderer renderer, out SizeI size)
    {
        size = new SizeI(320, 200);
        var background = Surface(320, 200, SourceLayout.Bgrx, (x, y) => Gradient(x, y, 320, 200));
        var checker = Surface(64, 48, SourceLayout.Rgbx, (x, y) => Checker(x, y, 8));
        var spot = new uint[64 * 64];
        for (int y = 0; y < 64; y++)
            for (int x = 0; x < 64; x++)
            {
                int d2 = (x - 32) * (x - 32) + (y - 32) * (y - 32);
                byte a = (byte)Math.Clamp(255 - d2 * 255 / 1024, 0, 255);
                spot[y * 64 + x] = ColorBgra.FromStraight((byte)(x * 4), 255, (byte)(y * 4), a).Value;
            }
        using var bg = renderer.ImportSurface(background.View);
        using var check = renderer.ImportSurface(checker.View);
        using var glow = renderer.CreateTexture(new SizeI(64, 64), spot);
        using var target = renderer.CreateTarget(size);
        var pass = renderer.BeginPass(target, All);
        pass.DrawTexture(bg, new RectI(0, 0, 320, 200), new RectI(0, 0, 320, 200), All);
        pass.DrawTexture(check, new RectI(0, 0, 64, 48), new RectI(180, 100, 128, 96), All, dim: 96);
        pass.FillRect(new RectI(20, 20, 120, 90), ColorBgra.FromStraight(255, 0, 0, 128), All);
        pass.FillRect(new RectI(70, 50, 120, 90), ColorBgra.FromStraight(0, 255, 0, 128), All);
        pass.FillRect(new RectI(45, 80, 120, 90), ColorBgra.FromStraight(0, 0, 255, 128), All);
        pass.DrawTexture(glow, new RectI(0, 0, 64, 64), new RectI(150, 10, 128, 128), All);
        pass.DrawTexture(glow, new RectI(16, 16, 32, 32), new RectI(230, 120, 77, 61), All, dim: 160);
        pass.Submit();
        return RenderTestKit.Read(target);
    }

    public static uint[] ClipAndDamage(IRenderer renderer, out SizeI size)
    {
        size = new SizeI(320, 200);
        var checker = Surface(40, 25, SourceLayout.Xbgr, (x, y) => Checker(x, y, 5));
        var bars = Surface(320, 180, SourceLayout.Xrgb, (x, y) => Bars(x, y, 320, 180));
        using var check = renderer.ImportSurface(checker.View);
        using var bar = renderer.ImportSurface(bars.View);
        using var target = renderer.CreateTarget(size);
        var first = renderer.BeginPass(target, All);
        first.DrawTexture(check, new RectI(0, 0, 40, 25), size.ToRect(), All);
        first.Submit();
        var second = renderer.BeginPass(target, new Region([new RectI(10, 10, 200, 80), new RectI(100, 120, 210, 70)]));
        second.DrawTexture(bar, new RectI(0, 0, 320, 180), size.ToRect(), new Region([new RectI(0, 0, 150, 200), new RectI(180, 100, 140, 100)]));
        second.FillRect(new RectI(60, 40, 200, 130), ColorBgra.FromStraight(255, 255, 255, 100), new Region([new RectI(60, 40, 60, 130), new RectI(200, 40, 60, 130)]));
        second.Submit();
        return RenderTestKit.Read(target);
    }

    public static uint[] NoSignal(IRenderer renderer, out SizeI size)
    {
        size = new SizeI(320, 200);
        var labels = new LabelRenderer();
        var frame = Surface(320, 180, SourceLayout.Xrgb, (x, y) => Bars(x, y, 320, 180));
        using var last = renderer.ImportSurface(frame.View);
        using var bar = labels.RenderBar("Infotainment VM (normal) - frames stopped 2.0 s ago", ColorBgra.Opaque(20, 90, 170), ColorBgra.Opaque(255, 255, 255), new SizeI(320, 20)).CreateTexture(renderer);
        using var overlay = labels.RenderOverlay("NO SIGNAL", ColorBgra.FromStraight(0, 0, 0, 190), ColorBgra.Opaque(255, 210, 60), new SizeI(180, 48)).CreateTexture(renderer);
        using var target = renderer.CreateTarget(size);
        var pass = renderer.BeginPass(target, All);
        pass.DrawTexture(last, new RectI(0, 0, 320, 180), new RectI(0, 20, 320, 180), All, dim: 80);
        pass.DrawTexture(overlay, new RectI(0, 0, 180, 48), new RectI(70, 86, 180, 48), All);
        pass.DrawTexture(bar, new RectI(0, 0, 320, 20), new RectI(0, 0, 320, 20), All);
        pass.Submit();
        return RenderTestKit.Read(target);
    }

    public static uint[] LayoutsAndScaling(IRenderer renderer, out SizeI size)
    {
        size = new SizeI(320, 200);
        using var target = renderer.CreateTarget(size);
        var pass = renderer.BeginPass(target, All);
        var textures = new List<ITexture>();
        SourceLayout[] layouts = [SourceLayout.Bgrx, SourceLayout.Xrgb, SourceLayout.Rgbx, SourceLayout.Xbgr];
        for (int i = 0; i < 4; i++)
        {
            var s = Surface(7, 5, layouts[i], (x, y) => ((byte)(x * 40), (byte)(y * 60), (byte)((x + y) % 2 * 200 + 30)));
            var t = renderer.ImportSurface(s.View);
            textures.Add(t);
            pass.DrawTexture(t, new RectI(0, 0, 7, 5), new RectI(3 + i % 2 * 100, 3 + i / 2 * 70, 97, 63), All);
        }
        var fine = Surface(300, 192, SourceLayout.Bgrx, (x, y) => (x % 3 == 1 ? (byte)250 : (byte)0, y % 3 == 1 ? (byte)250 : (byte)0, 60));
        var ft = renderer.ImportSurface(fine.View);
        textures.Add(ft);
        pass.DrawTexture(ft, new RectI(0, 0, 300, 192), new RectI(210, 3, 100, 64), All);
        pass.DrawTexture(ft, new RectI(0, 0, 30, 20), new RectI(210, 80, 100, 100), All);
        pass.Submit();
        textures.ForEach(t => t.Dispose());
        return RenderTestKit.Read(target);
    }
}
