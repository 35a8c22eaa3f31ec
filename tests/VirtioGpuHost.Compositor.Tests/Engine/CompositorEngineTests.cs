using VirtioGpuHost.Compositor.Core.Geometry;
using VirtioGpuHost.Compositor.Core.Layout;
using VirtioGpuHost.Compositor.Core.Scene;
using VirtioGpuHost.Compositor.Rendering;
using VirtioGpuHost.Compositor.Rendering.Cpu;
using VirtioGpuHost.Device.Wire;
using static VirtioGpuHost.Compositor.Tests.Engine.EngineRig;

namespace VirtioGpuHost.Compositor.Tests.Engine;

public class CompositorEngineTests
{
    private const uint ClusterBlue = 0xFF1040C0, IviGreen = 0xFF20A040, AppsRed = 0xFFC02020, CameraYellow = 0xFFE0E000;

    [Fact]
    public void FirstFrame_ShowsEveryVmInItsZone_WithLabelsAndExactCriticalPixels()
    {
        using var rig = new EngineRig(HeadUnit());
        var cluster = rig.Source(196, 276, 0x001040C0);
        cluster.Fill((x, y) => (uint)(x * 0x010203 + y * 0x030201) & 0xFFFFFF); // every pixel distinct enough to catch shifts
        rig.Show("cluster", cluster);
        rig.Show("ivi", rig.Source(196, 126, IviGreen));
        rig.Show("apps", rig.Source(196, 126, AppsRed));
        var report = rig.Step();

        var main = Assert.Single(report.Outputs);
        Assert.True(main.PlanChanged);
        Assert.Equal(new RectI(0, 0, 400, 300), main.Damage.Bounds);
        for (int y = 0; y < 276; y += 5)
            for (int x = 0; x < 196; x += 3)
                Assert.Equal(0xFF000000u | cluster.Pixels[y * 196 + x], rig.Pixel(2 + x, 22 + y));
        Assert.All(rig.Pixels(IviContent), p => Assert.Equal(IviGreen, p));
        Assert.All(rig.Pixels(AppsContent), p => Assert.Equal(AppsRed, p));
        // Label bars: host colour with text, never guest pixels.
        var clusterLabel = rig.Pixels(new RectI(0, 0, 200, 20)).ToList();
        Assert.Contains(0xFF0D47A1u, clusterLabel);
        Assert.True(clusterLabel.Distinct().Count() > 2, "the label bar has no text");
        Assert.DoesNotContain(IviGreen, rig.Pixels(new RectI(200, 0, 200, 20)));
        // The safety check covered the whole cluster content and agreed.
        var check = Assert.Single(main.SafetyChecks);
        Assert.True(check.Ok, check.ToString());
        Assert.Equal(196 * 276, check.Pixels);
        Assert.Equal(0, rig.Engine.SafetyFailures);
        Assert.All(report.Health, h => Assert.Equal(h.Key == "camera" ? VmHealth.NoSignal : VmHealth.Live, h.Value));
    }

    [Fact]
    public void SmallFlush_RepaintsOnlyTheMappedRect()
    {
        using var rig = new EngineRig(HeadUnit());
        var ivi = rig.Source(196, 126, IviGreen);
        rig.Show("cluster", rig.Source(196, 276, ClusterBlue));
        long gen = rig.Show("ivi", ivi);
        rig.Show("apps", rig.Source(196, 126, AppsRed));
        rig.Step();
        var quiet = rig.Step();
        Assert.True(quiet.Outputs[0].Damage.IsEmpty, $"nothing changed but {quiet.Outputs[0].Damage} was repainted");

        ivi.Fill((x, y) => x is >= 10 and < 20 && y is >= 30 and < 40 ? 0xFFFFFFFF : IviGreen);
        rig.Flush("ivi", gen, ivi, new VirtioGpuRect(10, 30, 10, 10));
        var report = rig.Step();
        var damage = report.Outputs[0].Damage;
        Assert.False(report.Outputs[0].PlanChanged);
        Assert.True(damage.Area <= 12 * 12, $"damage {damage} for a 10x10 flush");
        Assert.True(damage.Bounds.Contains(new RectI(212, 52, 10, 10)), $"damage {damage} misses the flushed rect");
        Assert.All(rig.Pixels(new RectI(212, 52, 10, 10)), p => Assert.Equal(0xFFFFFFFFu, p));
        Assert.Equal(IviGreen, rig.Pixel(211, 52));
    }

