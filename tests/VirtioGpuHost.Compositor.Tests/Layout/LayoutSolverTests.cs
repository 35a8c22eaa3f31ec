using VirtioGpuHost.Compositor.Core.Geometry;
using VirtioGpuHost.Compositor.Core.Layout;
using VirtioGpuHost.Compositor.Core.Scene;

namespace VirtioGpuHost.Compositor.Tests.Layout;

/// <summary>The solver on hand-made scenes: placement choice, fallbacks, clipping, item order.</summary>
public class LayoutSolverTests
{
    private static readonly ColorBgra Red = ColorBgra.Opaque(200, 0, 0), Green = ColorBgra.Opaque(0, 160, 0), Blue = ColorBgra.Opaque(0, 0, 200);

    private static VmConfig Vm(string name, SafetyClass cls, FallbackConfig? fallback = null, ColorBgra? color = null) =>
        new(name, $"/tmp/vgh/{name}.sock", name.ToUpperInvariant(), color ?? Blue, cls, TimeSpan.FromMilliseconds(100), false,
            fallback ?? new FallbackConfig(FallbackKind.Dim));

    private static SceneState Scene(params (string Vm, VmHealth Health, int Scanout, int W, int H)[] vms)
    {
        var health = new Dictionary<string, VmHealth>();
        var surfaces = new Dictionary<SurfaceKey, SurfaceInfo>();
        foreach (var (vm, h, scanout, w, hh) in vms)
        {
            health[vm] = h;
            surfaces[new SurfaceKey(vm, scanout)] = new SurfaceInfo(w, hh);
        }
        return new SceneState(health, surfaces);
    }

    /// <summary>One 200x100 output, zone "a" on the left (critical), zone "b" on the right (normal).</summary>
    private static LayoutConfig TwoZones(FallbackConfig? aFallback = null, IReadOnlyList<VmConfig>? extraVms = null, IReadOnlyList<PlacementConfig>? extraPlacements = null) =>
        new(
            [new OutputConfig("out", 200, 100, 60, ColorBgra.Opaque(0, 0, 0))],
            [new ZoneConfig("a", "out", new RectI(0, 0, 100, 100), 0, SafetyClass.Critical), new ZoneConfig("b", "out", new RectI(100, 0, 100, 100), 0, SafetyClass.Normal)],
            [Vm("a", SafetyClass.Critical, aFallback, Red), Vm("b", SafetyClass.Normal, null, Green), .. extraVms ?? []],
            [new PlacementConfig("a", 0, "a", ScaleMode.Fit, 0, false), new PlacementConfig("b", 0, "b", ScaleMode.Fit, 0, false), .. extraPlacements ?? []],
            LabelHeight: 10,
            BorderWidth: 2);

    private static ZoneView View(FramePlan plan, string zone) => plan.Zones.Single(z => z.Zone == zone);

    private static int IndexOf(FramePlan plan, PlanItem item) => plan.Items.ToList().IndexOf(item);

    [Fact]
    public void Solve_AllLive_BackgroundThenSurfacesThenChrome()
    {
        var layout = TwoZones();
        var plan = Assert.Single(LayoutSolver.Solve(layout, Scene(("a", VmHealth.Live, 0, 96, 88), ("b", VmHealth.Live, 0, 96, 88))));

        var background = Assert.IsType<FillItem>(plan.Items[0]);
        Assert.Equal(new RectI(0, 0, 200, 100), background.Destination);
        Assert.Equal(new RectI(0, 0, 200, 100), background.Clip.Bounds);
        Assert.Null(background.Zone);

        var surfaces = plan.Items.OfType<SurfaceItem>().ToList();
        Assert.Equal([new SurfaceKey("a", 0), new SurfaceKey("b", 0)], surfaces.Select(s => s.Surface));
        // Content of a = (2, 12, 96, 86); a 96x88 surface fits by height: 93x86 (floor), centred.
        Assert.Equal(new RectI(2, 12, 96, 86), layout.ContentRect(layout.Zones[0]));
        Assert.Equal(new RectI(3, 12, 93, 86), surfaces[0].Destination);
        Assert.Equal(SafetyClass.Critical, surfaces[0].Class);
        Assert.Equal(255, surfaces[0].Dim);

        Assert.True(plan.ChromeStart > IndexOf(plan, surfaces[^1]));
        Assert.All(plan.Items.Skip(plan.ChromeStart), i => Assert.True(i is LabelItem or FillItem));
        var labels = plan.Items.OfType<LabelItem>().ToList();
        Assert.Equal(["A", "B"], labels.Select(l => l.Text));
        Assert.Equal(new RectI(0, 0, 100, 10), labels[0].Destination);
        Assert.Equal(Red, labels[0].Background);
        Assert.Equal(ColorBgra.Opaque(255, 255, 255), labels[0].Foreground);
        Assert.All(plan.Zones, z => Assert.False(z.ShowingFallback));
        Assert.Equal("A", View(plan, "a").Label);
    }

