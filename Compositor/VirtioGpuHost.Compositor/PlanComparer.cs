using VirtioGpuHost.Compositor.Core.Geometry;
using VirtioGpuHost.Compositor.Core.Layout;

namespace VirtioGpuHost.Compositor;

/// <summary>
/// Whether two frame plans draw the same thing (same items, geometry, clips, colours, labels):
/// when they do, only surface damage needs repainting; otherwise the whole output does.
/// (Records compare their <see cref="Region"/> members by reference, hence this.)
/// </summary>
internal static class PlanComparer
{
    public static bool SameDrawing(FramePlan? a, FramePlan b)
    {
        if (a is null) return false;
        if (a.Output != b.Output || a.Items.Count != b.Items.Count) return false;
        for (int i = 0; i < a.Items.Count; i++)
            if (!SameItem(a.Items[i], b.Items[i])) return false;
        return true;
    }

    private static bool SameItem(PlanItem x, PlanItem y) => (x, y) switch
    {
        (SurfaceItem a, SurfaceItem b) => a.Surface == b.Surface && a.Source == b.Source && a.Destination == b.Destination && a.Class == b.Class && a.Dim == b.Dim && SameRegion(a.Clip, b.Clip),
        (FillItem a, FillItem b) => a.Destination == b.Destination && a.Color == b.Color && SameRegion(a.Clip, b.Clip),
        (LabelItem a, LabelItem b) => a.Text == b.Text && a.Background == b.Background && a.Foreground == b.Foreground && a.Destination == b.Destination && SameRegion(a.Clip, b.Clip),
        _ => false,
    };

    private static bool SameRegion(Region a, Region b)
    {
        if (a.Rects.Count != b.Rects.Count) return false;
        for (int i = 0; i < a.Rects.Count; i++)
            if (a.Rects[i] != b.Rects[i]) return false;
        return true;
    }
}
