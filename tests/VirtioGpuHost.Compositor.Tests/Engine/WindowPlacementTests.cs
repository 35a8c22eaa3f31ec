using VirtioGpuHost.Compositor.Core.Layout;
using VirtioGpuHost.Compositor.Core.Scene;
using VirtioGpuHost.Device.Wire;
using static VirtioGpuHost.Compositor.Tests.Engine.EngineRig;

namespace VirtioGpuHost.Compositor.Tests.Engine;

/// <summary>Wayland windows as scene surfaces: placed by app_id/title rules, under their VM's identity and watchdog.</summary>
public class WindowPlacementTests
{
    private const uint ClusterBlue = 0xFF1040C0, IviGreen = 0xFF20A040, FlowerPink = 0xFFE040A0, ShmCyan = 0xFF20C0C0;
    private const uint AppsFallback = 0xFF202020;

    /// <summary>The head unit with the apps zone showing the apps VM's window matching <paramref name="appId"/> instead of its scanout.</summary>
    private static LayoutConfig WindowLayout(string appId = "weston-*", string? title = null)
    {
        var l = HeadUnit();
        return l with { Placements = l.Placements.Select(p => p.Zone == "apps" ? p with { Match = new WindowMatch(appId, title) } : p).ToList() };
    }

    private static void Map(EngineRig rig, string vm, long id, FakeSource source, string? appId, string? title = null, bool responsive = true) =>
        rig.Store.WindowUpdated(new SurfaceKey(vm, 0, id), source, source.Rect, source.Format, source.Rect, appId, title, responsive);

    private static EngineRig Rig(LayoutConfig layout)
    {
        var rig = new EngineRig(layout);
        rig.Show("cluster", rig.Source(196, 276, ClusterBlue));
        rig.Show("ivi", rig.Source(196, 126, IviGreen));
        return rig;
    }

    [Fact]
    public void MatchingWindow_IsShownInTheZone_FallbackBeforeAndAfter()
    {
        using var rig = Rig(WindowLayout());
        rig.Step();
        Assert.All(rig.Pixels(AppsContent), p => Assert.Equal(AppsFallback, p)); // nothing mapped yet: the VM's fallback colour

        Map(rig, "apps", 1, rig.Source(196, 126, FlowerPink), "weston-flower");
        var report = rig.Step();
        Assert.Equal(VmHealth.Live, report.Health["apps"]);
        Assert.All(rig.Pixels(AppsContent), p => Assert.Equal(FlowerPink, p));
        Assert.All(rig.Pixels(ClusterContent), p => Assert.Equal(ClusterBlue, p));

        rig.Store.WindowGone(new SurfaceKey("apps", 0, 1));
        rig.Step();
        Assert.All(rig.Pixels(AppsContent), p => Assert.Equal(AppsFallback, p));
        Assert.Null(rig.Store.Get(new SurfaceKey("apps", 0, 1))); // forgotten once reported: no growth with window churn
    }

    [Fact]
    public void NewestMatchingWindowWins_AndTheOlderReturnsWhenItGoes()
    {
        using var rig = Rig(WindowLayout());
        Map(rig, "apps", 1, rig.Source(196, 126, FlowerPink), "weston-flower");
        Map(rig, "apps", 2, rig.Source(196, 126, ShmCyan), "weston-simple-shm");
        Map(rig, "apps", 3, rig.Source(196, 126, 0xFF00FF00), "foot"); // newer but does not match
        rig.Step();
        Assert.All(rig.Pixels(AppsContent), p => Assert.Equal(ShmCyan, p));
        rig.Store.WindowGone(new SurfaceKey("apps", 0, 2));
        rig.Step();
        Assert.All(rig.Pixels(AppsContent), p => Assert.Equal(FlowerPink, p));
    }

    [Fact]
    public void TitleRule_AndGlobs()
    {
        using var rig = Rig(WindowLayout(appId: "*", title: "Term?nal*"));
        Map(rig, "apps", 5, rig.Source(196, 126, FlowerPink), "weston-terminal", "Wayland Terminal");
        rig.Step();
        Assert.All(rig.Pixels(AppsContent), p => Assert.Equal(AppsFallback, p));
        Map(rig, "apps", 5, rig.Source(196, 126, FlowerPink), "weston-terminal", "Terminal 1");
        rig.Step();
        Assert.All(rig.Pixels(AppsContent), p => Assert.Equal(FlowerPink, p));
    }

