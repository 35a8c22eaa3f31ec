using CsCheck;
using VirtioGpuHost.Compositor.Core.Geometry;
using VirtioGpuHost.Compositor.Core.Layout;
using VirtioGpuHost.Compositor.Core.Scene;

namespace VirtioGpuHost.Compositor.Tests.Layout;

/// <summary>
/// The safety rules as properties of <see cref="LayoutSolver.Solve"/> over random layouts and scenes
/// (<see cref="LayoutGen"/>): checked geometrically on the clip regions, and on a rasterised
/// "who owns this pixel" map of the plan.
/// </summary>
public class LayoutSolverPropertyTests
{
    private const int Iterations = 1500;

    /// <summary>The class an item draws with: its own for a surface, its zone's for host items; null for the background.</summary>
    private static SafetyClass? ClassOf(PlanItem item, LayoutConfig layout) => item switch
    {
        SurfaceItem s => s.Class,
        _ when item.Zone is { } z => layout.Zone(z)!.Class,
        _ => null,
    };

    private static RectI DestinationOf(PlanItem item) => item switch
    {
        SurfaceItem s => s.Destination,
        FillItem f => f.Destination,
        LabelItem l => l.Destination,
        _ => throw new InvalidOperationException(),
    };

    /// <summary>Index of the item that ends up on each pixel of the output (-1: none), drawing in order.</summary>
    private static int[] Owners(FramePlan plan)
    {
        int w = plan.Output.Width, h = plan.Output.Height;
        var owner = new int[w * h];
        Array.Fill(owner, -1);
        for (int i = 0; i < plan.Items.Count; i++)
        {
            var dst = DestinationOf(plan.Items[i]);
            foreach (var r in plan.Items[i].Clip.Rects)
            {
                var a = r.Intersect(dst).Intersect(new RectI(0, 0, w, h));
                for (int y = a.Y; y < a.Bottom; y++)
                    for (int x = a.X; x < a.Right; x++)
                        owner[y * w + x] = i;
            }
        }
        return owner;
    }

    [Fact]
    public void Solve_RandomLayouts_NoShownZoneCoveredByALowerClassSurface()
    {
        // (a) For every surface item and every shown zone of a higher class: clip ∩ destination ∩ zone = ∅.
        // Also for the host items (letterbox, fills, borders, labels) of a lower-class zone.
        LayoutGen.Any.Sample(c =>
        {
            foreach (var plan in LayoutSolver.Solve(c.Layout, c.Scene))
            {
                foreach (var item in plan.Items)
                {
                    var cls = ClassOf(item, c.Layout);
                    if (cls is null) continue;
                    var drawn = LayoutTestKit.Intersect(item.Clip, DestinationOf(item));
                    foreach (var zone in plan.Zones.Where(z => z.IsShown && z.Class > cls))
                        Assert.False(drawn.Intersects(zone.Rect), $"{item} ({cls}) draws in {zone.Zone} ({zone.Class})");
                }
            }
        }, iter: Iterations);
    }

    [Fact]
    public void Solve_RandomLayouts_EveryPixelOfAShownZoneIsOwnedByItsClassOrHigher()
    {
        // (a), rasterised: the final owner of every pixel of a shown zone of class K is an item of
        // class >= K, and never the bare background (each shown zone is opaque).
        LayoutGen.Any.Sample(c =>
        {
            foreach (var plan in LayoutSolver.Solve(c.Layout, c.Scene))
            {
                var owner = Owners(plan);
                var classes = plan.Items.Select(i => ClassOf(i, c.Layout)).ToArray();
                int w = plan.Output.Width;
                foreach (var zone in plan.Zones.Where(z => z.IsShown))
                {
                    for (int y = zone.Rect.Y; y < zone.Rect.Bottom; y++)
                    {
                        for (int x = zone.Rect.X; x < zone.Rect.Right; x++)
                        {
                            int i = owner[y * w + x];
                            if (i > 0 && classes[i] >= zone.Class) continue;
                            Assert.Fail(i <= 0 ? $"pixel {x},{y} of zone {zone.Zone} shows the background"
                                : $"pixel {x},{y} of zone {zone.Zone} ({zone.Class}) shows {plan.Items[i]} ({classes[i]})");
                        }
                    }
                }
            }
        }, iter: Iterations);
    }

