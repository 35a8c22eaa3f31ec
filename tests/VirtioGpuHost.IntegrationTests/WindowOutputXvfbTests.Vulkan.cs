using System.Diagnostics;
using Microsoft.Extensions.Logging;
using VirtioGpuHost.Compositor;
using VirtioGpuHost.Compositor.Core.Geometry;
using VirtioGpuHost.Compositor.Core.Layout;
using VirtioGpuHost.Compositor.Core.Scene;
using VirtioGpuHost.Compositor.Outputs.Window;
using VirtioGpuHost.Compositor.Rendering;
using VirtioGpuHost.Compositor.Rendering.Cpu;
using VirtioGpuHost.Compositor.Rendering.Vulkan;
using VirtioGpuHost.Device.Wire;

namespace VirtioGpuHost.IntegrationTests;

/// <summary>The window output with the Vulkan renderer: presentation through a Vulkan swapchain.</summary>
public sealed partial class WindowOutputXvfbTests
{
    /// <summary>A Vulkan renderer made for windows (surface extensions, VK_KHR_swapchain), or a skip saying why not.</summary>
    private static VulkanRenderer VulkanForWindows()
    {
        var renderer = VulkanRenderer.TryCreate(out string reason, new VulkanRendererOptions { InstanceExtensions = WindowOutput.VulkanInstanceExtensions });
        if (renderer is null) Assert.Skip($"no Vulkan device ({reason}; Debian packages libvulkan1 and mesa-vulkan-drivers give lavapipe): cannot test Vulkan swapchain presentation");
        if (!renderer.CanPresent)
        {
            string exts = string.Join(", ", renderer.EnabledInstanceExtensions);
            renderer.Dispose();
            Assert.Skip($"the Vulkan device cannot present (instance extensions enabled: [{exts}], or no VK_KHR_swapchain on the device): cannot test Vulkan swapchain presentation");
        }
        return renderer;
    }

    /// <summary>Skips when the device cannot present to this window; any other reason for not using the swapchain fails.</summary>
    private static void RequireSwapchain(WindowOutput window)
    {
        if (window.Presentation == WindowPresentation.VulkanSwapchain) return;
        if (window.PresentationNote.Contains("cannot present", StringComparison.Ordinal) || window.PresentationNote.Contains("no Vulkan support", StringComparison.Ordinal))
            Assert.Skip($"the Vulkan device cannot present to an X window here: {window.PresentationNote}");
        Assert.Fail($"the window did not present through a Vulkan swapchain: {window.PresentationNote}");
    }

