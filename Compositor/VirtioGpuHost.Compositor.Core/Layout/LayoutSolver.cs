using VirtioGpuHost.Compositor.Core.Geometry;
using VirtioGpuHost.Compositor.Core.Scene;

namespace VirtioGpuHost.Compositor.Core.Layout;

/// <summary>
/// Turns a layout and the scene state into one <see cref="FramePlan"/> per output, enforcing the
/// safety rules. Pure and deterministic: the result depends only on the arguments (iteration is
/// in configuration order, never in hash order), so a frame always shows one whole layout.
/// </summary>
/// <remarks>
/// <para>Per zone, the <b>active placement</b> is the one with the highest priority among the
/// zone's ordinary placements (always active) and its <see cref="PlacementConfig.Preempts"/>
/// placements whose VM is <see cref="VmHealth.Live"/> with the scanout enabled. Ties go to a
/// preempting placement, then to the one listed first. A zone with no active placement (an
/// overlay zone whose preempting VMs are all off) is <b>not shown</b>: it draws nothing and
/// protects nothing, so what lies below it shows through.</para>
/// <para>A shown zone whose chosen VM is not live (or whose scanout is disabled) shows that VM's
/// fallback: <see cref="FallbackKind.Dim"/> = the last frame at <see cref="NoSignalDim"/> with a
/// "NO SIGNAL" label in the content (a <see cref="PlaceholderColor"/> fill instead when there is
/// no frame: the scanout has no size); <see cref="FallbackKind.Color"/> = a fill of that colour;
/// <see cref="FallbackKind.OtherVm"/> = that VM's scanout if it is live, else the placeholder.
/// Its label bar reads e.g. "IVI — NO SIGNAL".</para>
/// <para>Order of items: the output background; then, zone by zone in ascending z (ties in
/// configuration order), the zone's content (guest surface, letterbox fill, fallback fill); then
/// the host chrome of every shown zone in the same order (border, label bar, "NO SIGNAL"
/// label), so no guest pixel is ever drawn over a label or border
/// (<see cref="FramePlan.ChromeStart"/>).</para>
/// <para>Clips: a zone's content may draw only inside its <see cref="LayoutConfig.ContentRect"/>;
/// every item is clipped out of the rectangle of every shown zone of a higher class than the
/// item (a surface's class is its VM's class, host items of a zone have the zone's class),
/// whatever the z-order. So a critical zone is never covered by anything of a lower class:
/// neither a guest surface nor a lower zone's content fill, border or label.</para>
/// <para>Every shown zone's content rectangle is opaque: where the surface does not cover it
/// (letterboxing, a small scanout) the solver fills it with the output background, so nothing
/// from a zone below shows through next to this zone's trusted label.</para>
/// </remarks>
public static class LayoutSolver
{
    /// <summary>The dim of a stale VM's last frame (255 = unchanged).</summary>
    public const byte NoSignalDim = 96;

    /// <summary>The state text of a zone showing its fallback.</summary>
    public const string NoSignalText = "NO SIGNAL";

    /// <summary>The neutral placeholder of a zone with nothing to show.</summary>
    public static ColorBgra PlaceholderColor { get; } = ColorBgra.Opaque(0x30, 0x30, 0x30);

    public static IReadOnlyList<FramePlan> Solve(LayoutConfig layout, SceneState scene)
    {
        ArgumentNullException.ThrowIfNull(layout);
        ArgumentNullException.ThrowIfNull(scene);
        var vms = new Dictionary<string, VmConfig>(StringComparer.Ordinal);
        foreach (var vm in layout.Vms) vms.TryAdd(vm.Name, vm);
        var plans = new List<FramePlan>(layout.Outputs.Count);
        foreach (var output in layout.Outputs) plans.Add(SolveOutput(layout, output, scene, vms));
        return plans;
    }

    /// <summary>
    /// The placement a zone shows now: the highest priority among its ordinary placements and its
    /// live preempting ones (ties: preempting first, then configuration order); null when none is active.
    /// </summary>
    public static PlacementConfig? ActivePlacement(LayoutConfig layout, ZoneConfig zone, SceneState scene)
    {
        PlacementConfig? best = null;
        foreach (var p in layout.Placements)
        {
            if (p.Zone != zone.Name || layout.Vm(p.Vm) is null) continue;
            if (p.Preempts && !IsLive(scene, p.Vm, p.Surface)) continue;
            if (best is null || p.Priority > best.Priority || (p.Priority == best.Priority && p.Preempts && !best.Preempts)) best = p;
        }
        return best;
    }