    [Fact]
    public void Solve_RandomLayouts_SurfacesDrawOnlyInsideTheirZonesContentRect()
    {
        // (b) A surface's drawable area (clip ∩ destination), its clip and its destination all lie in its
        // zone's content rect; its source lies in the surface.
        LayoutGen.Any.Sample(c =>
        {
            foreach (var plan in LayoutSolver.Solve(c.Layout, c.Scene))
            {
                foreach (var s in plan.Items.OfType<SurfaceItem>())
                {
                    var zone = c.Layout.Zone(s.Zone!)!;
                    var content = c.Layout.ContentRect(zone);
                    Assert.True(content.Contains(s.Destination), $"{s.Destination} outside {content}");
                    Assert.True(LayoutTestKit.IsInside(s.Clip, new Region(content)), $"clip {s.Clip} outside {content}");
                    Assert.True(LayoutTestKit.IsInside(s.Clip, new Region(s.Destination)), $"clip {s.Clip} outside {s.Destination}");
                    var info = c.Scene.SurfaceOf(s.Surface);
                    Assert.True(info.IsEnabled);
                    Assert.True(new RectI(0, 0, info.Width, info.Height).Contains(s.Source), $"source {s.Source} outside {info}");
                    Assert.True(s.Dim == 255 || s.Dim == LayoutSolver.NoSignalDim);
                }
                // Every item stays on the output.
                Assert.All(plan.Items, i => Assert.True(LayoutTestKit.IsInside(i.Clip, new Region(new RectI(0, 0, plan.Output.Width, plan.Output.Height)))));
            }
        }, iter: Iterations);
    }

    [Fact]
    public void Solve_RandomLayouts_ChromeLastAndNoGuestPixelOnALabelOrBorder()
    {
        // (c) What holds: labels and borders are the last items (nothing drawn after them is guest
        // content), and every pixel of a shown zone's label bar and border ends up host chrome,
        // except where a shown zone of a higher class takes the pixel (its own rules apply there).
        // What does not hold: "labels lie outside every other VM's content rect": a zone drawn
        // above may overlap a lower zone's label bar; the label then covers that guest (see
        // LayoutSolverTests.Solve_OverlappingSameClassZones_LowerLabelStaysOnTop).
        LayoutGen.Any.Sample(c =>
        {
            foreach (var plan in LayoutSolver.Solve(c.Layout, c.Scene))
            {
                Assert.InRange(plan.ChromeStart, 1, plan.Items.Count);
                for (int i = 0; i < plan.Items.Count; i++)
                {
                    if (i < plan.ChromeStart) Assert.IsNotType<LabelItem>(plan.Items[i]);
                    else Assert.True(plan.Items[i] is LabelItem or FillItem, $"{plan.Items[i]} among the chrome");
                }

                var owner = Owners(plan);
                int w = plan.Output.Width;
                var shown = plan.Zones.Where(z => z.IsShown).ToList();
                foreach (var zone in shown)
                {
                    var chrome = new Region(zone.Rect);
                    chrome.Subtract(zone.Content);
                    foreach (var z in shown.Where(z => z.Class > zone.Class)) chrome.Subtract(z.Rect);
                    foreach (var r in chrome.Rects)
                    {
                        for (int y = r.Y; y < r.Bottom; y++)
                        {
                            for (int x = r.X; x < r.Right; x++)
                            {
                                int i = owner[y * w + x];
                                if (i < plan.ChromeStart)
                                    Assert.Fail($"pixel {x},{y} of zone {zone.Zone}'s label/border shows {(i < 0 ? "nothing" : plan.Items[i])}");
                            }
                        }
                    }
                }
            }
        }, iter: Iterations);
    }

    [Fact]
    public void Solve_SameInput_SamePlan()
    {
        // (d) Deterministic: twice the same answer, and the same for a scene whose dictionaries were
        // built in another order.
        LayoutGen.Any.Sample(c =>
        {
            string first = LayoutTestKit.Describe(LayoutSolver.Solve(c.Layout, c.Scene));
            Assert.Equal(first, LayoutTestKit.Describe(LayoutSolver.Solve(c.Layout, c.Scene)));
            Assert.Equal(first, LayoutTestKit.Describe(LayoutSolver.Solve(c.Layout, c.SceneReversed)));
        }, iter: Iterations);
    }

