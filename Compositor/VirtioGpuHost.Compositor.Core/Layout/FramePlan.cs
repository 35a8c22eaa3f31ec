using VirtioGpuHost.Compositor.Core.Geometry;
using VirtioGpuHost.Compositor.Core.Scene;

namespace VirtioGpuHost.Compositor.Core.Layout;

/// <summary>
/// Something to draw, back to front. <see cref="Clip"/> is where it may draw on the output:
/// the solver already removed what the safety rules forbid (another zone's protected rect,
/// outside its own zone), so a renderer only has to honour it.
/// </summary>
public abstract record PlanItem(Region Clip)
{
    /// <summary>The zone the item belongs to (null for the output background), for logs, tests and the safety check.</summary>
    public string? Zone { get; init; }
}

/// <summary>
/// A guest scanout: <see cref="Source"/> (surface pixels) is scaled into <see cref="Destination"/>
/// (output pixels) with nearest-neighbour sampling; <see cref="Dim"/> 0..255 darkens it
/// (255 = unchanged; the "no signal" fallback uses less).
/// </summary>
public sealed record SurfaceItem(SurfaceKey Surface, RectI Source, RectI Destination, Region Clip, SafetyClass Class, byte Dim = 255)
    : PlanItem(Clip);

/// <summary>A solid colour (premultiplied) over <see cref="Destination"/>.</summary>
public sealed record FillItem(RectI Destination, ColorBgra Color, Region Clip) : PlanItem(Clip);

/// <summary>A host-drawn label: text on a bar of <see cref="Background"/> colour, always on top.</summary>
public sealed record LabelItem(string Text, ColorBgra Background, ColorBgra Foreground, RectI Destination, Region Clip) : PlanItem(Clip);

/// <summary>What one zone shows in this plan (for logs, the API, the safety-region check).</summary>
public sealed record ZoneView(
    string Zone,
    SafetyClass Class,
    RectI Rect,
    RectI Content,
    PlacementConfig? Placement,
    VmHealth Health,
    bool ShowingFallback)
{
    /// <summary>Whether the zone is drawn at all: false when no placement is active (an overlay zone whose preempting VMs are all off).</summary>
    public bool IsShown => Placement is not null;

    /// <summary>The guest surface drawn in the zone (its own, or a fallback VM's), if any.</summary>
    public SurfaceKey? ShownSurface { get; init; }

    /// <summary>The dim applied to <see cref="ShownSurface"/> (255 = live, unchanged).</summary>
    public byte Dim { get; init; } = 255;

    /// <summary>The text of the zone's trusted label bar (null when the zone is not shown).</summary>
    public string? Label { get; init; }
}

/// <summary>
/// Everything one output frame draws: the background, then <see cref="Items"/> in order. A
/// plan is immutable and built from one layout and one scene state, so a frame always shows
/// one whole layout.
/// </summary>
public sealed record FramePlan(
    OutputConfig Output,
    IReadOnlyList<PlanItem> Items,
    IReadOnlyList<ZoneView> Zones,
    LayoutConfig Layout)
{
    /// <summary>
    /// Index in <see cref="Items"/> of the first host-chrome item: from there on everything is a
    /// zone border or a label, drawn after (on top of) all guest content. -1 when unknown (a plan
    /// built by hand); <see cref="LayoutSolver"/> always sets it.
    /// </summary>
    public int ChromeStart { get; init; } = -1;
}
