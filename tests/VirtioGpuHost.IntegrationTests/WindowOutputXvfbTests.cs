using System.Diagnostics;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;
using VirtioGpuHost.Compositor;
using VirtioGpuHost.Compositor.Core.Geometry;
using VirtioGpuHost.Compositor.Core.Layout;
using VirtioGpuHost.Compositor.Core.Scene;
using VirtioGpuHost.Compositor.Outputs;
using VirtioGpuHost.Compositor.Outputs.Window;
using VirtioGpuHost.Compositor.Rendering;
using VirtioGpuHost.Compositor.Rendering.Cpu;
using VirtioGpuHost.Compositor.Rendering.Vulkan;
using VirtioGpuHost.Device.Display;
using VirtioGpuHost.Device.Wire;
using VirtioGpuHost.GuestMemory;
using VirtioGpuHost.TestKit;

namespace VirtioGpuHost.IntegrationTests;

/// <summary>
/// The kiosk window output on a real X server (Xvfb started by the test on a free display;
/// DISPLAY is given to the window output only): the window shows exactly the composed frame
/// (a screenshot of the root window compared with the headless copy of the same frame, pixel
/// for pixel), letterboxes it when resized (exact at 2x and with bars), and survives being
/// closed the way a window manager closes it. Skips, saying why, without Xvfb or libglfw3.
/// With the Vulkan renderer the window presents through a Vulkan swapchain (the target copied
/// into the swapchain image on the GPU): the same checks, plus the present times of both ways
/// at 1920x1080; those skip, saying why, without a Vulkan device that can present.
/// </summary>
public sealed partial class WindowOutputXvfbTests(ITestOutputHelper output) : IDisposable
{
    private readonly ListLoggerProvider _logs = new();
    private Process? _xvfb;
    private string _display = "";

    public void Dispose()
    {
        if (_xvfb is { HasExited: false })
        {
            _xvfb.Kill();
            _xvfb.WaitForExit(5000);
        }
        _xvfb?.Dispose();
    }

    private void StartXvfb(int width, int height)
    {
        const string xvfb = "/usr/bin/Xvfb";
        if (!File.Exists(xvfb)) Assert.Skip($"Xvfb is not installed ({xvfb} missing; Debian package xvfb, installed by scripts/setup-deps.sh): cannot test the window output");
        if (!NativeLibrary.TryLoad("libglfw.so.3", out var glfw)) Assert.Skip("libglfw.so.3 cannot be loaded (Debian package libglfw3, installed by scripts/setup-deps.sh): cannot test the window output");
        NativeLibrary.Free(glfw);
        for (int n = 90 + Environment.ProcessId % 50; n < 400; n++)
        {
            if (File.Exists($"/tmp/.X{n}-lock") || File.Exists($"/tmp/.X11-unix/X{n}")) continue;
            var psi = new ProcessStartInfo(xvfb) { RedirectStandardError = true, RedirectStandardOutput = true };
            foreach (var a in new[] { $":{n}", "-screen", "0", $"{width}x{height}x24", "-nolisten", "tcp" }) psi.ArgumentList.Add(a);
            var p = Process.Start(psi)!;
            p.ErrorDataReceived += (_, _) => { };
            p.BeginErrorReadLine();
            p.BeginOutputReadLine();
            var sw = Stopwatch.StartNew();
            while (sw.Elapsed < TimeSpan.FromSeconds(10) && !p.HasExited && !File.Exists($"/tmp/.X11-unix/X{n}")) Thread.Sleep(50);
            if (!p.HasExited && File.Exists($"/tmp/.X11-unix/X{n}"))
            {
                Thread.Sleep(200);
                _xvfb = p;
                _display = $":{n}";
                return;
            }
            if (!p.HasExited) p.Kill();
            p.Dispose();
        }
        Assert.Fail("no free X display number for Xvfb");
    }