    [Fact]
    public void VmThatStopsFlushing_ShowsItsFallbackWithinTwoPeriods_AndRecovers()
    {
        using var rig = new EngineRig(HeadUnit());
        var ivi = rig.Source(196, 126, IviGreen);
        rig.Show("cluster", rig.Source(196, 276, ClusterBlue));
        long gen = rig.Show("ivi", ivi);
        var last = rig.Step(1);
        Assert.Equal(VmHealth.Live, last.Health["ivi"]);
        // ivi's period is 100 ms; frames every 16 ms: stale no later than 200 ms after its last frame.
        var elapsed = 0.0;
        while (rig.Engine.Health["ivi"] == VmHealth.Live && elapsed < 1000)
        {
            last = rig.Step(16);
            elapsed += 16;
        }
        Assert.Equal(VmHealth.Stale, last.Health["ivi"]);
        Assert.InRange(elapsed, 100, 200);
        Assert.Contains(last.Transitions, t => t.Vm == "ivi" && t.To == VmHealth.Stale);
        // "dim": the last frame darkened, and the label says NO SIGNAL.
        uint dimmed = rig.Pixel(202, 140);
        Assert.NotEqual(IviGreen, dimmed);
        Assert.True(((dimmed >> 8) & 0xFF) < ((IviGreen >> 8) & 0xFF), $"{dimmed:x8} is not darker than {IviGreen:x8}");
        var zone = last.Outputs[0].Plan.Zones.Single(z => z.Zone == "ivi");
        Assert.Contains(LayoutSolver.NoSignalText, zone.Label);

        rig.Flush("ivi", gen, ivi, ivi.Rect);
        var back = rig.Step();
        Assert.Equal(VmHealth.Live, back.Health["ivi"]);
        Assert.Equal(IviGreen, rig.Pixel(202, 140));
    }

    [Fact]
    public void ContentMustChange_FrozenPictureFlushedAgainAndAgain_GoesStale()
    {
        using var rig = new EngineRig(HeadUnit(clusterMustChange: true));
        var cluster = rig.Source(196, 276, ClusterBlue);
        long gen = rig.Show("cluster", cluster);
        rig.Step(1);
        Assert.Equal(VmHealth.Live, rig.Engine.Health["cluster"]);
        for (int i = 0; i < 8 && rig.Engine.Health["cluster"] == VmHealth.Live; i++)
        {
            rig.Flush("cluster", gen, cluster, cluster.Rect); // same pixels
            rig.Step(16);
        }
        Assert.Equal(VmHealth.Stale, rig.Engine.Health["cluster"]);
        Assert.All(rig.Pixels(ClusterContent), p => Assert.Equal(0xFF400000u, p)); // color:#400000 fallback
        // A changed picture brings it back.
        cluster.Fill((_, _) => 0xFF2050D0);
        rig.Flush("cluster", gen, cluster, cluster.Rect);
        rig.Step(16);
        Assert.Equal(VmHealth.Live, rig.Engine.Health["cluster"]);
        Assert.Equal(0xFF2050D0u, rig.Pixel(100, 100));
    }

    [Fact]
    public void PreemptingVm_TakesTheZoneWhileLive_AndThePreemptedSurfaceReturns()
    {
        using var rig = new EngineRig(HeadUnit());
        rig.Show("cluster", rig.Source(196, 276, ClusterBlue));
        var ivi = rig.Source(196, 126, IviGreen);
        long iviGen = rig.Show("ivi", ivi);
        rig.Step();
        Assert.Equal(IviGreen, rig.Pixel(300, 80));
        var camera = rig.Source(64, 48, CameraYellow);
        long camGen = rig.Show("camera", camera);
        var report = rig.Step();
        Assert.Equal(CameraYellow, rig.Pixel(300, 80));
        Assert.Equal(new SurfaceKey("camera", 0), report.Outputs[0].Plan.Zones.Single(z => z.Zone == "ivi").ShownSurface);
        // The camera stops (40 ms period); ivi keeps flushing.
        for (int i = 0; i < 8; i++)
        {
            rig.Flush("ivi", iviGen, ivi, new VirtioGpuRect(0, 0, 1, 1));
            report = rig.Step(16);
        }
        Assert.Equal(VmHealth.Stale, report.Health["camera"]);
        Assert.Equal(IviGreen, rig.Pixel(300, 80));
        Assert.Equal(new SurfaceKey("ivi", 0), report.Outputs[0].Plan.Zones.Single(z => z.Zone == "ivi").ShownSurface);
        _ = camGen;
    }

