using VirtioGpuHost.Compositor.Core.Geometry;
using VirtioGpuHost.Compositor.Outputs;
using VirtioGpuHost.Compositor.Rendering.Cpu;

namespace VirtioGpuHost.Compositor.Tests.Outputs;

public sealed class HeadlessOutputTests
{
    [Fact]
    public void Present_CopiesOnlyTheDamage_IntoTheSnapshot()
    {
        using var renderer = new CpuRenderer();
        var output = new HeadlessOutput(renderer, "main", new SizeI(64, 32), 60);
        var all = new RectI(0, 0, 64, 32);
        var pass = renderer.BeginPass(output.Target, new Region(all));
        pass.FillRect(all, new ColorBgra(0xFF0000FF), new Region(all));
        pass.Submit();
        output.Present(1, new Region(all));

        var red = new RectI(10, 5, 20, 8);
        pass = renderer.BeginPass(output.Target, new Region(all));
        pass.FillRect(all, new ColorBgra(0xFFFF0000), new Region(all)); // the target changes everywhere...
        pass.Submit();
        output.Present(2, new Region(red)); // ...but only this rect is presented

        var shot = output.Snapshot();
        for (int y = 0; y < 32; y++)
            for (int x = 0; x < 64; x++)
                Assert.Equal(red.Contains(x, y) ? 0xFFFF0000u : 0xFF0000FFu, shot[y * 64 + x]);
    }

    [Fact]
    public void Present_OfLargeDamage_DoesNotAllocatePerFrame()
    {
        // A new array per damaged rect per frame is a large-object allocation at the refresh rate;
        // those trigger blocking gen2 collections that stall the frame thread (bench fairness
        // counted the stalls as missed critical frames).
        using var renderer = new CpuRenderer();
        var output = new HeadlessOutput(renderer, "main", new SizeI(1280, 720), 60);
        var damage = new Region(new RectI(0, 0, 1280, 720));
        output.Present(1, damage); // the first present may size its buffers
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 20; i++) output.Present(2 + i, damage);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.True(allocated < 64 * 1024, $"20 full-frame presents allocated {allocated} bytes (one frame's pixels are {1280 * 720 * 4})");
    }
}
