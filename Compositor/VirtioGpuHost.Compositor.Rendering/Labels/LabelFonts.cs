using SkiaSharp;

namespace VirtioGpuHost.Compositor.Rendering.Labels;

/// <summary>
/// The label typeface, DejaVu Sans Bold embedded in this assembly (Labels/Fonts, with its
/// licence): the same glyphs on every machine, so label pixels depend only on the SkiaSharp
/// version. The NoDependencies Skia build has no system fonts anyway.
/// </summary>
public static class LabelFonts
{
    private const string ResourceName = "VirtioGpuHost.Compositor.Rendering.DejaVuSans-Bold.ttf";
    private static readonly Lazy<SKTypeface> BoldTypeface = new(Load);

    public static SKTypeface Bold => BoldTypeface.Value;

    private static SKTypeface Load()
    {
        using var stream = typeof(LabelFonts).Assembly.GetManifestResourceStream(ResourceName)
            ?? throw new InvalidOperationException($"embedded font {ResourceName} is missing");
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        using var data = SKData.CreateCopy(copy.ToArray());
        return SKTypeface.FromData(data) ?? throw new InvalidOperationException("SkiaSharp could not load the embedded font");
    }

    /// <summary>A font of <paramref name="size"/> pixels with the settings every label uses (grey anti-aliasing, no hinting).</summary>
    public static SKFont Create(float size) => new(Bold, size)
    {
        Edging = SKFontEdging.Antialias,
        Hinting = SKFontHinting.None,
        Subpixel = true,
    };
}