    [Fact]
    public void Solve_Letterbox_FilledWithOutputBackgroundInsideContent()
    {
        var layout = TwoZones();
        var plan = LayoutSolver.Solve(layout, Scene(("a", VmHealth.Live, 0, 96, 43), ("b", VmHealth.Live, 0, 96, 86)))[0];

        // a: 96x43 in 96x86 -> 96x43 at y 12 + 21; the rows above and below are background.
        var letterbox = plan.Items.OfType<FillItem>().Single(f => f.Zone == "a" && IndexOf(plan, f) < plan.ChromeStart);
        Assert.Equal(ColorBgra.Opaque(0, 0, 0), letterbox.Color);
        Assert.Equal(96 * 86 - 96 * 43, letterbox.Clip.Area);
        Assert.False(letterbox.Clip.Intersects(new RectI(2, 33, 96, 43)));
        // b fills its content exactly: no letterbox item.
        Assert.DoesNotContain(plan.Items.Take(plan.ChromeStart), i => i.Zone == "b" && i is FillItem);
    }

    [Fact]
    public void Solve_BorderRing_ExcludesContentAndLabelBar()
    {
        var layout = TwoZones();
        var plan = LayoutSolver.Solve(layout, Scene(("a", VmHealth.Live, 0, 96, 86), ("b", VmHealth.Live, 0, 96, 86)))[0];

        var border = plan.Items.Skip(plan.ChromeStart).OfType<FillItem>().First(f => f.Zone == "a");
        Assert.Equal(Red, border.Color);
        // 100x100 zone minus the 100x10 label minus the 96x86 content.
        Assert.Equal(100 * 100 - 100 * 10 - 96 * 86, border.Clip.Area);
        Assert.False(border.Clip.Intersects(new RectI(2, 12, 96, 86)));
        Assert.False(border.Clip.Intersects(new RectI(0, 0, 100, 10)));
    }

    [Fact]
    public void Solve_StaleDimFallback_DimmedLastFrameAndNoSignalLabels()
    {
        var plan = LayoutSolver.Solve(TwoZones(), Scene(("a", VmHealth.Live, 0, 96, 86), ("b", VmHealth.Stale, 0, 96, 86)))[0];

        var b = plan.Items.OfType<SurfaceItem>().Single(s => s.Zone == "b");
        Assert.Equal(LayoutSolver.NoSignalDim, b.Dim);
        Assert.True(b.Dim < 255);
        var view = View(plan, "b");
        Assert.True(view.ShowingFallback);
        Assert.Equal(VmHealth.Stale, view.Health);
        Assert.Equal("B — NO SIGNAL", view.Label);
        var labels = plan.Items.OfType<LabelItem>().Where(l => l.Zone == "b").ToList();
        Assert.Equal(["B — NO SIGNAL", "NO SIGNAL"], labels.Select(l => l.Text));
        // The NO SIGNAL label sits in the content area, on top (chrome).
        Assert.True(new RectI(102, 12, 96, 86).Contains(labels[1].Destination));
        Assert.True(IndexOf(plan, labels[1]) >= plan.ChromeStart);
    }

    [Fact]
    public void Solve_NoSignalNeverFramed_PlaceholderFillInsteadOfDimmedFrame()
    {
        var plan = LayoutSolver.Solve(TwoZones(), Scene(("a", VmHealth.Live, 0, 96, 86)))[0];

        Assert.DoesNotContain(plan.Items, i => i is SurfaceItem s && s.Zone == "b");
        var fill = plan.Items.Take(plan.ChromeStart).OfType<FillItem>().Single(f => f.Zone == "b");
        Assert.Equal(LayoutSolver.PlaceholderColor, fill.Color);
        Assert.Equal(new RectI(102, 12, 96, 86), fill.Clip.Bounds);
        Assert.Equal(VmHealth.NoSignal, View(plan, "b").Health);
        Assert.Contains(plan.Items, i => i is LabelItem { Text: LayoutSolver.NoSignalText } l && l.Zone == "b");
    }

