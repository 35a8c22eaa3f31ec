using VirtioGpuHost.Compositor.Core.Geometry;
using VirtioGpuHost.Compositor.Rendering;
using VirtioGpuHost.Compositor.Rendering.Cpu;
using VirtioGpuHost.Compositor.Rendering.Labels;

namespace VirtioGpuHost.Compositor.Tests.Rendering;

/// <summary>
/// The scenes behind the golden images: procedural guest surfaces in every layout, scaled
/// into zones, blended, dimmed, clipped, with host labels. Each returns its frame's pixels.
/// </summary>
internal static class GoldenScenes
{
    private static readonly Region All = RenderTestKit.All;

    /// <summary>The bytes a guest writes for colour (r, g, b) in <paramref name="layout"/>, as a little-endian u32.</summary>
    public static uint Encode(SourceLayout layout, byte r, byte g, byte b) => layout switch
    {
        SourceLayout.Bgrx => (uint)r << 16 | (uint)g << 8 | b | 0x5A000000u, // X byte is junk on purpose
        SourceLayout.Xrgb => (uint)b << 24 | (uint)g << 16 | (uint)r << 8 | 0x5Au,
        SourceLayout.Rgbx => 0x5A000000u | (uint)b << 16 | (uint)g << 8 | r,
        SourceLayout.Xbgr => (uint)r << 24 | (uint)g << 16 | (uint)b << 8 | 0x5Au,
        _ => 0xFF000000u | (uint)r << 16 | (uint)g << 8 | b,
    };

    private static PinnedSurface Surface(int w, int h, SourceLayout layout, Func<int, int, (byte R, byte G, byte B)> colour)
    {
        var s = new PinnedSurface(w, h, layout, padPixels: 3);
        return s.Fill((x, y) => { var c = colour(Math.Min(x, w - 1), y); return Encode(layout, c.R, c.G, c.B); });
    }

    private static (byte, byte, byte) Bars(int x, int y, int w, int h)
    {
        ReadOnlySpan<uint> bars = [0xC0C0C0, 0xC0C000, 0x00C0C0, 0x00C000, 0xC000C0, 0xC00000, 0x0000C0, 0x101010];
        if (y > h * 3 / 4) { byte v = (byte)(x * 255 / Math.Max(1, w - 1)); return (v, v, v); }
        uint c = bars[x * 8 / w];
        return ((byte)(c >> 16), (byte)(c >> 8), (byte)c);
    }

    private static (byte, byte, byte) Gradient(int x, int y, int w, int h) =>
        ((byte)(20 + x * 180 / w), (byte)(40 + y * 80 / h), (byte)(((x + y) / 6 % 2 == 0) ? 160 : 90));

    private static (byte, byte, byte) Checker(int x, int y, int cell) =>
        ((x / cell + y / cell) % 2 == 0 ? ((byte)(x * 37 % 256), (byte)200, (byte)(y * 53 % 256)) : ((byte)30, (byte)(x * 11 % 256), (byte)90));

    private static (byte, byte, byte) Rings(int x, int y, int w, int h)
    {
        int dx = x - w / 2, dy = y - h / 2;
        int ring = (dx * dx + dy * dy) / 97 % 3;
        return ring switch { 0 => ((byte)240, (byte)200, (byte)40), 1 => ((byte)30, (byte)60, (byte)140), _ => ((byte)220, (byte)80, (byte)60) };
    }

    /// <summary>The largest rectangle of <paramref name="source"/>'s aspect inside <paramref name="zone"/>, centred.</summary>
    public static RectI Fit(SizeI source, RectI zone)
    {
        long w = zone.Width, h = (long)source.Height * zone.Width / source.Width;
        if (h > zone.Height) { h = zone.Height; w = (long)source.Width * zone.Height / source.Height; }
        return new RectI(zone.X + (int)(zone.Width - w) / 2, zone.Y + (int)(zone.Height - h) / 2, (int)w, (int)h);
    }

    /// <summary>A head unit: four VMs' scanouts of different sizes and layouts fitted into quadrants under label bars.</summary>
    public static uint[] HeadUnit(out SizeI size) => HeadUnit(out size, "cpu");

