using VirtioGpuHost.Compositor.Core.Geometry;

namespace VirtioGpuHost.Compositor.Rendering.Labels;

/// <summary>Host-drawn pixels: premultiplied BGRA (u32 0xAARRGGBB), row-major, <see cref="Size"/>.Width per row.</summary>
public sealed class LabelImage
{
    private readonly uint[] _pixels;

    internal LabelImage(SizeI size, uint[] pixels)
    {
        Size = size;
        _pixels = pixels;
    }

    public SizeI Size { get; }

    public ReadOnlySpan<uint> Pixels => _pixels;

    /// <summary>A texture of these pixels on <paramref name="renderer"/> (a copy the texture owns).</summary>
    public ITexture CreateTexture(IRenderer renderer) => renderer.CreateTexture(Size, _pixels);
}
