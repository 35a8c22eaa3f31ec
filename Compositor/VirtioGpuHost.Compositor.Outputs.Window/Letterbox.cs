using VirtioGpuHost.Compositor.Core.Geometry;

namespace VirtioGpuHost.Compositor.Outputs.Window;

/// <summary>
/// Where a frame goes in a window of another size: the largest uniform scale that fits,
/// centred, black bars on the rest (the layout's scale "fit" applied to the whole output).
/// A window of the output's size shows it 1:1; whole multiples show every pixel as an n×n block.
/// </summary>
public static class Letterbox
{
    /// <summary>The destination of a <paramref name="frame"/>-sized image in a <paramref name="window"/> (top-left origin).</summary>
    public static RectI Fit(SizeI frame, SizeI window)
    {
        if (frame.Width <= 0 || frame.Height <= 0 || window.Width <= 0 || window.Height <= 0) return default;
        // Compare the two scales exactly (cross-multiplied) so 1:1 and whole multiples stay exact.
        long wScaledHeight = (long)frame.Height * window.Width; // height if the width fills the window, times frame.Width
        int width, height;
        if (wScaledHeight <= (long)window.Height * frame.Width)
        {
            width = window.Width;
            height = (int)Math.Max(1, (wScaledHeight + frame.Width / 2) / frame.Width);
        }
        else
        {
            height = window.Height;
            width = (int)Math.Max(1, ((long)frame.Width * window.Height + frame.Height / 2) / frame.Height);
        }
        return new RectI((window.Width - width) / 2, (window.Height - height) / 2, width, height);
    }
}
