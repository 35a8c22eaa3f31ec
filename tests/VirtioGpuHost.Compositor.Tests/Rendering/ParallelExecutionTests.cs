using VirtioGpuHost.Compositor.Core.Geometry;
using VirtioGpuHost.Compositor.Rendering;
using VirtioGpuHost.Compositor.Rendering.Cpu;

namespace VirtioGpuHost.Compositor.Tests.Rendering;

/// <summary>Large frames are shared among threads in bands with the same pixels; small ones stay on the caller without allocating.</summary>
public class ParallelExecutionTests
{
    private static readonly Region All = RenderTestKit.All;

    private static (uint[] Pixels, RenderStats Stats) Frame(CpuRendererOptions options, Region damage)
    {
        using var renderer = new CpuRenderer(options);
        var layers = Enumerable.Range(0, 3).Select(k => new PinnedSurface(640, 360, k == 0 ? SourceLayout.Rgbx : SourceLayout.BgraPremultiplied).Fill(RenderTestKit.Noise(k))).ToList();
        var textures = layers.Select(l => renderer.ImportSurface(l.View)).ToList();
        using var target = (CpuRenderTarget)renderer.CreateTarget(new SizeI(640, 360));
        var pass = renderer.BeginPass(target, damage);
        pass.DrawTexture(textures[0], new RectI(0, 0, 640, 360), new RectI(0, 0, 640, 360), All);
        pass.DrawTexture(textures[1], new RectI(0, 0, 640, 360), new RectI(0, 0, 640, 360), All, dim: 200);
        pass.DrawTexture(textures[2], new RectI(10, 10, 300, 200), new RectI(20, 30, 600, 310), All);
        pass.Submit();
        GC.KeepAlive(layers); // imported surfaces are read in place: their pinned arrays must outlive the pass
        textures.ForEach(t => t.Dispose());
        return (RenderTestKit.Read(target), target.LastStats);
    }

    [Fact]
    public void Submit_LargeFrameOnTwoThreads_RunsInParallelWithSamePixels()
    {
        var full = new Region(new RectI(0, 0, 640, 360));
        var (serial, serialStats) = Frame(new CpuRendererOptions { Threads = 1 }, full);
        var (parallel, parallelStats) = Frame(new CpuRendererOptions { Threads = 2 }, full);
        Assert.False(serialStats.Parallel);
        Assert.True(parallelStats.Parallel);
        Assert.Equal(serial, parallel);
    }

    [Fact]
    public void Submit_SmallDamage_StaysOnCallingThread()
    {
        var (_, stats) = Frame(new CpuRendererOptions { Threads = 2 }, new Region(new RectI(100, 100, 64, 64)));
        Assert.False(stats.Parallel);
        Assert.Equal(3 * 64 * 64, stats.PixelsDrawn);
    }

    [Fact]
    public void Submit_WarmSmallDamageFrame_AllocatesNothing()
    {
        using var renderer = new CpuRenderer();
        var layer = new PinnedSurface(256, 256, SourceLayout.BgraPremultiplied).Fill(RenderTestKit.Noise(1));
        var background = new PinnedSurface(256, 256, SourceLayout.Xbgr).Fill(RenderTestKit.Noise(2));
        using var top = renderer.ImportSurface(layer.View);
        using var bottom = renderer.ImportSurface(background.View);
        using var target = renderer.CreateTarget(new SizeI(256, 256));
        var damage = new Region(new RectI(30, 40, 64, 64));
        var clip = new Region(new RectI(0, 0, 256, 256));
        void Frame()
        {
            var pass = renderer.BeginPass(target, damage);
            pass.DrawTexture(bottom, new RectI(0, 0, 256, 256), new RectI(0, 0, 256, 256), clip);
            pass.DrawTexture(top, new RectI(0, 0, 128, 128), new RectI(0, 0, 256, 256), clip, dim: 100);
            pass.FillRect(new RectI(50, 50, 10, 10), ColorBgra.FromStraight(1, 2, 3, 100), clip);
            pass.Submit();
        }
        Frame();
        Frame();
        // A one-off lazy initialisation (the first real wait for a worker on a loaded machine, a
        // tier-1 recompilation) may allocate once; an allocation per frame shows in every window.
        var windows = new List<long>();
        for (int attempt = 0; attempt < 3; attempt++)
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            for (int i = 0; i < 10; i++) Frame();
            windows.Add(GC.GetAllocatedBytesForCurrentThread() - before);
            if (windows[^1] == 0) break;
        }
        Assert.True(windows[^1] == 0, $"every 10-frame window allocated: {string.Join(", ", windows)} bytes");
        GC.KeepAlive(layer);
        GC.KeepAlive(background);
    }

    [Fact]
    public void Submit_ManyFramesOnMoreThreadsThanCores_EveryBandDrawnOnce()
    {
        // Translucent fills: a band drawn twice, or skipped, changes pixels. One-row bands and
        // more workers than cores make late and preempted workers common.
        using var renderer = new CpuRenderer(new CpuRendererOptions { Threads = 4, ParallelThresholdPixels = 0, BandRows = 1 });
        using var target = renderer.CreateTarget(new SizeI(97, 61));
        var damage = new Region(new RectI(0, 0, 97, 61));
        var expected = Enumerable.Repeat(ReferenceRenderer.Over(ColorBgra.FromStraight(200, 100, 50, 77).Value, 0xFF102030u), 97 * 61).ToArray();
        for (int frame = 0; frame < 300; frame++)
        {
            var pass = renderer.BeginPass(target, damage);
            pass.FillRect(new RectI(0, 0, 97, 61), new ColorBgra(0xFF102030u), All);
            pass.FillRect(new RectI(0, 0, 97, 61), ColorBgra.FromStraight(200, 100, 50, 77), All);
            pass.Submit();
            Assert.True(((CpuRenderTarget)target).LastStats.Parallel);
            Assert.Equal(expected, RenderTestKit.Read(target));
        }
    }
}