    private const string Toml = """
        [layout]
        label_height = 20
        border_width = 2
        renderer = "cpu"

        [[output]]
        name = "main"
        width = 400
        height = 300
        kind = "window"
        title = "window output test"

        [[zone]]
        name = "cluster"
        output = "main"
        rect = [0, 0, 200, 300]
        z = 100
        class = "critical"

        [[zone]]
        name = "ivi"
        output = "main"
        rect = [200, 0, 200, 300]
        class = "normal"

        [[vm]]
        name = "cluster"
        socket = "/tmp/vgh-win-test/cluster.sock"
        label = "CLUSTER"
        label_color = "#0D47A1"
        class = "critical"
        frame_period_ms = 1000

        [[vm]]
        name = "ivi"
        socket = "/tmp/vgh-win-test/ivi.sock"
        label = "INFOTAINMENT"
        label_color = "#1B5E20"
        class = "normal"
        frame_period_ms = 1000

        [[placement]]
        vm = "cluster"
        zone = "cluster"

        [[placement]]
        vm = "ivi"
        zone = "ivi"
        """;

    private (CompositorEngine Engine, SurfaceStore Store, IRenderer Renderer, Func<TimeSpan> Clock) Engine(LayoutConfig layout, IRenderer? withRenderer = null, bool gpuPresentation = true)
    {
        var now = TimeSpan.Zero;
        var log = new LoggerFactory([_logs]).CreateLogger("window-test");
        var renderer = withRenderer ?? new CpuRenderer();
        var store = new SurfaceStore(() => now);
        var engine = new CompositorEngine(layout, renderer, store, () => now += TimeSpan.FromMilliseconds(16), log, outputFactory: (o, r) =>
        {
            var w = o.Window!;
            return WindowOutput.TryCreate(r, o.Name, new SizeI(o.Width, o.Height), o.RefreshHz,
                new WindowOutputOptions { Display = _display, Title = w.Title, Fullscreen = w.Fullscreen, Resizable = w.Resizable, VSync = false, GpuPresentation = gpuPresentation }, log, out var error)
                ?? throw new InvalidOperationException(error);
        });
        return (engine, store, renderer, () => now);
    }

    private static long Show(SurfaceStore store, string vm, TestSource source)
    {
        long gen = store.Connect(vm);
        store.SetScanout(new SurfaceKey(vm, 0), gen, source, source.Rect, source.Format);
        store.Flushed(new SurfaceKey(vm, 0), gen, source, source.Rect, source.Format, source.Rect);
        return gen;
    }