    /// <summary>The same scene on the renderer named <paramref name="rendererName"/> (see <see cref="RendererFactories"/>).</summary>
    public static uint[] HeadUnit(out SizeI size, string rendererName)
    {
        size = new SizeI(480, 270);
        using var renderer = RendererFactories.Create(rendererName);
        var labels = new LabelRenderer();
        var surfaces = new[]
        {
            Surface(320, 180, SourceLayout.Xrgb, (x, y) => Bars(x, y, 320, 180)),
            Surface(200, 200, SourceLayout.Bgrx, (x, y) => Gradient(x, y, 200, 200)),
            Surface(160, 120, SourceLayout.Rgbx, (x, y) => Checker(x, y, 10)),
            Surface(256, 144, SourceLayout.Xbgr, (x, y) => Rings(x, y, 256, 144)),
        };
        (string Text, ColorBgra Bar)[] vms =
        [
            ("CLUSTER  critical", ColorBgra.Opaque(170, 20, 20)),
            ("IVI  normal", ColorBgra.Opaque(20, 90, 170)),
            ("third-party apps  untrusted", ColorBgra.Opaque(90, 90, 90)),
            ("REAR CAMERA", ColorBgra.Opaque(20, 130, 60)),
        ];
        var textures = surfaces.Select(s => renderer.ImportSurface(s.View)).ToList();
        using var target = renderer.CreateTarget(size);
        var pass = renderer.BeginPass(target, All);
        pass.FillRect(size.ToRect(), ColorBgra.Opaque(16, 16, 20), All);
        var labelTextures = new List<ITexture>();
        for (int i = 0; i < 4; i++)
        {
            var zone = new RectI(i % 2 * 240, i / 2 * 135, 240, 135);
            var bar = new RectI(zone.X + 2, zone.Y + 2, zone.Width - 4, 18);
            var content = RectI.FromEdges(zone.X + 2, bar.Bottom, zone.Right - 2, zone.Bottom - 2);
            var zoneClip = new Region(content);
            pass.DrawTexture(textures[i], surfaces[i].Size.ToRect(), Fit(surfaces[i].Size, content), zoneClip);
            var label = labels.RenderBar(vms[i].Text, vms[i].Bar, ColorBgra.Opaque(255, 255, 255), new SizeI(bar.Width, bar.Height)).CreateTexture(renderer);
            labelTextures.Add(label);
            pass.DrawTexture(label, label.Size.ToRect(), bar, All);
        }
        pass.Submit();
        GC.KeepAlive(surfaces); // the pinned surfaces must outlive the pass (GPU renderers read them in place)
        textures.Concat(labelTextures).ToList().ForEach(t => t.Dispose());
        return RenderTestKit.Read(target);
    }

    /// <summary>Translucent fills, a premultiplied texture with an alpha ramp scaled up and dimmed, a dimmed opaque surface.</summary>
    public static uint[] BlendAndDim(out SizeI size) => BlendAndDim(out size, "cpu");

    /// <summary>The same scene on the renderer named <paramref name="rendererName"/> (see <see cref="RendererFactories"/>).</summary>
    public static uint[] BlendAndDim(out SizeI size, string rendererName)
    {
        size = new SizeI(320, 200);
        using var renderer = RendererFactories.Create(rendererName);
        var background = Surface(320, 200, SourceLayout.Bgrx, (x, y) => Gradient(x, y, 320, 200));
        var checker = Surface(64, 48, SourceLayout.Rgbx, (x, y) => Checker(x, y, 8));
        var spot = new uint[64 * 64];
        for (int y = 0; y < 64; y++)
            for (int x = 0; x < 64; x++)
            {
                int d2 = (x - 32) * (x - 32) + (y - 32) * (y - 32);
                byte a = (byte)Math.Clamp(255 - d2 * 255 / 1024, 0, 255);
                spot[y * 64 + x] = ColorBgra.FromStraight((byte)(x * 4), 255, (byte)(y * 4), a).Value;
            }
        using var bg = renderer.ImportSurface(background.View);
        using var check = renderer.ImportSurface(checker.View);
        using var glow = renderer.CreateTexture(new SizeI(64, 64), spot);
        using var target = renderer.CreateTarget(size);
        var pass = renderer.BeginPass(target, All);
        pass.DrawTexture(bg, new RectI(0, 0, 320, 200), new RectI(0, 0, 320, 200), All);
        pass.DrawTexture(check, new RectI(0, 0, 64, 48), new RectI(180, 100, 128, 96), All, dim: 96);
        pass.FillRect(new RectI(20, 20, 120, 90), ColorBgra.FromStraight(255, 0, 0, 128), All);
        pass.FillRect(new RectI(70, 50, 120, 90), ColorBgra.FromStraight(0, 255, 0, 128), All);
        pass.FillRect(new RectI(45, 80, 120, 90), ColorBgra.FromStraight(0, 0, 255, 128), All);
        pass.DrawTexture(glow, new RectI(0, 0, 64, 64), new RectI(150, 10, 128, 128), All);
        pass.DrawTexture(glow, new RectI(16, 16, 32, 32), new RectI(230, 120, 77, 61), All, dim: 160);
        pass.Submit();
        GC.KeepAlive(background);
        GC.KeepAlive(checker);
        return RenderTestKit.Read(target);
    }

    /// <summary>A full first frame, then a second frame with two damage rects and multi-rect clips: only their overlap changes.</summary>
    public static uint[] ClipAndDamage(out SizeI size) => ClipAndDamage(out size, "cpu");