    /// <summary>
    /// Where a scanout of <paramref name="surface"/> size goes in <paramref name="content"/>:
    /// the surface pixels to sample and the output pixels they cover. The destination always lies
    /// inside <paramref name="content"/>, centred; modes that would overflow crop the source
    /// instead (centred too). Both empty when either size is empty.
    /// </summary>
    public static (RectI Source, RectI Destination) Scale(ScaleMode mode, SizeI surface, RectI content)
    {
        if (surface.IsEmpty || content.IsEmpty) return (default, default);
        long sw = surface.Width, sh = surface.Height, cw = content.Width, ch = content.Height;
        switch (mode)
        {
            case ScaleMode.Fit:
            {
                long dw, dh;
                if (cw * sh <= ch * sw)
                {
                    dw = cw; // width-limited: scale cw/sw
                    dh = Math.Clamp(sh * cw / sw, 1, ch);
                }
                else
                {
                    dh = ch; // height-limited: scale ch/sh
                    dw = Math.Clamp(sw * ch / sh, 1, cw);
                }
                return (surface.ToRect(), Centred(content, dw, dh));
            }
            case ScaleMode.Fill:
            {
                if (cw * sh >= ch * sw)
                {
                    // Scale cw/sw covers the height: show the centred band of the source that fits.
                    long srcH = Math.Clamp((ch * sw + cw / 2) / cw, 1, sh);
                    return (new RectI(0, (int)((sh - srcH) / 2), (int)sw, (int)srcH), content);
                }
                long srcW = Math.Clamp((cw * sh + ch / 2) / ch, 1, sw);
                return (new RectI((int)((sw - srcW) / 2), 0, (int)srcW, (int)sh), content);
            }
            case ScaleMode.Integer:
                return Whole(Math.Max(1, Math.Min(cw / sw, ch / sh)), sw, sh, content);
            default:
                return Whole(1, sw, sh, content);
        }
    }

    /// <summary>Scale by the whole number <paramref name="k"/>, centred; an axis that overflows is cropped (centred).</summary>
    private static (RectI, RectI) Whole(long k, long sw, long sh, RectI content)
    {
        var (sx, sLenX, dx, dLenX) = Axis(k, sw, content.Width);
        var (sy, sLenY, dy, dLenY) = Axis(k, sh, content.Height);
        return (new RectI((int)sx, (int)sy, (int)sLenX, (int)sLenY), new RectI(content.X + (int)dx, content.Y + (int)dy, (int)dLenX, (int)dLenY));

        static (long SrcOff, long SrcLen, long DstOff, long DstLen) Axis(long k, long s, long c)
        {
            long srcLen = Math.Min(s, c / k);
            long dstLen = srcLen * k;
            return ((s - srcLen) / 2, srcLen, (c - dstLen) / 2, dstLen);
        }
    }

    private static RectI Centred(RectI content, long w, long h) =>
        new(content.X + (int)((content.Width - w) / 2), content.Y + (int)((content.Height - h) / 2), (int)w, (int)h);

    private static bool IsLive(SceneState scene, string vm, int scanout) => IsLive(scene, vm, new SurfaceKey(vm, scanout));

    private static bool IsLive(SceneState scene, string vm, SurfaceKey surface) =>
        scene.HealthOf(vm) == VmHealth.Live && scene.SurfaceOf(surface).IsEnabled;

    /// <summary>Black or white, whichever reads better on <paramref name="background"/>.</summary>
    public static ColorBgra LabelForeground(ColorBgra background) =>
        background.R * 299 + background.G * 587 + background.B * 114 >= 140_000 ? ColorBgra.Opaque(0, 0, 0) : ColorBgra.Opaque(255, 255, 255);

    /// <summary>What one shown zone draws, decided before any item is emitted (the protected rects depend on every zone).</summary>
    private sealed record Decision(
        ZoneConfig Zone,
        PlacementConfig Placement,
        VmConfig Vm,
        VmHealth Health,
        bool Fallback,
        SurfaceKey? Surface,
        SurfaceInfo SurfaceInfo,
        SafetyClass SurfaceClass,
        byte Dim,
        ColorBgra? Fill,
        bool NoSignalLabel,
        string Label);