    [Fact]
    public void Solve_LiveVmScanoutDisabled_ShowsFallback()
    {
        var plan = LayoutSolver.Solve(TwoZones(), Scene(("a", VmHealth.Live, 0, 96, 86), ("b", VmHealth.Live, 0, 0, 0)))[0];

        var view = View(plan, "b");
        Assert.True(view.ShowingFallback);
        Assert.Null(view.ShownSurface);
        Assert.Contains(plan.Items, i => i is FillItem f && f.Zone == "b" && f.Color == LayoutSolver.PlaceholderColor);
    }

    [Fact]
    public void Solve_ColorFallback_FillsContentWithThatColour()
    {
        var amber = ColorBgra.Opaque(255, 191, 0);
        var plan = LayoutSolver.Solve(TwoZones(new FallbackConfig(FallbackKind.Color, amber)), Scene(("a", VmHealth.Stale, 0, 96, 86), ("b", VmHealth.Live, 0, 96, 86)))[0];

        Assert.DoesNotContain(plan.Items, i => i is SurfaceItem s && s.Zone == "a");
        var fill = plan.Items.Take(plan.ChromeStart).OfType<FillItem>().Single(f => f.Zone == "a");
        Assert.Equal(amber, fill.Color);
        Assert.Equal(new RectI(2, 12, 96, 86), fill.Clip.Bounds);
        Assert.Equal(96 * 86, fill.Clip.Area);
        Assert.Equal("A — NO SIGNAL", View(plan, "a").Label);
    }

    [Fact]
    public void Solve_OtherVmFallbackLive_ShowsThatVmsSurface()
    {
        var spare = Vm("spare", SafetyClass.Critical);
        var layout = TwoZones(new FallbackConfig(FallbackKind.OtherVm, default, "spare", 1), [spare]);
        var plan = LayoutSolver.Solve(layout, Scene(("a", VmHealth.Stale, 0, 96, 86), ("b", VmHealth.Live, 0, 96, 86), ("spare", VmHealth.Live, 1, 48, 43)))[0];

        var s = plan.Items.OfType<SurfaceItem>().Single(i => i.Zone == "a");
        Assert.Equal(new SurfaceKey("spare", 1), s.Surface);
        Assert.Equal(SafetyClass.Critical, s.Class);
        Assert.Equal(255, s.Dim);
        var view = View(plan, "a");
        Assert.Equal(new SurfaceKey("spare", 1), view.ShownSurface);
        Assert.True(view.ShowingFallback);
        Assert.Equal("A — NO SIGNAL, SHOWING SPARE", view.Label);
    }

    [Fact]
    public void Solve_OtherVmFallbackNotLive_NeutralPlaceholder()
    {
        var layout = TwoZones(new FallbackConfig(FallbackKind.OtherVm, default, "spare"), [Vm("spare", SafetyClass.Critical)]);
        var plan = LayoutSolver.Solve(layout, Scene(("a", VmHealth.Stale, 0, 96, 86), ("spare", VmHealth.Stale, 0, 96, 86)))[0];

        Assert.DoesNotContain(plan.Items, i => i is SurfaceItem s && s.Zone == "a");
        Assert.Contains(plan.Items, i => i is FillItem f && f.Zone == "a" && f.Color == LayoutSolver.PlaceholderColor);
    }