    [Fact]
    public void SetLayout_TakesEffectWholeAtTheNextFrame()
    {
        using var rig = new EngineRig(HeadUnit());
        rig.Show("cluster", rig.Source(196, 276, ClusterBlue));
        rig.Show("ivi", rig.Source(196, 126, IviGreen));
        var before = rig.Step();
        var swapped = HeadUnit().Zones.Select(z => z.Name switch
        {
            "ivi" => z with { Rect = new RectI(200, 150, 200, 150) },
            "apps" => z with { Rect = new RectI(200, 0, 200, 150) },
            _ => z,
        }).ToList();
        var next = HeadUnit() with { Zones = swapped };
        rig.Engine.SetLayout(next);
        Assert.Same(before.Layout, rig.Engine.Layout); // nothing changes until the frame
        var after = rig.Step();
        Assert.Same(next, after.Layout);
        Assert.True(after.Outputs[0].PlanChanged);
        Assert.Equal(new RectI(0, 0, 400, 300), after.Outputs[0].Damage.Bounds);
        Assert.Equal(IviGreen, rig.Pixel(300, 250));
        Assert.NotEqual(IviGreen, rig.Pixel(300, 80));
        Assert.Equal(VmHealth.Live, after.Health["ivi"]); // the watchdog kept what it knew
    }

    [Fact]
    public void NewConnection_TakesOverTheVm_AndTheOldOneIsIgnored()
    {
        using var rig = new EngineRig(HeadUnit());
        rig.Show("cluster", rig.Source(196, 276, ClusterBlue));
        long oldGen = rig.Show("ivi", rig.Source(196, 126, IviGreen));
        rig.Step();
        var fresh = rig.Source(196, 126, 0xFF8080FF);
        long newGen = rig.Show("ivi", fresh);
        rig.Step();
        Assert.Equal(0xFF8080FFu, rig.Pixel(300, 80));
        // The old connection winds down late: its scanout change and disconnect change nothing.
        var stale = rig.Source(196, 126, AppsRed);
        rig.Store.SetScanout(new SurfaceKey("ivi", 0), oldGen, stale, stale.Rect, stale.Format);
        rig.Store.Disconnect("ivi", oldGen);
        var report = rig.Step();
        Assert.Equal(0xFF8080FFu, rig.Pixel(300, 80));
        Assert.True(rig.Store.IsConnected("ivi"));
        // The new one's disconnect does count.
        rig.Store.Disconnect("ivi", newGen);
        report = rig.Step();
        Assert.Equal(VmHealth.NoSignal, report.Health["ivi"]);
        Assert.NotEqual(0xFF8080FFu, rig.Pixel(300, 80));
    }

    [Fact]
    public void SurfaceWhoseResourceIsGone_DrawsBackground_AndNothingFails()
    {
        using var rig = new EngineRig(HeadUnit());
        rig.Show("cluster", rig.Source(196, 276, ClusterBlue));
        var ivi = new FakeSource(196, 126);
        ivi.Fill((_, _) => IviGreen);
        rig.Show("ivi", ivi);
        rig.Step();
        ivi.Dispose(); // unref'd between the scene and the draw
        var report = rig.Step();
        Assert.Equal(0xFF000000u, rig.Pixel(300, 80));
        Assert.Contains(report.Outputs[0].Damage.Rects, r => r.Intersects(IviContent));
    }

    [Fact]
    public void FrameDraws_ReleaseEverySurfaceItAcquired()
    {
        using var rig = new EngineRig(HeadUnit());
        var cluster = rig.Source(196, 276, ClusterBlue);
        long gen = rig.Show("cluster", cluster);
        rig.Step();
        for (int i = 0; i < 5; i++)
        {
            rig.Flush("cluster", gen, cluster, new VirtioGpuRect(0, 0, 4, 4));
            rig.Step();
        }
        // Every acquisition was released: the block is held by the source alone again.
        var s = cluster.AcquireCurrent()!;
        Assert.False(s.Memory.IsExclusive);
        s.Memory.Release();
        Assert.True(s.Memory.IsExclusive);
    }