    /// <summary>The same scene on the renderer named <paramref name="rendererName"/> (see <see cref="RendererFactories"/>).</summary>
    public static uint[] ClipAndDamage(out SizeI size, string rendererName)
    {
        size = new SizeI(320, 200);
        using var renderer = RendererFactories.Create(rendererName);
        var checker = Surface(40, 25, SourceLayout.Xbgr, (x, y) => Checker(x, y, 5));
        var bars = Surface(320, 180, SourceLayout.Xrgb, (x, y) => Bars(x, y, 320, 180));
        using var check = renderer.ImportSurface(checker.View);
        using var bar = renderer.ImportSurface(bars.View);
        using var target = renderer.CreateTarget(size);
        var first = renderer.BeginPass(target, All);
        first.DrawTexture(check, new RectI(0, 0, 40, 25), size.ToRect(), All);
        first.Submit();
        var second = renderer.BeginPass(target, new Region([new RectI(10, 10, 200, 80), new RectI(100, 120, 210, 70)]));
        second.DrawTexture(bar, new RectI(0, 0, 320, 180), size.ToRect(), new Region([new RectI(0, 0, 150, 200), new RectI(180, 100, 140, 100)]));
        second.FillRect(new RectI(60, 40, 200, 130), ColorBgra.FromStraight(255, 255, 255, 100), new Region([new RectI(60, 40, 60, 130), new RectI(200, 40, 60, 130)]));
        second.Submit();
        GC.KeepAlive(checker);
        GC.KeepAlive(bars);
        return RenderTestKit.Read(target);
    }

    /// <summary>The watchdog fallback: the last frame dimmed with a "NO SIGNAL" overlay, under a label bar whose text is cut to fit.</summary>
    public static uint[] NoSignal(out SizeI size) => NoSignal(out size, "cpu");

    /// <summary>The same scene on the renderer named <paramref name="rendererName"/> (see <see cref="RendererFactories"/>).</summary>
    public static uint[] NoSignal(out SizeI size, string rendererName)
    {
        size = new SizeI(320, 200);
        using var renderer = RendererFactories.Create(rendererName);
        var labels = new LabelRenderer();
        var frame = Surface(320, 180, SourceLayout.Xrgb, (x, y) => Bars(x, y, 320, 180));
        using var last = renderer.ImportSurface(frame.View);
        using var bar = labels.RenderBar("Infotainment VM (normal) - frames stopped 2.0 s ago", ColorBgra.Opaque(20, 90, 170), ColorBgra.Opaque(255, 255, 255), new SizeI(320, 20)).CreateTexture(renderer);
        using var overlay = labels.RenderOverlay("NO SIGNAL", ColorBgra.FromStraight(0, 0, 0, 190), ColorBgra.Opaque(255, 210, 60), new SizeI(180, 48)).CreateTexture(renderer);
        using var target = renderer.CreateTarget(size);
        var pass = renderer.BeginPass(target, All);
        pass.DrawTexture(last, new RectI(0, 0, 320, 180), new RectI(0, 20, 320, 180), All, dim: 80);
        pass.DrawTexture(overlay, new RectI(0, 0, 180, 48), new RectI(70, 86, 180, 48), All);
        pass.DrawTexture(bar, new RectI(0, 0, 320, 20), new RectI(0, 0, 320, 20), All);
        pass.Submit();
        GC.KeepAlive(frame);
        return RenderTestKit.Read(target);
    }

    /// <summary>The same 7x5 picture in each opaque layout, upscaled by a non-integer factor into four cells, plus a 3:1 downscale.</summary>
    public static uint[] LayoutsAndScaling(out SizeI size) => LayoutsAndScaling(out size, "cpu");

    /// <summary>The same scene on the renderer named <paramref name="rendererName"/> (see <see cref="RendererFactories"/>).</summary>
    public static uint[] LayoutsAndScaling(out SizeI size, string rendererName)
    {
        size = new SizeI(320, 200);
        using var renderer = RendererFactories.Create(rendererName);
        using var target = renderer.CreateTarget(size);
        var pass = renderer.BeginPass(target, All);
        var textures = new List<ITexture>();
        var keep = new List<PinnedSurface>();
        SourceLayout[] layouts = [SourceLayout.Bgrx, SourceLayout.Xrgb, SourceLayout.Rgbx, SourceLayout.Xbgr];
        for (int i = 0; i < 4; i++)
        {
            var s = Surface(7, 5, layouts[i], (x, y) => ((byte)(x * 40), (byte)(y * 60), (byte)((x + y) % 2 * 200 + 30)));
            var t = renderer.ImportSurface(s.View);
            keep.Add(s);
            textures.Add(t);
            pass.DrawTexture(t, new RectI(0, 0, 7, 5), new RectI(3 + i % 2 * 100, 3 + i / 2 * 70, 97, 63), All);
        }
        var fine = Surface(300, 192, SourceLayout.Bgrx, (x, y) => (x % 3 == 1 ? (byte)250 : (byte)0, y % 3 == 1 ? (byte)250 : (byte)0, 60));
        var ft = renderer.ImportSurface(fine.View);
        keep.Add(fine);
        textures.Add(ft);
        pass.DrawTexture(ft, new RectI(0, 0, 300, 192), new RectI(210, 3, 100, 64), All);
        pass.DrawTexture(ft, new RectI(0, 0, 30, 20), new RectI(210, 80, 100, 100), All);
        pass.Submit();
        GC.KeepAlive(keep); // the pinned surfaces must outlive the pass (GPU renderers read them in place)
        textures.ForEach(t => t.Dispose());
        return RenderTestKit.Read(target);
    }
}