    [Fact]
    public void VulkanWindow_PresentsThroughASwapchain_ExactAt1To1_LetterboxedAfterResize_SurvivesBeingClosed()
    {
        StartXvfb(1024, 768);
        var vulkan = VulkanForWindows();
        using var _v = vulkan;
        var layout = LayoutLoader.Load(Toml, "window-vulkan-test.toml").Layout!;
        var (engine, store, _, _) = Engine(layout, vulkan);
        using var _e = engine; // disposed before the renderer: the swapchain goes before the device
        using var cluster = new TestSource(196, 276, (x, y) => 0xFF000000u | (uint)(x * 0x010203 + y * 0x030201) & 0xFFFFFF);
        using var ivi = new TestSource(196, 276, (x, y) => (x / 14 + y / 14) % 2 == 0 ? 0xFF20A040u : 0xFFE0E000u);
        Show(store, "cluster", cluster);
        long iviGen = Show(store, "ivi", ivi);
        for (int i = 0; i < 3; i++) engine.ComposeFrame();

        var window = Assert.IsType<WindowOutput>(engine.Output("main"));
        RequireSwapchain(window);
        output.WriteLine($"window: {window.GlInfo}");
        Assert.True(window.WaitForDrawn((f, s) => f >= 1 && s == new SizeI(400, 300), TimeSpan.FromSeconds(10)), $"the window never presented frame 1 at 400x300 (drawn {window.Drawn})");
        var rect = window.ScreenRect;
        Assert.Equal(new SizeI(400, 300), new SizeI(rect.Width, rect.Height));

        // 1:1: the swapchain image holds exactly the composed frame (vkCmdCopyBufferToImage).
        var frame = window.Frames.Snapshot();
        ScreenshotMatching(rect, frame, out int mismatches);
        Assert.True(mismatches == 0, $"{mismatches} of {frame.Length} window pixels differ from the composed frame at 1:1 (Vulkan swapchain)");

        // A damage-only guest frame reaches the window.
        ivi.Fill((x, y) => x < 50 && y < 40 ? 0xFFFFFFFFu : (x / 14 + y / 14) % 2 == 0 ? 0xFF20A040u : 0xFFE0E000u);
        store.Flushed(new SurfaceKey("ivi", 0), iviGen, ivi, ivi.Rect, ivi.Format, new VirtioGpuRect(0, 0, 50, 40));
        var report = engine.ComposeFrame();
        Assert.True(window.WaitForDrawn((f, _) => f >= report.Frame, TimeSpan.FromSeconds(10)));
        frame = window.Frames.Snapshot();
        ScreenshotMatching(rect, frame, out mismatches);
        Assert.True(mismatches == 0, $"{mismatches} window pixels differ after a damage-only frame (Vulkan swapchain)");

        // Resized to twice the size: the swapchain is recreated, the frame blitted (nearest) as 2x2 blocks.
        window.Resize(800, 600);
        Assert.True(window.WaitForDrawn((_, s) => s == new SizeI(800, 600), TimeSpan.FromSeconds(10)), $"no present at 800x600 (drawn {window.Drawn})");
        var expected = Scaled(frame, window.Size, Letterbox.Fit(window.Size, new SizeI(800, 600)), new SizeI(800, 600));
        ScreenshotMatching(window.ScreenRect, expected, out mismatches);
        Assert.True(mismatches == 0, $"{mismatches} pixels differ at 2x (Vulkan swapchain, blit)");

        // Wider than the frame's aspect: copied 1:1 into the centre, black bars left and right.
        window.Resize(600, 300);
        Assert.True(window.WaitForDrawn((_, s) => s == new SizeI(600, 300), TimeSpan.FromSeconds(10)), $"no present at 600x300 (drawn {window.Drawn})");
        expected = Scaled(frame, window.Size, new RectI(100, 0, 400, 300), new SizeI(600, 300));
        ScreenshotMatching(window.ScreenRect, expected, out mismatches);
        Assert.True(mismatches == 0, $"{mismatches} pixels differ letterboxed at 600x300 (Vulkan swapchain)");

        // A new frame after the resizes still goes through the (recreated) swapchain.
        ivi.Fill((x, y) => 0xFF3050A0u);
        store.Flushed(new SurfaceKey("ivi", 0), iviGen, ivi, ivi.Rect, ivi.Format, ivi.Rect);
        report = engine.ComposeFrame();
        Assert.True(window.WaitForDrawn((f, _) => f >= report.Frame, TimeSpan.FromSeconds(10)));
        frame = window.Frames.Snapshot();
        expected = Scaled(frame, window.Size, new RectI(100, 0, 400, 300), new SizeI(600, 300));
        ScreenshotMatching(window.ScreenRect, expected, out mismatches);
        Assert.True(mismatches == 0, $"{mismatches} pixels differ for a new frame after resizing (Vulkan swapchain)");
        Assert.Equal(WindowPresentation.VulkanSwapchain, window.Presentation);
        Assert.DoesNotContain(_logs.Lines, l => l.Message.Contains("presentation failed", StringComparison.Ordinal));

        // Closed the way a window manager closes it: logged, no crash, the compositor goes on.
        Assert.True(X11Native.CloseTopLevelWindows(_display) >= 1);
        var sw = Stopwatch.StartNew();
        while (!window.IsClosed && sw.Elapsed < TimeSpan.FromSeconds(10)) Thread.Sleep(20);
        Assert.True(window.IsClosed, "the Vulkan window did not close on WM_DELETE_WINDOW");
        Assert.True(_logs.Contains("the window was closed"), string.Join("\n", _logs.Lines));
        long presented = window.FramesPresented;
        for (int i = 0; i < 3; i++)
        {
            ivi.Fill((x, y) => (uint)(0xFF000000u | (uint)(i * 40 + x)));
            store.Flushed(new SurfaceKey("ivi", 0), iviGen, ivi, ivi.Rect, ivi.Format, ivi.Rect);
            engine.ComposeFrame();
        }
        Assert.Equal(presented + 3, window.FramesPresented);
        Assert.True(engine.SafetyFailures == 0, string.Join("\n", _logs.Warnings));
        Assert.False(vulkan.IsLost);
        var stats = window.Stats;
        output.WriteLine($"400x300 Vulkan window: {stats.FramesCopied} frames presented, {stats.FramesShown} shown, {stats.Redraws} presents; acquire+copy+present {stats.AverageDrawSwapMs:0.000} ms (window thread)");
    }

