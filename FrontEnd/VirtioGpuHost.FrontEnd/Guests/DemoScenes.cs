using VirtioGpuHost.Device.Wire;

namespace VirtioGpuHost.FrontEnd.Guests;

/// <summary>
/// An instrument cluster: a speed dial whose needle sweeps, a rev bar and a gear indicator,
/// redrawn whole every frame (as a cluster's render loop does), at 30 fps.
/// </summary>
public sealed class ClusterScene : IGuestScene
{
    public TimeSpan FrameInterval { get; init; } = TimeSpan.FromMilliseconds(33);

    public VirtioGpuRect? Paint(Span<uint> pixels, int width, int height, long frame, TimeSpan elapsed)
    {
        double t = elapsed.TotalSeconds;
        double speed = 0.5 + 0.5 * Math.Sin(t * 0.8);           // 0..1
        double revs = 0.5 + 0.5 * Math.Sin(t * 2.3 + 1);
        int cx = width / 2, cy = height * 2 / 5;
        int radius = Math.Max(8, Math.Min(width, height) * 3 / 10);
        double needle = Math.PI * (0.75 + 1.5 * speed);         // 135°..405°
        double nx = Math.Cos(needle), ny = Math.Sin(needle);
        uint background = 0xFF0B1016;
        for (int y = 0; y < height; y++)
        {
            var row = pixels.Slice(y * width, width);
            row.Fill(background);
            int dy = y - cy;
            if (Math.Abs(dy) > radius + 4) continue;
            for (int x = Math.Max(0, cx - radius - 4); x < Math.Min(width, cx + radius + 4); x++)
            {
                int dx = x - cx;
                double r = Math.Sqrt(dx * dx + dy * dy);
                if (r > radius - 6 && r < radius)
                {
                    // The scale: ticks every 1/12 of the sweep, brighter ring segments between.
                    double a = Math.Atan2(dy, dx);
                    if (a < 0) a += 2 * Math.PI;
                    double along = ((a - 0.75 * Math.PI) % (2 * Math.PI) + 2 * Math.PI) % (2 * Math.PI) / (1.5 * Math.PI);
                    row[x] = along <= 1 ? (along <= speed ? 0xFF29B6F6 : 0xFF37474F) : background;
                }
                else if (r < radius - 10)
                {
                    // Distance from the needle's line, only on its side of the hub.
                    double along = dx * nx + dy * ny;
                    double across = Math.Abs(dx * ny - dy * nx);
                    if (along > 0 && along < radius - 14 && across < 3) row[x] = 0xFFFF7043;
                    else if (r < 10) row[x] = 0xFFECEFF1;
                }
            }
        }
        // The rev bar under the dial.
        int barY = Math.Min(height - 20, cy + radius + 30), barX = width / 8, barW = width * 3 / 4;
        for (int y = barY; y < Math.Min(height, barY + 14); y++)
        {
            var row = pixels.Slice(y * width, width);
            for (int x = barX; x < barX + barW; x++)
                row[x] = x - barX < barW * revs ? (x - barX > barW * 0.8 ? 0xFFE53935 : 0xFF66BB6A) : 0xFF263238;
        }
        return new VirtioGpuRect(0, 0, (uint)width, (uint)height);
    }
}

/// <summary>
/// An infotainment screen: a static home screen of app tiles drawn once, then only a media
/// progress bar and a clock-like spinner change (small damage rects), at 20 fps.
/// </summary>
public sealed class InfotainmentScene : IGuestScene
{
    private static readonly uint[] TileColors = [0xFF1E88E5, 0xFF43A047, 0xFFFB8C00, 0xFF8E24AA, 0xFF00ACC1, 0xFFE53935, 0xFF3949AB, 0xFF7CB342];

    public TimeSpan FrameInterval { get; init; } = TimeSpan.FromMilliseconds(50);

    public VirtioGpuRect? Paint(Span<uint> pixels, int width, int height, long frame, TimeSpan elapsed)
    {
        int barH = Math.Max(6, height / 40), barY = height - barH * 3, barX = width / 10, barW = width * 8 / 10;
        if (frame == 0)
        {
            for (int y = 0; y < height; y++)
            {
                uint shade = (uint)(0x18 + 0x20 * y / Math.Max(1, height));
                pixels.Slice(y * width, width).Fill(0xFF000000 | shade << 16 | shade << 8 | (shade + 0x10));
            }
            int cols = 4, rows = 2, gap = Math.Max(4, width / 50);
            int tw = (width - gap * (cols + 1)) / cols, th = Math.Max(4, (barY - gap * (rows + 2)) / rows);
            for (int i = 0; i < cols * rows; i++)
            {
                int x0 = gap + i % cols * (tw + gap), y0 = gap + i / cols * (th + gap);
                for (int y = y0; y < Math.Min(height, y0 + th); y++)
                    pixels.Slice(y * width + x0, Math.Min(tw, width - x0)).Fill(TileColors[i]);
            }
            DrawBar(pixels, width, barX, barY, barW, barH, elapsed);
            return new VirtioGpuRect(0, 0, (uint)width, (uint)height);
        }
        DrawBar(pixels, width, barX, barY, barW, barH, elapsed);
        return new VirtioGpuRect((uint)barX, (uint)barY, (uint)barW, (uint)barH);
    }

