using VirtioGpuHost.TestKit;
using VirtioGpuHost.Compositor.Wayland;

namespace VirtioGpuHost.Wayland.Tests;

/// <summary>Debian's weston demo clients and wayland-info against the server.</summary>
public sealed class RealClientTests
{
    private const int SigInt = 2, SigTerm = 15;

    internal static WaylandWindow WaitForWindow(TestServer s, Func<WaylandWindow, bool> ok, WaylandClientProcess client, int timeoutMs = 15000)
    {
        var deadline = Environment.TickCount64 + timeoutMs;
        while (Environment.TickCount64 < deadline)
        {
            var w = s.Server.Windows.FirstOrDefault(ok);
            if (w is not null) return w;
            if (client.HasExited) break;
            Thread.Sleep(20);
        }
        Assert.Fail($"no matching window; windows: [{string.Join(", ", s.Server.Windows.Select(w => $"{w} {w.Width}x{w.Height} commits {w.Commits}"))}]; client exited: {client.HasExited}; output:\n{client.Output}\nserver log:\n{string.Join("\n", s.Logs.Lines.TakeLast(30))}");
        throw new InvalidOperationException();
    }

    internal static void WaitUntil(Func<bool> cond, string what, int timeoutMs = 10000)
    {
        var deadline = Environment.TickCount64 + timeoutMs;
        while (!cond())
        {
            if (Environment.TickCount64 > deadline) Assert.Fail($"timed out waiting for {what}");
            Thread.Sleep(20);
        }
    }

    [Fact]
    public void WaylandInfo_ListsOurGlobals_AndExitsZero()
    {
        var exe = WaylandClientProcess.Require("wayland-info", "wayland-utils");
        using var s = new TestServer();
        using var c = WaylandClientProcess.Start(exe, "", s.SocketPath);
        Assert.True(c.WaitForExit(15000), "wayland-info did not exit");
        Assert.True(c.ExitCode == 0, $"exit {c.ExitCode}: {c.Output}");
        foreach (var g in new[] { "wl_compositor", "wl_subcompositor", "wl_shm", "wl_output", "wl_seat", "xdg_wm_base", "wl_data_device_manager", "wp_viewporter", "wp_presentation" })
            Assert.Contains($"'{g}'", c.Output);
        Assert.Contains("1920", c.Output); // the output's mode
    }

    [Fact]
    public void SimpleShm_AnimatesWithFrameCallbacks_BuffersReleased_StopsOnSigint()
    {
        var exe = WaylandClientProcess.Require("weston-simple-shm", "weston");
        using var s = new TestServer(clock: true);
        using var c = WaylandClientProcess.Start(exe, "", s.SocketPath);
        var w = WaitForWindow(s, w => w.Commits >= 10, c);
        Assert.Equal("simple-shm", w.Title);
        Assert.Equal("org.freedesktop.weston.simple-shm", w.AppId);
        Assert.Equal((250, 250), (w.Width, w.Height));
        // Two buffers: without wl_buffer.release it aborts ("Both buffers busy") by the third frame.
        Assert.False(c.HasExited, c.Output);
        c.Signal(SigInt);
        Assert.True(c.WaitForExit(5000), "simple-shm did not stop on SIGINT");
        Assert.Equal(0, c.ExitCode);
        WaitUntil(() => s.Server.ClientCount == 0 && s.Server.Windows.Count == 0, "the client to be gone");
    }

    [Fact]
    public void SimpleDamage_Animates()
    {
        var exe = WaylandClientProcess.Require("weston-simple-damage", "weston");
        using var s = new TestServer(clock: true);
        using var c = WaylandClientProcess.Start(exe, "", s.SocketPath);
        var w = WaitForWindow(s, w => w.Commits >= 10, c);
        Assert.True(w.Width > 0 && w.Height > 0);
        c.Signal(SigTerm);
        Assert.True(c.WaitForExit(5000), "simple-damage did not stop on SIGTERM");
        WaitUntil(() => s.Server.ClientCount == 0 && s.Server.Windows.Count == 0, "the client to be gone");
    }