    /// <summary>
    /// Leaving the swapchain (here: the output moves to another renderer, as after a device
    /// loss) makes the window again with a GL context and goes on the read-back way, exactly.
    /// </summary>
    [Fact]
    public void VulkanWindow_MovedToTheCpuRenderer_FallsBackToReadBack()
    {
        StartXvfb(1024, 768);
        var vulkan = VulkanForWindows();
        using var _v = vulkan;
        var log = new LoggerFactory([_logs]).CreateLogger("window-test");
        using var window = WindowOutput.TryCreate(vulkan, "main", new SizeI(320, 200), 60, new WindowOutputOptions { Display = _display, VSync = false }, log, out var error)
            ?? throw new InvalidOperationException(error);
        RequireSwapchain(window);
        window.Present(1, new Region(new RectI(0, 0, 320, 200)));
        Assert.True(window.WaitForDrawn((f, s) => f >= 1 && s == new SizeI(320, 200), TimeSpan.FromSeconds(10)), $"not presented (drawn {window.Drawn})");

        using var cpu = new CpuRenderer();
        window.Retarget(cpu);
        Assert.Equal(WindowPresentation.ReadBackGl, window.Presentation);
        Assert.False(window.IsClosed);
        var pass = cpu.BeginPass(window.Target, new Region(new RectI(0, 0, 320, 200)));
        pass.FillRect(new RectI(10, 20, 100, 50), new ColorBgra(0xFF336699u), new Region(new RectI(0, 0, 320, 200)));
        pass.Submit();
        window.Present(2, new Region(new RectI(0, 0, 320, 200)));
        Assert.True(window.WaitForDrawn((f, _) => f >= 2, TimeSpan.FromSeconds(10)), $"not drawn after the fallback (drawn {window.Drawn})");
        var frame = window.Frames.Snapshot();
        ScreenshotMatching(window.ScreenRect, frame, out int mismatches);
        Assert.True(mismatches == 0, $"{mismatches} pixels differ after falling back to the read-back way");
        Assert.True(_logs.Contains("the renderer changed to cpu"), string.Join("\n", _logs.Lines));
    }

