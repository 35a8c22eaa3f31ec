using VirtioGpuHost.Compositor.Core.Geometry;
using VirtioGpuHost.Compositor.Rendering;
using VirtioGpuHost.Device.Display;
using VirtioGpuHost.Device.Wire;

namespace VirtioGpuHost.Compositor;

/// <summary>Conversions between the device's view of pixels and the renderer's.</summary>
internal static class SourceViews
{
    public static SourceLayout Layout(VirtioGpuFormat format) => format switch
    {
        VirtioGpuFormat.B8G8R8A8Unorm or VirtioGpuFormat.B8G8R8X8Unorm => SourceLayout.Bgrx,
        VirtioGpuFormat.A8R8G8B8Unorm or VirtioGpuFormat.X8R8G8B8Unorm => SourceLayout.Xrgb,
        VirtioGpuFormat.R8G8B8A8Unorm or VirtioGpuFormat.R8G8B8X8Unorm => SourceLayout.Rgbx,
        VirtioGpuFormat.A8B8G8R8Unorm or VirtioGpuFormat.X8B8G8R8Unorm => SourceLayout.Xbgr,
        _ => SourceLayout.Bgrx,
    };

    /// <summary>The scanout rectangle of an acquired resource surface, as a renderer view.</summary>
    public static SurfaceView View(GpuSurface surface, VirtioGpuRect scanout)
    {
        // The scanout rect was checked against the resource when it was set; a resource is never
        // resized, so it still fits.
        return new SurfaceView(surface.Address(scanout.X, scanout.Y), (int)scanout.Width, (int)scanout.Height, (int)surface.Stride, Layout(surface.Format));
    }

    /// <summary>
    /// The output pixels that texture pixels in <paramref name="damage"/> can reach when
    /// <paramref name="source"/> is drawn into <paramref name="destination"/> (nearest-neighbour,
    /// rounded outwards by one pixel).
    /// </summary>
    public static RectI MapDamage(RectI damage, RectI source, RectI destination)
    {
        var d = damage.Intersect(source);
        if (d.IsEmpty || source.IsEmpty || destination.IsEmpty) return default;
        long x0 = destination.X + (long)(d.X - source.X) * destination.Width / source.Width - 1;
        long y0 = destination.Y + (long)(d.Y - source.Y) * destination.Height / source.Height - 1;
        long x1 = destination.X + ((long)(d.Right - source.X) * destination.Width + source.Width - 1) / source.Width + 1;
        long y1 = destination.Y + ((long)(d.Bottom - source.Y) * destination.Height + source.Height - 1) / source.Height + 1;
        return RectI.FromEdges((int)x0, (int)y0, (int)x1, (int)y1).Intersect(destination);
    }
}
