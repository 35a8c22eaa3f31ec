using SkiaSharp;
using VirtioGpuHost.Compositor.Core.Geometry;

namespace VirtioGpuHost.Compositor.Rendering.Labels;

/// <summary>
/// Draws trusted labels with SkiaSharp into premultiplied BGRA: a bar (background colour, text
/// left-aligned and vertically centred, shrunk and then ellipsized to fit) and an overlay panel
/// (a rounded panel, usually translucent, with centred text, for "NO SIGNAL"). Results are cached by
/// (kind, text, colours, size), least recently used first out. Thread-safe.
/// </summary>
public sealed class LabelRenderer
{
    private readonly record struct Key(bool Overlay, string Text, ColorBgra Background, ColorBgra Foreground, SizeI Size);

    private readonly int _capacity;
    private readonly Dictionary<Key, LinkedListNode<(Key Key, LabelImage Image)>> _cache = new();
    private readonly LinkedList<(Key Key, LabelImage Image)> _lru = new();
    private readonly Lock _gate = new();

    public LabelRenderer(int capacity = 128)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        _capacity = capacity;
    }

    /// <summary>Images drawn so far (cache misses), for tests and logs.</summary>
    public int Rendered { get; private set; }

    /// <summary>A label bar: <paramref name="background"/> everywhere, <paramref name="text"/> in <paramref name="foreground"/> (both premultiplied).</summary>
    public LabelImage RenderBar(string text, ColorBgra background, ColorBgra foreground, SizeI size) =>
        Get(new Key(false, text, background, foreground, size));

    /// <summary>
    /// Overlay text such as "NO SIGNAL": a rounded panel of <paramref name="panel"/> filling
    /// <paramref name="size"/> (transparent outside its corners) with the text centred.
    /// </summary>
    public LabelImage RenderOverlay(string text, ColorBgra panel, ColorBgra foreground, SizeI size) =>
        Get(new Key(true, text, panel, foreground, size));

    private LabelImage Get(Key key)
    {
        ArgumentNullException.ThrowIfNull(key.Text);
        if (key.Size.IsEmpty || (long)key.Size.Width * key.Size.Height > 1 << 24)
            throw new ArgumentOutOfRangeException(nameof(key), key.Size, "a label needs a positive size up to 16 Mpx");
        lock (_gate)
        {
            if (_cache.TryGetValue(key, out var node))
            {
                _lru.Remove(node);
                _lru.AddFirst(node);
                return node.Value.Image;
            }
            var image = Draw(key);
            Rendered++;
            _cache[key] = _lru.AddFirst((key, image));
            if (_cache.Count > _capacity)
            {
                _cache.Remove(_lru.Last!.Value.Key);
                _lru.RemoveLast();
            }
            return image;
        }
    }

    /// <summary>
    /// Skia draws only coverage (A8 masks of the panel and the text); the colours are applied
    /// here with the renderers' exact integer source-over, so the pixels do not depend on which
    /// SIMD blitters Skia picks for this CPU.
    /// </summary>
    private static LabelImage Draw(Key key)
    {
        var (w, h) = (key.Size.Width, key.Size.Height);
        var pixels = new uint[w * h];
        if (key.Overlay)
        {
            var panel = Coverage(key.Size, canvas => DrawPanel(canvas, key.Size));
            for (int i = 0; i < pixels.Length; i++) pixels[i] = Scale(key.Background.Value, panel[i]);
        }
        else
        {
            pixels.AsSpan().Fill(key.Background.Value);
        }
        var text = Coverage(key.Size, canvas => DrawText(canvas, key));
        for (int i = 0; i < pixels.Length; i++)
            if (text[i] != 0) pixels[i] = Over(Scale(key.Foreground.Value, text[i]), pixels[i]);
        return new LabelImage(key.Size, pixels);
    }

    /// <summary>What <paramref name="draw"/> covers (0..255 per pixel), drawn in white on an A8 surface.</summary>
    private static unsafe byte[] Coverage(SizeI size, Action<SKCanvas> draw)
    {
        var mask = new byte[size.Width * size.Height];
        var info = new SKImageInfo(size.Width, size.Height, SKColorType.Alpha8, SKAlphaType.Premul);
        fixed (byte* p = mask)
        {
            using var surface = SKSurface.Create(info, (nint)p, size.Width)
                ?? throw new InvalidOperationException($"SkiaSharp could not make a {size} mask");
            draw(surface.Canvas);
            surface.Canvas.Flush();
        }
        return mask;
    }

    private static void DrawPanel(SKCanvas canvas, SizeI size)
    {
        using var paint = new SKPaint { Color = SKColors.White, IsAntialias = true };
        float radius = Math.Min(size.Width, size.Height) / 4f;
        canvas.DrawRoundRect(new SKRect(0, 0, size.Width, size.Height), radius, radius, paint);
    }

    private static void DrawText(SKCanvas canvas, Key key)
    {
        if (key.Text.Length == 0) return;
        float h = key.Size.Height, w = key.Size.Width;
        float pad = Math.Max(2f, MathF.Round(h * (key.Overlay ? 0.5f : 0.3f)));
        float room = Math.Max(1f, w - 2 * pad);
        using var font = LabelFonts.Create(MathF.Round(h * (key.Overlay ? 0.5f : 0.6f)));
        // Too long: shrink down to 70 %, then cut with an ellipsis.
        float width = font.MeasureText(key.Text);
        if (width > room) font.Size = Math.Max(1f, MathF.Floor(font.Size * Math.Max(0.7f, room / width)));
        string text = Fit(key.Text, font, room);
        font.GetFontMetrics(out var metrics);
        float baseline = MathF.Round(h / 2 - (metrics.Ascent + metrics.Descent) / 2);
        float x = key.Overlay ? MathF.Round((w - font.MeasureText(text)) / 2) : pad;
        using var paint = new SKPaint { Color = SKColors.White, IsAntialias = true };
        canvas.DrawText(text, x, baseline, SKTextAlign.Left, font, paint);
    }

    /// <summary>A premultiplied colour times coverage/255 (all four channels).</summary>
    private static uint Scale(uint c, byte coverage)
    {
        if (coverage == 255) return c;
        uint r = 0;
        for (int shift = 0; shift < 32; shift += 8)
            r |= (uint)ColorBgra.Mul((int)(c >> shift) & 0xFF, coverage) << shift;
        return r;
    }

    /// <summary>Premultiplied source-over, rounded like the renderers.</summary>
    private static uint Over(uint s, uint d)
    {
        int ia = 255 - (int)(s >> 24);
        uint r = 0;
        for (int shift = 0; shift < 32; shift += 8)
            r |= (uint)Math.Min(255, (int)((s >> shift) & 0xFF) + ColorBgra.Mul((int)(d >> shift) & 0xFF, ia)) << shift;
        return r;
    }

    /// <summary>The longest prefix of <paramref name="text"/> (with "…" when cut) that fits <paramref name="room"/>.</summary>
    private static string Fit(string text, SKFont font, float room)
    {
        if (font.MeasureText(text) <= room) return text;
        for (int n = text.Length - 1; n > 0; n--)
        {
            string candidate = string.Concat(text.AsSpan(0, n).TrimEnd(), "…");
            if (font.MeasureText(candidate) <= room) return candidate;
        }
        return "";
    }
}