    [Fact]
    public void SafetyCheck_CorruptedCriticalPixel_IsReportedCounted_AndRepairedNextFrame()
    {
        var renderer = new CorruptingRenderer(new CpuRenderer(new CpuRendererOptions { Threads = 2 }));
        using var rig = new EngineRig(HeadUnit(), renderer: renderer);
        var cluster = rig.Source(196, 276, ClusterBlue);
        long gen = rig.Show("cluster", cluster);
        rig.Step();
        Assert.Equal(0, rig.Engine.SafetyFailures);

        renderer.CorruptNext = (50, 60); // a bit flip inside the cluster's content
        rig.Flush("cluster", gen, cluster, new VirtioGpuRect(40, 30, 20, 20));
        var bad = rig.Step();
        var check = Assert.Single(bad.Outputs[0].SafetyChecks);
        Assert.False(check.Ok);
        Assert.Equal("cluster", check.Zone);
        Assert.Equal(1, rig.Engine.SafetyFailures);

        var repaired = rig.Step();
        Assert.Equal(new RectI(0, 0, 400, 300), repaired.Outputs[0].Damage.Bounds);
        Assert.All(repaired.Outputs[0].SafetyChecks, c => Assert.True(c.Ok));
        Assert.Equal(ClusterBlue, rig.Pixel(50, 60));
        Assert.Equal(1, rig.Engine.SafetyFailures);
    }

    [Fact]
    public void SafetyCheck_FullCheckRunsPeriodically_EvenWithoutDamage()
    {
        using var rig = new EngineRig(HeadUnit(), new CompositorOptions { FullSafetyCheckInterval = TimeSpan.FromMilliseconds(100) });
        var cluster = rig.Source(196, 276, ClusterBlue);
        long gen = rig.Show("cluster", cluster);
        rig.Step();
        int full = 0, partial = 0;
        for (int i = 0; i < 20; i++)
        {
            rig.Flush("cluster", gen, cluster, new VirtioGpuRect(0, 0, 2, 2)); // alive, tiny damage
            var checks = rig.Step(16).Outputs[0].SafetyChecks;
            full += checks.Count(c => c.Full && c.Ok && c.Pixels == 196 * 276);
            partial += checks.Count(c => !c.Full && c.Ok && c.Pixels < 16);
        }
        Assert.InRange(full, 2, 4); // 320 ms of frames, one full check per 100 ms
        Assert.Equal(20 - full, partial); // the other frames check only what they repainted
    }

    /// <summary>A renderer that flips one output pixel after a pass (a fault the check must catch).</summary>
    private sealed class CorruptingRenderer(CpuRenderer inner) : IRenderer
    {
        public (int X, int Y)? CorruptNext { get; set; }
        public RendererCapabilities Capabilities => inner.Capabilities;
        public IRenderTarget CreateTarget(SizeI size) => inner.CreateTarget(size);
        public ITexture ImportSurface(in SurfaceView view) => inner.ImportSurface(view);
        public void UpdateSurface(ITexture texture, in SurfaceView view, Region damage) => inner.UpdateSurface(texture, view, damage);
        public ITexture CreateTexture(SizeI size, ReadOnlySpan<uint> premultipliedBgra) => inner.CreateTexture(size, premultipliedBgra);
        public IRenderPass BeginPass(IRenderTarget target, Region damage) => new Pass(this, (CpuRenderTarget)target, inner.BeginPass(target, damage));
        public void Dispose() => inner.Dispose();

        private sealed class Pass(CorruptingRenderer owner, CpuRenderTarget target, IRenderPass inner) : IRenderPass
        {
            public void FillRect(RectI destination, ColorBgra color, Region clip) => inner.FillRect(destination, color, clip);
            public void DrawTexture(ITexture texture, RectI source, RectI destination, Region clip, byte dim = 255) => inner.DrawTexture(texture, source, destination, clip, dim);
            public unsafe void Submit()
            {
                inner.Submit();
                if (owner.CorruptNext is not (int x, int y)) return;
                owner.CorruptNext = null;
                ((uint*)(target.Address + y * target.Stride))[x] ^= 0x00000100;
            }
        }
    }
}