    /// <summary>Retries the screenshot for a while: a swap reaches the X server asynchronously.</summary>
    private uint[] ScreenshotMatching(RectI rect, uint[] expected, out int mismatches)
    {
        uint[] shot = [];
        mismatches = int.MaxValue;
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < TimeSpan.FromSeconds(5))
        {
            shot = X11Native.Screenshot(_display, rect.X, rect.Y, rect.Width, rect.Height);
            mismatches = shot.Where((p, i) => p != (expected[i] & 0xFFFFFF)).Count();
            if (mismatches == 0) break;
            Thread.Sleep(50);
        }
        return shot;
    }

    private static uint[] Scaled(uint[] frame, SizeI size, RectI dest, SizeI window)
    {
        // Black bars, the frame nearest-neighbour into dest (pixel centres, as GL_NEAREST samples).
        var result = new uint[window.Width * window.Height];
        for (int y = dest.Y; y < dest.Bottom; y++)
            for (int x = dest.X; x < dest.Right; x++)
            {
                int sx = (int)(((x - dest.X) * 2L + 1) * size.Width / (2L * dest.Width));
                int sy = (int)(((y - dest.Y) * 2L + 1) * size.Height / (2L * dest.Height));
                result[y * window.Width + x] = frame[sy * size.Width + sx] & 0xFFFFFF;
            }
        return result;
    }

    [Fact]
    public void Window_ShowsTheComposedFrameExactly_LetterboxesOnResize_AndSurvivesBeingClosed()
    {
        StartXvfb(1024, 768);
        var layout = LayoutLoader.Load(Toml, "window-test.toml").Layout!;
        Assert.Equal(RendererKind.Cpu, layout.Renderer);
        var (engine, store, renderer, _) = Engine(layout);
        using var _r = renderer;
        using var _e = engine;
        using var cluster = new TestSource(196, 276, (x, y) => 0xFF000000u | (uint)(x * 0x010203 + y * 0x030201) & 0xFFFFFF);
        using var ivi = new TestSource(196, 276, (x, y) => (x / 14 + y / 14) % 2 == 0 ? 0xFF20A040u : 0xFFE0E000u);
        Show(store, "cluster", cluster);
        long iviGen = Show(store, "ivi", ivi);
        for (int i = 0; i < 3; i++) engine.ComposeFrame();

        var window = Assert.IsType<WindowOutput>(engine.Output("main"));
        output.WriteLine($"window: {window.GlInfo}");
        Assert.True(window.WaitForDrawn((f, s) => f >= 1 && s == new SizeI(400, 300), TimeSpan.FromSeconds(10)), $"the window never drew frame 1 at 400x300 (drawn {window.Drawn})");
        var rect = window.ScreenRect;
        Assert.Equal(new SizeI(400, 300), new SizeI(rect.Width, rect.Height));

        // 1:1: every pixel of the window is the composed frame's.
        var frame = window.Frames.Snapshot();
        ScreenshotMatching(rect, frame, out int mismatches);
        Assert.True(mismatches == 0, $"{mismatches} of {frame.Length} window pixels differ from the composed frame at 1:1");

        // A new guest frame (damage only) reaches the window.
        ivi.Fill((x, y) => x < 50 && y < 40 ? 0xFFFFFFFFu : (x / 14 + y / 14) % 2 == 0 ? 0xFF20A040u : 0xFFE0E000u);
        store.Flushed(new SurfaceKey("ivi", 0), iviGen, ivi, ivi.Rect, ivi.Format, new VirtioGpuRect(0, 0, 50, 40));
        var report = engine.ComposeFrame();
        Assert.False(report.Outputs[0].Damage.IsEmpty);
        Assert.True(window.WaitForDrawn((f, _) => f >= report.Frame, TimeSpan.FromSeconds(10)));
        frame = window.Frames.Snapshot();
        ScreenshotMatching(rect, frame, out mismatches);
        Assert.True(mismatches == 0, $"{mismatches} window pixels differ after a damage-only frame");

        // Resized to twice the size: each output pixel becomes a 2x2 block, exactly.
        window.Resize(800, 600);
        Assert.True(window.WaitForDrawn((_, s) => s == new SizeI(800, 600), TimeSpan.FromSeconds(10)), $"no redraw at 800x600 (drawn {window.Drawn})");
        var big = window.ScreenRect;
        var expected = Scaled(frame, window.Size, Letterbox.Fit(window.Size, new SizeI(800, 600)), new SizeI(800, 600));
        ScreenshotMatching(big, expected, out mismatches);
        Assert.True(mismatches == 0, $"{mismatches} pixels differ at 2x");

        // Wider than the frame's aspect: centred 1:1 with black bars left and right.
        window.Resize(600, 300);
        Assert.True(window.WaitForDrawn((_, s) => s == new SizeI(600, 300), TimeSpan.FromSeconds(10)), $"no redraw at 600x300 (drawn {window.Drawn})");
        Assert.Equal(new RectI(100, 0, 400, 300), Letterbox.Fit(window.Size, new SizeI(600, 300)));
        expected = Scaled(frame, window.Size, new RectI(100, 0, 400, 300), new SizeI(600, 300));
        ScreenshotMatching(window.ScreenRect, expected, out mismatches);
        Assert.True(mismatches == 0, $"{mismatches} pixels differ letterboxed at 600x300");
        // A compositor output keeps its size whatever the window does.
        Assert.Equal(new SizeI(400, 300), engine.Output("main")!.Size);

        // Closed the way a window manager closes it: logged, no crash, the compositor goes on.
        Assert.True(X11Native.CloseTopLevelWindows(_display) >= 1);
        var sw = Stopwatch.StartNew();
        while (!window.IsClosed && sw.Elapsed < TimeSpan.FromSeconds(10)) Thread.Sleep(20);
        Assert.True(window.IsClosed, "the window did not close on WM_DELETE_WINDOW");
        Assert.True(_logs.Contains("the window was closed"), string.Join("\n", _logs.Lines));
        long presented = window.FramesPresented;
        for (int i = 0; i < 5; i++)
        {
            ivi.Fill((x, y) => (uint)(0xFF000000u | (uint)(i * 40 + x)));
            store.Flushed(new SurfaceKey("ivi", 0), iviGen, ivi, ivi.Rect, ivi.Format, ivi.Rect);
            engine.ComposeFrame();
        }
        Assert.Equal(presented + 5, window.FramesPresented);
        Assert.Equal(0, engine.SafetyFailures);
        var stats = window.Stats;
        output.WriteLine($"400x300 window: {stats.FramesCopied} frames presented, {stats.FramesShown} uploaded, {stats.Redraws} redraws; copy {stats.AverageCopyMs:0.000} ms/frame (frame thread), upload {stats.AverageUploadMs:0.000} ms, draw+swap {stats.AverageDrawSwapMs:0.000} ms (window thread)");
    }

    [Fact]
    public void Window_1080p_PresentTimes()
    {
        StartXvfb(1920, 1080);
        string toml = Toml.Replace("width = 400\n        height = 300", "width = 1920\n        height = 1080", StringComparison.Ordinal)
            .Replace("width = 400\nheight = 300", "width = 1920\nheight = 1080", StringComparison.Ordinal)
            .Replace("rect = [200, 0, 200, 300]", "rect = [960, 0, 960, 1080]", StringComparison.Ordinal)
            .Replace("rect = [0, 0, 200, 300]", "rect = [0, 0, 960, 1080]", StringComparison.Ordinal);
        var result = LayoutLoader.Load(toml, "window-1080p.toml");
        Assert.True(result.Success, result.ToString());
        var (engine, store, renderer, _) = Engine(result.Layout!);
        using var _r = renderer;
        using var _e = engine;
        using var cluster = new TestSource(956, 1056, (x, y) => 0xFF000000u | (uint)(x * 0x010203 + y * 0x030201) & 0xFFFFFF);
        using var ivi = new TestSource(956, 1056, (x, y) => 0xFF20A040u);
        long cGen = Show(store, "cluster", cluster);
        long iGen = Show(store, "ivi", ivi);
        var window = Assert.IsType<WindowOutput>(engine.Output("main"));
        const int frames = 60;
        var compose = Stopwatch.StartNew();
        for (int i = 0; i < frames; i++)
        {
            // Both guests flush whole frames: every output pixel is repainted and presented.
            store.Flushed(new SurfaceKey("cluster", 0), cGen, cluster, cluster.Rect, cluster.Format, cluster.Rect);
            store.Flushed(new SurfaceKey("ivi", 0), iGen, ivi, ivi.Rect, ivi.Format, ivi.Rect);
            var r = engine.ComposeFrame();
            Assert.True(window.WaitForDrawn((f, _) => f >= r.Frame, TimeSpan.FromSeconds(10)), $"frame {r.Frame} not drawn");
        }
        compose.Stop();
        var frame = window.Frames.Snapshot();
        ScreenshotMatching(window.ScreenRect, frame, out int mismatches);
        Assert.True(mismatches == 0, $"{mismatches} pixels differ at 1920x1080");
        var stats = window.Stats;
        output.WriteLine($"1920x1080 window, {frames} full frames (CPU renderer, {window.GlInfo}): compose+present loop {compose.Elapsed.TotalMilliseconds / frames:0.00} ms/frame; " +
            $"copy {stats.AverageCopyMs:0.00} ms/frame (frame thread); upload {stats.AverageUploadMs:0.00} ms, draw+swap {stats.AverageDrawSwapMs:0.00} ms (window thread); {stats.FramesShown} shown");
    }
}