    [Fact]
    public void Solve_PreemptingVmLive_TakesTheZoneAndReturnsWhenStaleOrDisabled()
    {
        var camera = Vm("camera", SafetyClass.Normal, color: ColorBgra.Opaque(230, 81, 0));
        var layout = TwoZones(extraVms: [camera], extraPlacements: [new PlacementConfig("camera", 0, "b", ScaleMode.Fill, 100, true)]);

        var live = LayoutSolver.Solve(layout, Scene(("a", VmHealth.Live, 0, 96, 86), ("b", VmHealth.Live, 0, 96, 86), ("camera", VmHealth.Live, 0, 640, 480)))[0];
        var stale = LayoutSolver.Solve(layout, Scene(("a", VmHealth.Live, 0, 96, 86), ("b", VmHealth.Live, 0, 96, 86), ("camera", VmHealth.Stale, 0, 640, 480)))[0];
        var disabled = LayoutSolver.Solve(layout, Scene(("a", VmHealth.Live, 0, 96, 86), ("b", VmHealth.Live, 0, 96, 86), ("camera", VmHealth.Live, 0, 0, 0)))[0];

        Assert.Equal("camera", View(live, "b").Placement!.Vm);
        Assert.Equal(new SurfaceKey("camera", 0), View(live, "b").ShownSurface);
        Assert.Equal("CAMERA", View(live, "b").Label);
        Assert.Contains(live.Items, i => i is SurfaceItem { Surface.Vm: "camera" } s && s.Zone == "b" && s.Destination == new RectI(102, 12, 96, 86));
        Assert.DoesNotContain(live.Items, i => i is SurfaceItem { Surface.Vm: "b" });
        foreach (var back in new[] { stale, disabled })
        {
            Assert.Equal("b", View(back, "b").Placement!.Vm);
            Assert.Equal(new SurfaceKey("b", 0), View(back, "b").ShownSurface);
            Assert.DoesNotContain(back.Items, i => i is SurfaceItem { Surface.Vm: "camera" });
        }
    }

    [Fact]
    public void ActivePlacement_EqualPriorities_PreemptingThenFirstListedWins()
    {
        var layout = TwoZones(extraVms: [Vm("c1", SafetyClass.Normal), Vm("c2", SafetyClass.Normal)],
            extraPlacements: [new PlacementConfig("c1", 0, "b", ScaleMode.Fit, 0, true), new PlacementConfig("c2", 0, "b", ScaleMode.Fit, 0, true)]);
        var zone = layout.Zone("b")!;

        var both = LayoutSolver.ActivePlacement(layout, zone, Scene(("c1", VmHealth.Live, 0, 8, 8), ("c2", VmHealth.Live, 0, 8, 8)));
        var second = LayoutSolver.ActivePlacement(layout, zone, Scene(("c1", VmHealth.Stale, 0, 8, 8), ("c2", VmHealth.Live, 0, 8, 8)));
        var none = LayoutSolver.ActivePlacement(layout, zone, SceneState.Empty);

        Assert.Equal("c1", both!.Vm);
        Assert.Equal("c2", second!.Vm);
        Assert.Equal("b", none!.Vm);
    }

    [Fact]
    public void Solve_InactiveOverlayZone_DrawsNothingAndProtectsNothing()
    {
        // A critical overlay over zone b that only shows while "warn" is live.
        var layout = TwoZones(extraVms: [Vm("warn", SafetyClass.Critical)], extraPlacements: [new PlacementConfig("warn", 0, "overlay", ScaleMode.Fit, 1, true)]) with { };
        layout = layout with { Zones = [.. layout.Zones, new ZoneConfig("overlay", "out", new RectI(120, 30, 60, 40), 5, SafetyClass.Critical)] };
        var scene = Scene(("a", VmHealth.Live, 0, 96, 86), ("b", VmHealth.Live, 0, 96, 86));

        var plan = LayoutSolver.Solve(layout, scene)[0];

        var overlay = View(plan, "overlay");
        Assert.False(overlay.IsShown);
        Assert.Null(overlay.Label);
        Assert.DoesNotContain(plan.Items, i => i.Zone == "overlay");
        var b = plan.Items.OfType<SurfaceItem>().Single(s => s.Zone == "b");
        Assert.Equal(96 * 86, b.Clip.Area); // not clipped by the hidden critical overlay

        var shown = LayoutSolver.Solve(layout, scene with { Health = new Dictionary<string, VmHealth>(scene.Health) { ["warn"] = VmHealth.Live }, Surfaces = new Dictionary<SurfaceKey, SurfaceInfo>(scene.Surfaces) { [new("warn", 0)] = new(10, 10) } })[0];
        Assert.True(View(shown, "overlay").IsShown);
        var b2 = shown.Items.OfType<SurfaceItem>().Single(s => s.Zone == "b");
        Assert.False(b2.Clip.Intersects(new RectI(120, 30, 60, 40)));
    }

