using CsCheck;
using VirtioGpuHost.Compositor.Core.Geometry;
using VirtioGpuHost.Compositor.Core.Layout;

namespace VirtioGpuHost.Compositor.Tests.Layout;

/// <summary>Exact source/destination rectangles of the four scale modes for known sizes, and their invariants.</summary>
public class ScaleGeometryTests
{
    public static TheoryData<ScaleMode, int, int, RectI, RectI, RectI> Cases => new()
    {
        // mode, surface w, h, content, expected source, expected destination
        // Fit: width-limited 100x50 in 200x200 -> 200x100, centred vertically.
        { ScaleMode.Fit, 100, 50, new RectI(10, 20, 200, 200), new RectI(0, 0, 100, 50), new RectI(10, 70, 200, 100) },
        // Fit: height-limited 50x100 in 200x100 -> 50x100, centred horizontally.
        { ScaleMode.Fit, 50, 100, new RectI(0, 0, 200, 100), new RectI(0, 0, 50, 100), new RectI(75, 0, 50, 100) },
        // Fit: same aspect, exact.
        { ScaleMode.Fit, 640, 360, new RectI(5, 5, 1280, 720), new RectI(0, 0, 640, 360), new RectI(5, 5, 1280, 720) },
        // Fit: 1920x1080 into 1276x686 (a zone's content): height-limited 1219x686 (floor), centred.
        { ScaleMode.Fit, 1920, 1080, new RectI(1282, 30, 1276, 686), new RectI(0, 0, 1920, 1080), new RectI(1282 + 28, 30, 1219, 686) },
        // Fill: 100x50 into 200x200 -> the centred 50x50 of the source, over the whole content.
        { ScaleMode.Fill, 100, 50, new RectI(0, 0, 200, 200), new RectI(25, 0, 50, 50), new RectI(0, 0, 200, 200) },
        // Fill: 100x100 into 300x100 -> the centred 100x33 band (33.3 rounded).
        { ScaleMode.Fill, 100, 100, new RectI(7, 9, 300, 100), new RectI(0, 33, 100, 33), new RectI(7, 9, 300, 100) },
        // Integer: 100x50 into 350x200 -> x3 (300x150), centred.
        { ScaleMode.Integer, 100, 50, new RectI(0, 0, 350, 200), new RectI(0, 0, 100, 50), new RectI(25, 25, 300, 150) },
        // Integer: too big for x1 in width -> x1, width cropped to the centred 200 columns.
        { ScaleMode.Integer, 300, 100, new RectI(0, 0, 200, 200), new RectI(50, 0, 200, 100), new RectI(0, 50, 200, 100) },
        // Integer: exactly x2.
        { ScaleMode.Integer, 64, 32, new RectI(100, 100, 128, 64), new RectI(0, 0, 64, 32), new RectI(100, 100, 128, 64) },
        // None: smaller -> 1:1 centred.
        { ScaleMode.None, 100, 50, new RectI(0, 0, 200, 200), new RectI(0, 0, 100, 50), new RectI(50, 75, 100, 50) },
        // None: larger -> centred crop, fills the content.
        { ScaleMode.None, 400, 300, new RectI(10, 10, 200, 100), new RectI(100, 100, 200, 100), new RectI(10, 10, 200, 100) },
        // None: odd remainder rounds the offset down.
        { ScaleMode.None, 3, 3, new RectI(0, 0, 10, 10), new RectI(0, 0, 3, 3), new RectI(3, 3, 3, 3) },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Scale_KnownSizes_ExactRectangles(ScaleMode mode, int width, int height, RectI content, RectI source, RectI destination)
    {
        var (s, d) = LayoutSolver.Scale(mode, new SizeI(width, height), content);

        Assert.Equal(source, s);
        Assert.Equal(destination, d);
    }

    [Fact]
    public void Scale_EmptySurface_NothingToDraw()
    {
        var (s, d) = LayoutSolver.Scale(ScaleMode.Fit, new SizeI(0, 0), new RectI(0, 0, 100, 100));

        Assert.True(s.IsEmpty);
        Assert.True(d.IsEmpty);
    }

    [Fact]
    public void Scale_AnySizes_DestinationInsideContentAndSourceInsideSurface()
    {
        var gen = Gen.Select(Gen.OneOfConst(ScaleMode.Fit, ScaleMode.Fill, ScaleMode.Integer, ScaleMode.None),
            Gen.Int[1, 5000], Gen.Int[1, 5000], Gen.Int[0, 100], Gen.Int[0, 100], Gen.Int[1, 3000], Gen.Int[1, 3000]);
        gen.Sample((mode, sw, sh, cx, cy, cw, ch) =>
        {
            var content = new RectI(cx, cy, cw, ch);
            var (s, d) = LayoutSolver.Scale(mode, new SizeI(sw, sh), content);

            Assert.True(content.Contains(d), $"{mode} {sw}x{sh} -> {d} outside {content}");
            Assert.True(new RectI(0, 0, sw, sh).Contains(s), $"{mode} source {s} outside {sw}x{sh}");
            if (mode == ScaleMode.Fill) Assert.Equal(content, d);
            if (mode is ScaleMode.Fit) Assert.True(d.Width == cw || d.Height == ch, $"fit {d} touches no edge of {content}");
            if (mode is ScaleMode.Integer or ScaleMode.None)
            {
                // A whole-number scale: every source pixel becomes k x k output pixels.
                Assert.Equal(0, d.Width % s.Width);
                Assert.Equal(d.Width / s.Width, d.Height / s.Height);
                if (mode == ScaleMode.None) Assert.Equal((s.Width, s.Height), (d.Width, d.Height));
            }
            // Centred: the margins differ by at most one pixel on each axis.
            Assert.InRange((d.X - content.X) - (content.Right - d.Right), -1, 1);
            Assert.InRange((d.Y - content.Y) - (content.Bottom - d.Bottom), -1, 1);
        }, iter: 5000);
    }
}