    [Fact]
    public void Flower_DrawsItsFlower()
    {
        var exe = WaylandClientProcess.Require("weston-flower", "weston");
        using var s = new TestServer(clock: true);
        using var c = WaylandClientProcess.Start(exe, "", s.SocketPath);
        var w = WaitForWindow(s, w => w.Commits >= 1 && w.Width > 0, c);
        var stats = PixelStats.Of(w);
        Assert.True(stats.Colours > 10, $"only {stats.Colours} colours");
        // A flower of random translucent colour on a transparent background (argb8888, premultiplied).
        Assert.Equal((200, 200), (w.Width, w.Height));
        Assert.True(stats.Transparent > 1000 && stats.Covered > 1000, $"transparent {stats.Transparent}, covered {stats.Covered}, alpha: {stats.AlphaHistogram}");
        Assert.Equal(0, stats.NotPremultiplied);
        c.Signal(SigTerm);
        Assert.True(c.WaitForExit(5000));
        WaitUntil(() => s.Server.ClientCount == 0 && s.Server.Windows.Count == 0, "the client to be gone");
    }

    [Fact]
    public void Terminal_ShowsAWindowWithText()
    {
        var exe = WaylandClientProcess.Require("weston-terminal", "weston");
        using var s = new TestServer(clock: true);
        using var c = WaylandClientProcess.Start(exe, "--shell=/bin/sh", s.SocketPath);
        var w = WaitForWindow(s, w => w.Commits >= 1 && w.Width > 100, c);
        var stats = PixelStats.Of(w);
        // Text on an opaque background inside the window geometry (the frame's shadow lies outside it).
        Assert.True(stats.Colours > 2, $"only {stats.Colours} colours");
        Assert.True(stats.Opaque > w.Width * w.Height / 2, $"opaque {stats.Opaque} of {w.Width}x{w.Height}; alpha {stats.AlphaHistogram}");
        Assert.True(w.Height > 50, $"{w.Width}x{w.Height}");
        c.Signal(SigTerm);
        Assert.True(c.WaitForExit(5000));
        WaitUntil(() => s.Server.ClientCount == 0 && s.Server.Windows.Count == 0, "the client to be gone");
    }
}

/// <summary>Counts over a window image.</summary>
internal sealed record PixelStats(int Colours, int Transparent, int Opaque, int Covered, int NotPremultiplied, int Width, int Height, string AlphaHistogram)
{
    public static unsafe PixelStats Of(WaylandWindow w)
    {
        var surf = w.Pixels.AcquireCurrent() ?? throw new InvalidOperationException("no pixels");
        try
        {
            var set = new HashSet<uint>();
            int transparent = 0, opaque = 0, covered = 0, notPremultiplied = 0;
            var alpha = new int[256];
            for (uint y = 0; y < surf.Height; y++)
            {
                var row = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, uint>(surf.Memory.AsSpan(surf.Offset + y * surf.Stride, (int)surf.Width * 4));
                foreach (var p in row)
                {
                    set.Add(p);
                    alpha[p >> 24]++;
                    if (p >> 24 == 0) transparent++;
                    if (p >> 24 == 255) opaque++;
                    if (p >> 24 != 0) covered++;
                    uint a = p >> 24;
                    if ((p & 0xff) > a || ((p >> 8) & 0xff) > a || ((p >> 16) & 0xff) > a) notPremultiplied++;
                }
            }
            var hist = string.Join(" ", alpha.Select((n, a) => (n, a)).Where(x => x.n > 0).OrderByDescending(x => x.n).Take(8).Select(x => $"{x.a}:{x.n}"));
            return new PixelStats(set.Count, transparent, opaque, covered, notPremultiplied, (int)surf.Width, (int)surf.Height, hist);
        }
        finally { surf.Memory.Release(); }
    }
}