    private static void DrawBar(Span<uint> pixels, int width, int x0, int y0, int w, int h, TimeSpan elapsed)
    {
        double progress = elapsed.TotalSeconds / 20 % 1;
        for (int y = y0; y < y0 + h; y++)
            for (int x = x0; x < x0 + w; x++)
                pixels[y * width + x] = x - x0 < w * progress ? 0xFFFFFFFF : 0xFF455A64;
    }
}

/// <summary>
/// A misbehaving app VM: for <see cref="FloodFor"/> it presents small random rects as fast as
/// the device takes them (flooding the control queue), then it freezes: still connected, it
/// never presents again. The watchdog must notice, and nobody else may suffer meanwhile.
/// </summary>
public sealed class FloodThenFreezeScene(TimeSpan floodFor, int seed = 1) : IGuestScene
{
    private readonly Random _random = new(seed);

    public TimeSpan FloodFor { get; } = floodFor;

    /// <summary>Whether the scene has frozen (it presents nothing from then on).</summary>
    public bool Frozen { get; private set; }

    public TimeSpan FrameInterval => TimeSpan.Zero;

    public VirtioGpuRect? Paint(Span<uint> pixels, int width, int height, long frame, TimeSpan elapsed)
    {
        if (elapsed >= FloodFor)
        {
            Frozen = true;
            return null;
        }
        if (frame == 0)
        {
            pixels.Fill(0xFF4A148C);
            return new VirtioGpuRect(0, 0, (uint)width, (uint)height);
        }
        int w = Math.Min(width, 8 + _random.Next(56)), h = Math.Min(height, 8 + _random.Next(56));
        int x0 = _random.Next(width - w + 1), y0 = _random.Next(height - h + 1);
        uint color = 0xFF000000 | (uint)_random.Next(0x1000000);
        for (int y = y0; y < y0 + h; y++) pixels.Slice(y * width + x0, w).Fill(color);
        return new VirtioGpuRect((uint)x0, (uint)y0, (uint)w, (uint)h);
    }
}

/// <summary>
/// A rear-view camera that is on for <see cref="OnFor"/> out of every <see cref="Cycle"/>
/// (reverse gear engaged now and then): while on, its scanout is enabled and shows a moving
/// picture at 25 fps; while off, the scanout is disabled, so its preempting placement ends.
/// </summary>
public sealed class CameraScene : IGuestScene
{
    public TimeSpan Cycle { get; init; } = TimeSpan.FromSeconds(12);
    public TimeSpan OnFor { get; init; } = TimeSpan.FromSeconds(4);
    public TimeSpan FirstOn { get; init; } = TimeSpan.FromSeconds(6);

    public TimeSpan FrameInterval => TimeSpan.FromMilliseconds(40);

    public bool ScanoutEnabled(TimeSpan elapsed) => elapsed >= FirstOn && (elapsed - FirstOn).Ticks % Cycle.Ticks < OnFor.Ticks;

    public VirtioGpuRect? Paint(Span<uint> pixels, int width, int height, long frame, TimeSpan elapsed)
    {
        int shift = (int)(elapsed.TotalMilliseconds / 20);
        for (int y = 0; y < height; y++)
        {
            var row = pixels.Slice(y * width, width);
            // Road stripes converging to the horizon, scrolling towards the viewer.
            uint ground = ((y + shift) / 24 % 2 == 0) ? 0xFF5D4037u : 0xFF4E342Eu;
            row.Fill(y < height / 3 ? 0xFF90A4AE : ground);
            if (y >= height / 3)
            {
                int half = (y - height / 3) * width / (2 * Math.Max(1, height));
                int left = Math.Clamp(width / 2 - half - 4, 0, width - 1), right = Math.Clamp(width / 2 + half, 0, width - 4);
                row.Slice(left, 4).Fill(0xFFFFEB3B);
                row.Slice(right, 4).Fill(0xFFFFEB3B);
            }
        }
        return new VirtioGpuRect(0, 0, (uint)width, (uint)height);
    }
}