    private static FramePlan SolveOutput(LayoutConfig layout, OutputConfig output, SceneState scene, Dictionary<string, VmConfig> vms)
    {
        var outputRect = new RectI(0, 0, output.Width, output.Height);
        var items = new List<PlanItem> { new FillItem(outputRect, output.Background, new Region(outputRect)) };
        var views = new List<ZoneView>();
        var decisions = new List<Decision>();

        var zones = layout.Zones
            .Select((zone, index) => (zone, index))
            .Where(x => x.zone.Output == output.Name)
            .OrderBy(x => x.zone.Z)
            .ThenBy(x => x.index)
            .Select(x => x.zone);

        foreach (var zone in zones)
        {
            var content = layout.ContentRect(zone);
            var placement = ActivePlacement(layout, zone, scene);
            if (placement is null || !vms.TryGetValue(placement.Vm, out var vm))
            {
                views.Add(new ZoneView(zone.Name, zone.Class, zone.Rect, content, null, VmHealth.NoSignal, false));
                continue;
            }
            var d = Decide(zone, placement, vm, scene, vms);
            decisions.Add(d);
            views.Add(new ZoneView(zone.Name, zone.Class, zone.Rect, content, placement, d.Health, d.Fallback)
            {
                ShownSurface = d.Surface,
                Dim = d.Dim,
                Label = d.Label,
            });
        }

        // Everything a shown zone protects: its whole rectangle, against anything of a lower class.
        var protectedRects = decisions.Select(d => (d.Zone.Rect, d.Zone.Class)).ToList();
        Region Protect(Region region, SafetyClass cls)
        {
            region.Intersect(outputRect);
            foreach (var (rect, zoneClass) in protectedRects)
                if (zoneClass > cls) region.Subtract(rect);
            return region;
        }

        // Content, back to front.
        foreach (var d in decisions)
        {
            var content = layout.ContentRect(d.Zone);
            if (content.IsEmpty) continue;
            var opaque = Protect(new Region(content), d.Zone.Class);
            if (d.Surface is { } key)
            {
                var (source, destination) = Scale(d.Placement.Scale, new SizeI(d.SurfaceInfo.Width, d.SurfaceInfo.Height), content);
                var clip = Protect(new Region(destination.Intersect(content)), d.SurfaceClass);
                // Letterbox: whatever of the content the surface does not draw (around it, or where
                // its class keeps it out) is background, so nothing from below shows through.
                opaque.Subtract(clip);
                if (!opaque.IsEmpty) items.Add(new FillItem(content, output.Background, opaque) { Zone = d.Zone.Name });
                if (!clip.IsEmpty) items.Add(new SurfaceItem(key, source, destination, clip, d.SurfaceClass, d.Dim) { Zone = d.Zone.Name });
            }
            else if (d.Fill is { } color && !opaque.IsEmpty)
            {
                items.Add(new FillItem(content, color, opaque) { Zone = d.Zone.Name });
            }
        }

        // Host chrome on top of all guest content.
        int chromeStart = items.Count;
        foreach (var d in decisions)
        {
            var zone = d.Zone;
            var content = layout.ContentRect(zone);
            var labelRect = layout.LabelRect(zone);
            var color = d.Vm.LabelColor;
            var foreground = LabelForeground(color);

            var ring = new Region(zone.Rect);
            ring.Subtract(content);
            ring.Subtract(labelRect);
            ring = Protect(ring, zone.Class);
            if (!ring.IsEmpty) items.Add(new FillItem(zone.Rect, color, ring) { Zone = zone.Name });

            var labelClip = Protect(new Region(labelRect), zone.Class);
            if (!labelClip.IsEmpty) items.Add(new LabelItem(d.Label, color, foreground, labelRect, labelClip) { Zone = zone.Name });

            if (d.NoSignalLabel && !content.IsEmpty)
            {
                int w = Math.Min(content.Width, Math.Max(layout.LabelHeight * 6, 1));
                int h = Math.Min(content.Height, Math.Max(layout.LabelHeight, 1));
                var rect = Centred(content, w, h);
                var clip = Protect(new Region(rect), zone.Class);
                if (!clip.IsEmpty) items.Add(new LabelItem(NoSignalText, color, foreground, rect, clip) { Zone = zone.Name });
            }
        }

        return new FramePlan(output, items, views, layout) { ChromeStart = chromeStart };
    }

    private static Decision Decide(ZoneConfig zone, PlacementConfig placement, VmConfig vm, SceneState scene, Dictionary<string, VmConfig> vms)
    {
        var key = placement.Surface;
        var health = scene.HealthOf(vm.Name);
        var info = scene.SurfaceOf(key);
        if (health == VmHealth.Live && info.IsEnabled)
            return new Decision(zone, placement, vm, health, false, key, info, vm.Class, 255, null, false, vm.Label);

        string label = $"{vm.Label} — {NoSignalText}";
        var fb = vm.Fallback;
        switch (fb.Kind)
        {
            case FallbackKind.Color:
                return new Decision(zone, placement, vm, health, true, null, default, vm.Class, 255, fb.Color, false, label);
            case FallbackKind.OtherVm:
                if (fb.Vm is not null && vms.TryGetValue(fb.Vm, out var other) && IsLive(scene, other.Name, fb.Scanout))
                {
                    var otherKey = new SurfaceKey(other.Name, fb.Scanout);
                    return new Decision(zone, placement, vm, health, true, otherKey, scene.SurfaceOf(otherKey), other.Class, 255, null, false,
                        $"{label}, SHOWING {other.Label}");
                }
                return new Decision(zone, placement, vm, health, true, null, default, vm.Class, 255, PlaceholderColor, true, label);
            default:
                if (info.IsEnabled)
                    return new Decision(zone, placement, vm, health, true, key, info, vm.Class, NoSignalDim, null, true, label);
                return new Decision(zone, placement, vm, health, true, null, default, vm.Class, 255, PlaceholderColor, true, label);
        }
    }
}