    /// <summary>
    /// Present time per frame at 1920x1080 under Xvfb, side by side in one run: the Vulkan
    /// renderer through its swapchain, the Vulkan renderer the read-back way (GL texture), and
    /// the CPU renderer the read-back way. Every frame repaints the whole output.
    /// </summary>
    [Fact]
    public void VulkanWindow_1080p_PresentTimes_SwapchainVsReadBack()
    {
        StartXvfb(1920, 1080);
        var vulkan = VulkanForWindows();
        using var _v = vulkan;
        string toml = Toml.Replace("width = 400\n        height = 300", "width = 1920\n        height = 1080", StringComparison.Ordinal)
            .Replace("width = 400\nheight = 300", "width = 1920\nheight = 1080", StringComparison.Ordinal)
            .Replace("rect = [200, 0, 200, 300]", "rect = [960, 0, 960, 1080]", StringComparison.Ordinal)
            .Replace("rect = [0, 0, 200, 300]", "rect = [0, 0, 960, 1080]", StringComparison.Ordinal);
        var layout = LayoutLoader.Load(toml, "window-1080p-vulkan.toml").Layout!;
        var lines = new List<string>
        {
            Measure1080p(layout, vulkan, gpuPresentation: true, "vulkan renderer, Vulkan swapchain", frames: 20, expectSwapchain: true),
            Measure1080p(layout, vulkan, gpuPresentation: false, "vulkan renderer, read-back + GL", frames: 20, expectSwapchain: false),
        };
        using (var cpu = new CpuRenderer())
            lines.Add(Measure1080p(layout, cpu, gpuPresentation: true, "cpu renderer, read-back + GL", frames: 20, expectSwapchain: false));
        foreach (var l in lines) output.WriteLine(l);
    }

    private string Measure1080p(LayoutConfig layout, IRenderer renderer, bool gpuPresentation, string what, int frames, bool expectSwapchain)
    {
        var (engine, store, _, _) = Engine(layout, renderer, gpuPresentation);
        using var _e = engine;
        using var cluster = new TestSource(956, 1056, (x, y) => 0xFF000000u | (uint)(x * 0x010203 + y * 0x030201) & 0xFFFFFF);
        using var ivi = new TestSource(956, 1056, (x, y) => 0xFF20A040u);
        long cGen = Show(store, "cluster", cluster);
        long iGen = Show(store, "ivi", ivi);
        var window = Assert.IsType<WindowOutput>(engine.Output("main"));
        if (expectSwapchain) RequireSwapchain(window);
        else Assert.Equal(WindowPresentation.ReadBackGl, window.Presentation);
        var compose = TimeSpan.Zero;
        var loop = Stopwatch.StartNew();
        for (int i = 0; i < frames; i++)
        {
            store.Flushed(new SurfaceKey("cluster", 0), cGen, cluster, cluster.Rect, cluster.Format, cluster.Rect);
            store.Flushed(new SurfaceKey("ivi", 0), iGen, ivi, ivi.Rect, ivi.Format, ivi.Rect);
            var r = engine.ComposeFrame();
            Assert.True(window.WaitForDrawn((f, _) => f >= r.Frame, TimeSpan.FromSeconds(20)), $"{what}: frame {r.Frame} not shown");
        }
        loop.Stop();
        var frame = window.Frames.Snapshot();
        ScreenshotMatching(window.ScreenRect, frame, out int mismatches);
        Assert.True(mismatches == 0, $"{what}: {mismatches} pixels differ at 1920x1080");
        Assert.Equal(expectSwapchain ? WindowPresentation.VulkanSwapchain : WindowPresentation.ReadBackGl, window.Presentation);
        var s = window.Stats;
        double present = s.AverageCopyMs + s.AverageUploadMs + s.AverageDrawSwapMs;
        return $"1920x1080 {what}: present {present:0.00} ms/frame = frame thread {s.AverageCopyMs:0.00} ms (read-back copy) + window thread {s.AverageUploadMs:0.00} ms (texture upload) + {s.AverageDrawSwapMs:0.00} ms " +
            $"({(expectSwapchain ? "acquire + GPU copy + present" : "draw + swap")}); compose+present loop {loop.Elapsed.TotalMilliseconds / frames:0.0} ms/frame; {s.FramesShown} shown, {s.Redraws} redraws ({window.GlInfo})";
    }
}
