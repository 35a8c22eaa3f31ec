using VirtioGpuHost.TestKit;
using System.Runtime.InteropServices;
using VirtioGpuHost.Compositor.Wayland;

namespace VirtioGpuHost.Wayland.Tests;

/// <summary>
/// weston-simple-shm paints a deterministic function of the frame callback time we send
/// (clients/simple-shm.c, paint_pixels, weston 10): the window image must equal it exactly.
/// </summary>
public sealed class SimpleShmPixelTests
{
    internal static uint[] Expected(int width, int height, uint time) => TestKit.SimpleShmPattern.Expected(width, height, time);

    private static void AssertImage(uint[] expected, uint[] actual, int width, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            if (expected[i] != actual[i])
                Assert.Fail($"{what}: pixel ({i % width},{i / width}) is 0x{actual[i]:x8}, expected 0x{expected[i]:x8}");
    }

    [Fact]
    public void WindowImage_EqualsPaintPixels_AtEachFrameTime()
    {
        var exe = WaylandClientProcess.Require("weston-simple-shm", "weston");
        using var s = new TestServer(clock: false); // frames only when the test presents one
        using var c = WaylandClientProcess.Start(exe, "", s.SocketPath);
        var w = RealClientTests.WaitForWindow(s, w => w.Commits >= 1, c);
        Assert.Equal((250, 250), (w.Width, w.Height));
        // The first frame is drawn from the configure, with time 0.
        AssertImage(Expected(250, 250, 0), TestKit.PixelSourceReader.ReadAll(w.Pixels), 250, "frame 1 (time 0)");
        Assert.Equal(new(0, 0, 250, 250), w.LastDamage);

        long commits = w.Commits;
        foreach (uint ms in new uint[] { 16, 1234, 98765, 4_000_000_000 })
        {
            s.Server.FramePresented(TimeSpan.FromMilliseconds(ms));
            RealClientTests.WaitUntil(() => w.Commits > commits, $"a commit after the frame at {ms} ms");
            commits = w.Commits;
            AssertImage(Expected(250, 250, ms), TestKit.PixelSourceReader.ReadAll(w.Pixels), 250, $"frame at {ms} ms");
            // simple-shm damages the area inside its 20-pixel padding.
            Assert.Equal(new(20, 20, 210, 210), w.LastDamage);
        }
        // SIGINT only sets a flag; simple-shm sees it when an event wakes it up.
        c.Signal(2);
        s.Server.FramePresented(TimeSpan.FromMilliseconds(5_000_000_000));
        Assert.True(c.WaitForExit(5000), "simple-shm did not exit after SIGINT");
        Assert.Equal(0, c.ExitCode);
    }
}