    [Fact]
    public void AnotherVmsWindow_NeverShowsInThisVmsPlacement()
    {
        using var rig = Rig(WindowLayout());
        // ivi (another VM) maps a window with the very app_id the apps placement asks for.
        Map(rig, "ivi", 7, rig.Source(196, 126, FlowerPink), "weston-flower");
        rig.Step();
        Assert.DoesNotContain(FlowerPink, rig.Pixels(AppsContent));
        Assert.All(rig.Pixels(AppsContent), p => Assert.Equal(AppsFallback, p));
    }

    [Fact]
    public void IdleResponsiveWindow_StaysLive_UnresponsiveOneGoesStale()
    {
        using var rig = Rig(WindowLayout());
        var src = rig.Source(196, 126, FlowerPink);
        Map(rig, "apps", 1, src, "weston-terminal");
        // 20 frames (320 ms, apps' period is 100 ms) without a single commit: an idle app.
        for (int i = 0; i < 20; i++) Assert.Equal(VmHealth.Live, rig.Step().Health["apps"]);
        Assert.All(rig.Pixels(AppsContent), p => Assert.Equal(FlowerPink, p));

        // The client stops answering pings: no proof of life, so the watchdog's fallback shows.
        rig.Store.WindowUpdated(new SurfaceKey("apps", 0, 1), src, src.Rect, src.Format, null, "weston-terminal", null, responsive: false);
        VmHealth h = VmHealth.Live;
        for (int i = 0; i < 20 && h == VmHealth.Live; i++) h = rig.Step().Health["apps"];
        Assert.Equal(VmHealth.Stale, h);
        Assert.All(rig.Pixels(AppsContent), p => Assert.Equal(AppsFallback, p));
    }

    [Fact]
    public void WindowCommit_RepaintsOnlyItsDamage()
    {
        using var rig = Rig(WindowLayout());
        var src = rig.Source(196, 126, FlowerPink);
        Map(rig, "apps", 1, src, "weston-flower");
        rig.Step();
        rig.Step();
        src.Fill((x, y) => x < 10 && y < 10 ? 0xFFFFFFFF : FlowerPink);
        rig.Store.WindowUpdated(new SurfaceKey("apps", 0, 1), src, src.Rect, src.Format, new VirtioGpuRect(0, 0, 10, 10), "weston-flower", null, true);
        var report = rig.Step();
        var damage = report.Outputs[0].Damage;
        Assert.False(report.Outputs[0].PlanChanged);
        Assert.True(damage.Area <= 12 * 12, $"damage {damage} for a 10x10 commit"); // mapping may round outwards by a pixel
        Assert.True(damage.Bounds.Contains(new Core.Geometry.RectI(AppsContent.X, AppsContent.Y, 10, 10)), $"damage {damage} misses the committed rect");
        Assert.Equal(0xFFFFFFFFu, rig.Pixel(AppsContent.X + 5, AppsContent.Y + 5));
    }

    [Fact]
    public void DeviceReconnect_DoesNotDropWindows()
    {
        using var rig = Rig(WindowLayout());
        Map(rig, "apps", 1, rig.Source(196, 126, FlowerPink), "weston-flower");
        rig.Store.Connect("apps"); // the VM's vhost-user connection (re)starts
        rig.Step();
        Assert.All(rig.Pixels(AppsContent), p => Assert.Equal(FlowerPink, p));
    }

    [Theory]
    [InlineData("weston-*", "weston-flower", true)]
    [InlineData("weston-*", "westo", false)]
    [InlineData("*", "", true)]
    [InlineData("a?c", "abc", true)]
    [InlineData("a?c", "ac", false)]
    [InlineData("*x*y*", "aaxbbyc", true)]
    [InlineData("*x*y", "aaxbbyc", false)]
    [InlineData("**", "anything", true)]
    public void Glob(string pattern, string text, bool expected) => Assert.Equal(expected, WindowMatch.Glob(pattern, text));
}