    [Fact]
    public void Solve_PreemptingVmLiveThenStaleOrDisabled_ZoneShowsItThenThePreemptedReturns()
    {
        // (e) For every zone with a preempting placement P (the highest-priority one, first listed on
        // a tie): with P's VM live and its scanout enabled the zone shows P's surface; when that VM
        // goes stale (or disables the scanout) the zone shows what it would show without P.
        var gen = Gen.Select(LayoutGen.Valid, Gen.Bool, Gen.Int[1, 300], Gen.Int[1, 300]);
        gen.Sample((c, viaStale, w, h) =>
        {
            foreach (var zone in c.Layout.Zones)
            {
                var preempting = c.Layout.Placements.Where(p => p.Zone == zone.Name && p.Preempts).ToList();
                if (preempting.Count == 0) continue;
                int top = preempting.Max(p => p.Priority);
                var p = preempting.First(x => x.Priority == top);
                var key = new SurfaceKey(p.Vm, p.Scanout);

                var live = With(c.Scene, p.Vm, VmHealth.Live, key, new SurfaceInfo(w, h));
                var view = ViewOf(c.Layout, live, zone);
                Assert.Equal(p, view.Placement);
                Assert.Equal(key, view.ShownSurface);
                Assert.False(view.ShowingFallback);
                Assert.Equal(c.Layout.Vm(p.Vm)!.Label, view.Label);
                var plan = LayoutSolver.Solve(c.Layout, live).Single(x => x.Output.Name == zone.Output);
                Assert.DoesNotContain(plan.Items, i => i is SurfaceItem s && s.Zone == zone.Name && s.Surface != key);

                var ended = viaStale ? With(live, p.Vm, VmHealth.Stale, key, new SurfaceInfo(w, h)) : With(live, p.Vm, VmHealth.Live, key, default);
                var after = ViewOf(c.Layout, ended, zone);
                var without = c.Layout with { Placements = c.Layout.Placements.Where(x => x != p).ToList() };
                var expected = ViewOf(without, ended, zone);
                Assert.NotEqual(p, after.Placement);
                Assert.Equal(expected.Placement, after.Placement);
                Assert.Equal(expected.ShownSurface, after.ShownSurface);
                Assert.Equal(expected.Label, after.Label);
                // With no other preempting placement active, that is the zone's ordinary placement.
                var ordinary = c.Layout.Placements.SingleOrDefault(x => x.Zone == zone.Name && !x.Preempts);
                bool otherActive = preempting.Any(x => x != p && ended.HealthOf(x.Vm) == VmHealth.Live && ended.SurfaceOf(new(x.Vm, x.Scanout)).IsEnabled);
                if (!otherActive) Assert.Equal(ordinary, after.Placement);
            }
        }, iter: Iterations);

        static ZoneView ViewOf(LayoutConfig layout, SceneState scene, ZoneConfig zone) =>
            LayoutSolver.Solve(layout, scene).SelectMany(p => p.Zones).Single(z => z.Zone == zone.Name);

        static SceneState With(SceneState s, string vm, VmHealth health, SurfaceKey key, SurfaceInfo info) =>
            new(new Dictionary<string, VmHealth>(s.Health) { [vm] = health }, new Dictionary<SurfaceKey, SurfaceInfo>(s.Surfaces) { [key] = info });
    }

    [Fact]
    public void Solve_RandomLayouts_ZoneViewsMatchTheItems()
    {
        // The ZoneViews say what the items draw: a shown surface appears in the zone's items (unless
        // clipped away entirely), a hidden zone has no items, every shown zone has a label bar.
        LayoutGen.Any.Sample(c =>
        {
            foreach (var plan in LayoutSolver.Solve(c.Layout, c.Scene))
            {
                Assert.Equal(c.Layout.Zones.Count(z => z.Output == plan.Output.Name), plan.Zones.Count);
                // Drawing order: ascending z, ties in configuration order.
                Assert.Equal(c.Layout.Zones.Where(z => z.Output == plan.Output.Name).OrderBy(z => z.Z).Select(z => z.Name), plan.Zones.Select(z => z.Zone));
                foreach (var view in plan.Zones)
                {
                    var items = plan.Items.Where(i => i.Zone == view.Zone).ToList();
                    if (!view.IsShown)
                    {
                        Assert.Empty(items);
                        continue;
                    }
                    Assert.Equal(view.Placement!.Zone, view.Zone);
                    foreach (var s in items.OfType<SurfaceItem>())
                    {
                        Assert.Equal(view.ShownSurface, s.Surface);
                        Assert.Equal(view.Dim, s.Dim);
                    }
                    Assert.Equal(view.ShowingFallback, view.Label!.Contains(LayoutSolver.NoSignalText, StringComparison.Ordinal));
                    Assert.Equal(view.ShowingFallback, !(c.Scene.HealthOf(view.Placement.Vm) == VmHealth.Live && c.Scene.SurfaceOf(new(view.Placement.Vm, view.Placement.Scanout)).IsEnabled));
                }
            }
        }, iter: Iterations);
    }

    [Fact]
    public void Load_RandomValidLayoutWrittenAsToml_ReadsBackTheSameLayout()
    {
        // The loader accepts every layout the generator calls valid, and reads back exactly it.
        LayoutGen.ValidLayout.Sample(layout =>
        {
            string toml = LayoutTestKit.ToToml(layout);
            var result = LayoutLoader.Load(toml);
            Assert.True(result.Success, result + "\n" + toml);
            Assert.DoesNotContain(result.Diagnostics, d => d.IsError);
            Assert.Equal(LayoutTestKit.Describe(layout), LayoutTestKit.Describe(result.Layout!));
        }, iter: 500);
    }
}
