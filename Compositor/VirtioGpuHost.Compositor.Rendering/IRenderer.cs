using VirtioGpuHost.Compositor.Core.Geometry;

namespace VirtioGpuHost.Compositor.Rendering;

/// <summary>
/// Byte order of a source's pixels in memory. Guest scanouts are opaque (the fourth byte is
/// ignored, as QEMU's x8r8g8b8 console does); host textures (labels) are premultiplied BGRA.
/// </summary>
public enum SourceLayout
{
    /// <summary>B, G, R, X (virtio B8G8R8X8/B8G8R8A8; DRM XRGB8888).</summary>
    Bgrx,
    /// <summary>X, R, G, B (virtio X8R8G8B8/A8R8G8B8).</summary>
    Xrgb,
    /// <summary>R, G, B, X (virtio R8G8B8X8/R8G8B8A8).</summary>
    Rgbx,
    /// <summary>X, B, G, R (virtio X8B8G8R8/A8B8G8R8).</summary>
    Xbgr,
    /// <summary>B, G, R, A premultiplied (host-drawn textures: labels, overlays).</summary>
    BgraPremultiplied,
}

/// <summary>
/// A view of pixels in memory (a guest scanout's resource, a dma-buf-like buffer). Valid only
/// while the caller holds that memory; renderers never keep the address past the call that
/// received it unless the view is re-supplied.
/// </summary>
public readonly record struct SurfaceView(nint Address, int Width, int Height, int Stride, SourceLayout Layout)
{
    public bool IsOpaque => Layout != SourceLayout.BgraPremultiplied;
}

/// <summary>A source a pass can draw (a wrapped surface or a host texture).</summary>
public interface ITexture : IDisposable
{
    SizeI Size { get; }
    bool IsOpaque { get; }
}

/// <summary>Where a pass draws: an output's frame, premultiplied BGRA.</summary>
public interface IRenderTarget : IDisposable
{
    SizeI Size { get; }

    /// <summary>Copies the pixels out (0xAARRGGBB native u32s, row by row) for PNGs, checks and viewers.</summary>
    void ReadPixels(Span<uint> destination);

    /// <summary>Copies one rectangle out (row by row into a width*height span).</summary>
    void ReadPixels(RectI rect, Span<uint> destination);
}

/// <summary>What a renderer can do (the compositor adapts, and logs it).</summary>
public sealed record RendererCapabilities(string Name, bool ZeroCopySurfaces, bool Threaded, string Details);

/// <summary>
/// A renderer (wlroots' render pass model): make targets and textures, then per frame
/// <see cref="BeginPass"/> → draw calls → <see cref="IRenderPass.Submit"/>. All drawing is
/// nearest-neighbour with the sample at the destination pixel's centre:
/// sx = src.X + ((dx − dst.X) · 2 + 1) · src.Width / (2 · dst.Width), same for y, so every
/// renderer can produce the same pixels. Blending is premultiplied source-over with
/// x·a/255 rounded as (t + (t >> 8)) >> 8, t = x·a + 128.
/// </summary>
public interface IRenderer : IDisposable
{
    RendererCapabilities Capabilities { get; }

    IRenderTarget CreateTarget(SizeI size);

    /// <summary>A texture over <paramref name="view"/>'s pixels (zero copy where the renderer can).</summary>
    ITexture ImportSurface(in SurfaceView view);

    /// <summary>
    /// Points <paramref name="texture"/> at new pixels (the same or another buffer); only
    /// <paramref name="damage"/> (texture pixels) changed since the last call.
    /// </summary>
    void UpdateSurface(ITexture texture, in SurfaceView view, Region damage);

    /// <summary>A host texture from premultiplied BGRA pixels (copied).</summary>
    ITexture CreateTexture(SizeI size, ReadOnlySpan<uint> premultipliedBgra);

    /// <summary>Starts a frame that redraws only <paramref name="damage"/> (target pixels).</summary>
    IRenderPass BeginPass(IRenderTarget target, Region damage);
}

/// <summary>One frame's draw calls, back to front; nothing is drawn outside the pass damage or a call's clip.</summary>
public interface IRenderPass
{
    /// <summary>Fills <paramref name="destination"/> ∩ <paramref name="clip"/> with a premultiplied colour (source-over).</summary>
    void FillRect(RectI destination, ColorBgra color, Region clip);

    /// <summary>
    /// Draws <paramref name="source"/> of the texture scaled into <paramref name="destination"/>
    /// (nearest-neighbour), within <paramref name="clip"/>. <paramref name="dim"/> multiplies
    /// the colour (255 = unchanged). Opaque textures replace; premultiplied ones blend.
    /// </summary>
    void DrawTexture(ITexture texture, RectI source, RectI destination, Region clip, byte dim = 255);

    /// <summary>Executes the frame.</summary>
    void Submit();
}
