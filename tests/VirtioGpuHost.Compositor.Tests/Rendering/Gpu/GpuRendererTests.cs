using CsCheck;
using Silk.NET.Vulkan;
using VirtioGpuHost.Compositor.Core.Geometry;
using VirtioGpuHost.Compositor.Rendering;
using VirtioGpuHost.Compositor.Rendering.Cpu;
using VirtioGpuHost.Compositor.Rendering.Vulkan;

namespace VirtioGpuHost.Compositor.Tests.Rendering.Gpu;

/// <summary>
/// GPU renderers against the per-pixel reference and the CPU renderer, within
/// <see cref="RendererFactories.Tolerance"/> (1/255 per channel), plus the Vulkan renderer's own
/// behaviour: zero-copy import, the copy path's damage uploads, passes over more textures than
/// one dispatch binds, and device loss. Without a Vulkan device they skip, saying why.
/// </summary>
public class GpuRendererTests
{
    private const int Iterations = 300;
    private static readonly Region All = RenderTestKit.All;

    /// <summary>The GPU renderers, and the Vulkan renderer with surface import off (every surface copied).</summary>
    public static TheoryData<string> GpuConfigurations => RendererFactories.Data([.. RendererFactories.Gpu, "vulkan-copy"]);

    /// <summary>Fails unless every channel of every pixel is within <paramref name="tolerance"/>.</summary>
    internal static void AssertClose(uint[] expected, uint[] actual, int tolerance, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            if (expected[i] == actual[i]) continue;
            for (int shift = 0; shift < 32; shift += 8)
            {
                int d = Math.Abs((int)((expected[i] >> shift) & 0xFF) - (int)((actual[i] >> shift) & 0xFF));
                if (d > tolerance)
                    Assert.Fail($"{what}: pixel {i} is {actual[i]:X8}, expected {expected[i]:X8} (channel differs by {d}, tolerance {tolerance}/255)");
            }
        }
    }

    [Theory]
    [MemberData(nameof(GpuConfigurations))]
    public void Submit_RandomScene_MatchesReference(string renderer)
    {
        var r = RendererFactories.Shared(renderer);
        int tolerance = RendererFactories.Tolerance(renderer);
        RandomScene.Generator.Sample(scene => AssertClose(scene.Reference(), scene.Render(r), tolerance, renderer),
            iter: Iterations, threads: 1, print: s => s.ToString());
    }

    private static VulkanRenderer Vulkan(VulkanRendererOptions? options = null)
    {
        var r = VulkanRenderer.TryCreate(out string reason, options);
        if (r is null) Assert.Skip($"Vulkan is not available here: {reason}");
        return r;
    }

    [Fact]
    public void TryCreate_Available_IsVulkanWithAReasonlessDevice()
    {
        using var r = Vulkan();
        Assert.Equal("vulkan", r.Capabilities.Name);
        Assert.False(string.IsNullOrEmpty(r.DeviceName));
        Assert.False(r.IsLost);
    }

    [Fact]
    public void ImportSurface_PinnedMemory_ReadsItInPlace()
    {
        using var r = Vulkan();
        if (!r.Capabilities.ZeroCopySurfaces) Assert.Skip($"{r.DeviceName} cannot import host memory");
        var surface = new PinnedSurface(64, 8, SourceLayout.Bgrx, padPixels: 5).Fill((x, y) => (uint)(x * 3 + y));
        using var texture = (VulkanTexture)r.ImportSurface(surface.View);
        Assert.True(texture.IsZeroCopy);
        using var target = r.CreateTarget(new SizeI(64, 8));
        surface.Fill((x, y) => (uint)(x + y * 7)); // no UpdateSurface: the shader reads the memory itself
        var pass = r.BeginPass(target, All);
        pass.DrawTexture(texture, texture.Size.ToRect(), new RectI(0, 0, 64, 8), All);
        pass.Submit();
        var pixels = RenderTestKit.Read(target);
        Assert.Equal(0xFF000000u | (uint)(5 + 3 * 7), pixels[3 * 64 + 5]);
        GC.KeepAlive(surface); // read in place: must outlive the pass
    }

    [Fact]
    public void UpdateSurface_CopyPath_UploadsOnlyTheDamage()
    {
        using var r = Vulkan(new VulkanRendererOptions { ImportSurfaces = false });
        Assert.False(r.Capabilities.ZeroCopySurfaces);
        var surface = new PinnedSurface(8, 4, SourceLayout.Bgrx).Fill((_, _) => 0x00000011u);
        using var texture = (VulkanTexture)r.ImportSurface(surface.View);
        Assert.False(texture.IsZeroCopy);
        surface.Fill((_, _) => 0x00000022u);
        r.UpdateSurface(texture, surface.View, new Region(new RectI(2, 1, 3, 2)));
        using var target = r.CreateTarget(new SizeI(8, 4));
        var pass = r.BeginPass(target, All);
        pass.DrawTexture(texture, texture.Size.ToRect(), new RectI(0, 0, 8, 4), All);
        pass.Submit();
        var pixels = RenderTestKit.Read(target);
        for (int y = 0; y < 4; y++)
            for (int x = 0; x < 8; x++)
                Assert.Equal(new RectI(2, 1, 3, 2).Contains(x, y) ? 0xFF000022u : 0xFF000011u, pixels[y * 8 + x]);
    }

    [Fact]
    public void Submit_MoreTexturesThanOneDispatchBinds_MatchesCpu()
    {
        using var vulkan = Vulkan();
        using var cpu = new CpuRenderer();
        var surfaces = Enumerable.Range(0, 40).Select(i => new PinnedSurface(9 + i % 5, 7, i % 3 == 0 ? SourceLayout.BgraPremultiplied : (SourceLayout)(i % 4), padPixels: i % 2)
            .Fill(RenderTestKit.Noise(i))).ToList();
        uint[] Draw(IRenderer r)
        {
            var textures = surfaces.Select(s => r.ImportSurface(s.View)).ToList();
            using var target = r.CreateTarget(new SizeI(100, 60));
            var pass = r.BeginPass(target, new Region([new RectI(3, 2, 90, 50), new RectI(50, 40, 50, 20)]));
            for (int i = 0; i < textures.Count; i++)
            {
                pass.DrawTexture(textures[i], textures[i].Size.ToRect(), new RectI(i * 7 % 90, i * 5 % 50, 13 + i % 11, 9 + i % 7), All, (byte)(255 - i * 3));
                pass.FillRect(new RectI(i * 3, i, 5, 5), ColorBgra.FromStraight(200, 100, (byte)i, 120), All);
            }
            pass.Submit();
            textures.ForEach(t => t.Dispose());
            return RenderTestKit.Read(target);
        }
        AssertClose(Draw(cpu), Draw(vulkan), RendererFactories.Tolerance("vulkan"), "40 textures in one pass");
    }

    [Fact]
    public void Submit_FullHdFourLayersThenSmallDamage_MatchesCpu()
    {
        using var vulkan = Vulkan();
        using var cpu = new CpuRenderer();
        const int W = 1920, H = 1080;
        var layers = Enumerable.Range(0, 4).Select(k => new PinnedSurface(W, H, k == 0 ? SourceLayout.Xrgb : SourceLayout.BgraPremultiplied)
            .Fill(RenderTestKit.Noise(k + 100, 64, 8))).ToList();
        uint[] Draw(IRenderer r)
        {
            var textures = layers.Select(s => r.ImportSurface(s.View)).ToList();
            using var target = r.CreateTarget(new SizeI(W, H));
            var full = r.BeginPass(target, All);
            foreach (var t in textures) full.DrawTexture(t, new RectI(0, 0, W, H), new RectI(0, 0, W, H), All);
            full.Submit();
            var damage = r.BeginPass(target, new Region(new RectI(880, 560, 64, 64)));
            damage.DrawTexture(textures[1], new RectI(0, 0, W, H), new RectI(0, 0, W, H), All, dim: 77);
            damage.DrawTexture(textures[0], new RectI(100, 100, 640, 360), new RectI(0, 0, W, H), new Region(new RectI(900, 570, 30, 30)));
            damage.Submit();
            textures.ForEach(t => t.Dispose());
            return RenderTestKit.Read(target);
        }
        AssertClose(Draw(cpu), Draw(vulkan), RendererFactories.Tolerance("vulkan"), "1080p, 4 layers, then 64x64 damage");
    }

    [Fact]
    public void Submit_DeviceLost_ThrowsRendererLostAndEverythingAfterToo()
    {
        var r = Vulkan();
        var surface = new PinnedSurface(16, 16, SourceLayout.Bgrx).Fill(RenderTestKit.Noise(1));
        var texture = r.ImportSurface(surface.View);
        var label = r.CreateTexture(new SizeI(2, 2), [0x80402010u, 0, 0xFF000000u, 0x01010101u]);
        var target = r.CreateTarget(new SizeI(16, 16));
        var ok = r.BeginPass(target, All);
        ok.DrawTexture(texture, texture.Size.ToRect(), new RectI(0, 0, 16, 16), All);
        ok.Submit();
        int baseline = r.Device.LiveBuffers - 3; // the device's own (dummy binding, parameters): all but the texture, label and target

        r.Device.InjectFailure(Result.ErrorDeviceLost);
        var pass = r.BeginPass(target, All);
        pass.DrawTexture(label, label.Size.ToRect(), new RectI(0, 0, 16, 16), All);
        var e = Assert.Throws<RendererLostException>(pass.Submit);
        Assert.Contains("ErrorDeviceLost", e.Message);
        Assert.True(r.IsLost);
        Assert.Throws<RendererLostException>(() => r.BeginPass(target, All));
        Assert.Throws<RendererLostException>(() => r.CreateTarget(new SizeI(4, 4)));
        Assert.Throws<RendererLostException>(() => r.ImportSurface(surface.View));
        Assert.Throws<RendererLostException>(() => r.CreateTexture(new SizeI(1, 1), [0u]));
        Assert.Throws<RendererLostException>(() => target.ReadPixels(new uint[256]));

        // Resources are still freed, without touching the lost device beyond destroy calls.
        texture.Dispose();
        label.Dispose();
        target.Dispose();
        Assert.Equal(baseline, r.Device.LiveBuffers);
        r.Dispose();
        Assert.Throws<ObjectDisposedException>(() => r.CreateTarget(new SizeI(4, 4)));
    }

    [Fact]
    public void CreateTarget_AllocationFails_ThrowsRendererLost()
    {
        using var r = Vulkan();
        r.Device.InjectFailure(Result.ErrorOutOfDeviceMemory);
        var e = Assert.Throws<RendererLostException>(() => r.CreateTarget(new SizeI(32, 32)));
        Assert.Contains("ErrorOutOfDeviceMemory", e.Message);
        Assert.Throws<RendererLostException>(() => r.CreateTarget(new SizeI(32, 32)));
    }

    [Fact]
    public void Dispose_RendererWithLiveResources_FreesThemAndLaterDisposesAreHarmless()
    {
        var r = Vulkan();
        var surface = new PinnedSurface(8, 8, SourceLayout.Rgbx).Fill(RenderTestKit.Noise(3));
        var texture = r.ImportSurface(surface.View);
        var target = r.CreateTarget(new SizeI(8, 8));
        r.Dispose();
        Assert.Equal(0, r.Device.LiveBuffers);
        texture.Dispose();
        target.Dispose();
    }
}
