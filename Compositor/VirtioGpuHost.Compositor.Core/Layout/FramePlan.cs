using VirtioGpuHost.Compositor.Core.Geometry;
using VirtioGpuHost.Compositor.Core.Scene;

namespace VirtioGpuHost.Compositor.Core.Layout;

/// <summary>
/// Something to draw, back to front. <see cref="Clip"/> is where it may draw on the output:
/// the solver already removed what the safety rules forbid (another zone's protected rect,
/// outside its own zone), so a renderer only has to honour it.
/// </summary>
public abstract record PlanItem(Region Clip);

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
    bool ShowingFallback);

/// <summary>
/// Everything one output frame draws: the background, then <see cref="Items"/> in order. A
/// plan is immutable and built from one layout and one scene state, so a frame always shows
/// one whole layout.
/// </summary>
public sealed record FramePlan(
    OutputConfig Output,
    IReadOnlyList<PlanItem> Items,
    IReadOnlyList<ZoneView> Zones,
    LayoutConfig Layout);