/// <summary>A scanout's pixels in a refcounted block, as the compositor reads guest resources.</summary>
internal sealed class TestSource : IPixelSource, IDisposable
{
    private readonly object _lock = new();
    private NativeBlock? _block;

    public TestSource(int width, int height, Func<int, int, uint> pixel)
    {
        Width = width;
        Height = height;
        _block = NativeBlock.Allocate((ulong)width * (ulong)height * 4);
        Fill(pixel);
    }

    public int Width { get; }
    public int Height { get; }
    public VirtioGpuFormat Format => VirtioGpuFormat.B8G8R8X8Unorm;
    public VirtioGpuRect Rect => new(0, 0, (uint)Width, (uint)Height);

    public void Fill(Func<int, int, uint> pixel)
    {
        var p = MemoryMarshal.Cast<byte, uint>(_block!.AsSpan(0, Width * Height * 4));
        for (int y = 0; y < Height; y++)
            for (int x = 0; x < Width; x++) p[y * Width + x] = pixel(x, y);
    }

    public GpuSurface? AcquireCurrent()
    {
        lock (_lock)
        {
            if (_block is null) return null;
            _block.AddRef();
            return new GpuSurface(_block, 0, (uint)Width, (uint)Height, (uint)Width * 4, Format) { Source = this };
        }
    }

    public void Dispose()
    {
        lock (_lock)
        {
            _block?.Release();
            _block = null;
        }
    }
}