    [Fact]
    public void Solve_LowerClassZoneAboveCritical_ClippedOutOfCriticalWhateverTheZ()
    {
        // A 200x150 output: an untrusted zone at z 10 overlaps zones a (critical) and b (normal),
        // which end at y 100, and sticks out below them.
        var layout = TwoZones(extraVms: [Vm("app", SafetyClass.Untrusted)], extraPlacements: [new PlacementConfig("app", 0, "app", ScaleMode.Fill, 0, false)]);
        layout = layout with
        {
            Outputs = [new OutputConfig("out", 200, 150, 60, ColorBgra.Opaque(0, 0, 0))],
            Zones = [.. layout.Zones, new ZoneConfig("app", "out", new RectI(80, 40, 60, 100), 10, SafetyClass.Untrusted)],
        };

        var plan = LayoutSolver.Solve(layout, Scene(("a", VmHealth.Live, 0, 96, 86), ("b", VmHealth.Live, 0, 96, 86), ("app", VmHealth.Live, 0, 56, 86)))[0];

        var app = plan.Items.OfType<SurfaceItem>().Single(s => s.Zone == "app");
        Assert.Equal(new RectI(82, 52, 56, 86), app.Destination);
        Assert.Equal(new RectI(82, 100, 56, 38), app.Clip.Bounds); // only the part below a and b
        Assert.Equal(56 * 38, app.Clip.Area);
        // Nothing of the app zone (content, border, label) lands in a or b.
        Assert.All(plan.Items.Where(i => i.Zone == "app"), i => Assert.False(i.Clip.Intersects(new RectI(0, 0, 200, 100))));
        Assert.DoesNotContain(plan.Items, i => i is LabelItem && i.Zone == "app"); // its label bar lies wholly inside b
        // Zone order is z ascending: app (z 10) last.
        Assert.Equal(["a", "b", "app"], plan.Zones.Select(z => z.Zone));
    }

    [Fact]
    public void Solve_OverlappingSameClassZones_LowerLabelStaysOnTop()
    {
        // Zone "low" (z 0) has its label bar at y 40..50; zone "high" (z 5, same class) lies above it
        // with its content over that bar. Labels are drawn after all guest content, so low's label
        // covers high's guest pixels there: a label may lie inside another VM's content rect, but
        // no guest pixel ever covers a label.
        var layout = new LayoutConfig(
            [new OutputConfig("out", 200, 100, 60, ColorBgra.Opaque(0, 0, 0))],
            [new ZoneConfig("low", "out", new RectI(0, 40, 200, 60), 0, SafetyClass.Normal), new ZoneConfig("high", "out", new RectI(50, 0, 100, 80), 5, SafetyClass.Normal)],
            [Vm("low", SafetyClass.Normal), Vm("high", SafetyClass.Normal)],
            [new PlacementConfig("low", 0, "low", ScaleMode.Fill, 0, false), new PlacementConfig("high", 0, "high", ScaleMode.Fill, 0, false)],
            LabelHeight: 10,
            BorderWidth: 2);

        var plan = LayoutSolver.Solve(layout, Scene(("low", VmHealth.Live, 0, 196, 48), ("high", VmHealth.Live, 0, 96, 66)))[0];

        var high = plan.Items.OfType<SurfaceItem>().Single(s => s.Zone == "high");
        var lowLabel = plan.Items.OfType<LabelItem>().Single(l => l.Zone == "low");
        Assert.Equal(new RectI(52, 12, 96, 66), high.Destination);
        Assert.Equal(new RectI(0, 40, 200, 10), lowLabel.Destination);
        // Both may draw at (100, 45); the label comes later, so it is what shows.
        Assert.True(high.Clip.Contains(100, 45));
        Assert.True(lowLabel.Clip.Contains(100, 45));
        Assert.True(IndexOf(plan, lowLabel) > IndexOf(plan, high));
        Assert.True(IndexOf(plan, lowLabel) >= plan.ChromeStart);
    }

    [Fact]
    public void Solve_HeadUnitExample_OnePlanWithEveryZone()
    {
        var layout = LayoutTestKit.HeadUnit();
        var scene = Scene(("cluster", VmHealth.Live, 0, 1280, 1080), ("ivi", VmHealth.Live, 0, 1920, 1080), ("apps", VmHealth.Stale, 0, 1280, 720));

        var plan = Assert.Single(LayoutSolver.Solve(layout, scene));

        Assert.Equal(new[] { "apps", "cluster", "ivi" }, plan.Zones.Select(z => z.Zone).Order());
        Assert.Equal("APPS (UNTRUSTED) — NO SIGNAL", View(plan, "apps").Label);
        Assert.Equal("INFOTAINMENT", View(plan, "ivi").Label);
        Assert.Contains(plan.Items, i => i is FillItem f && f.Zone == "apps" && f.Color == ColorBgra.Opaque(0x20, 0x20, 0x20));
    }
}
