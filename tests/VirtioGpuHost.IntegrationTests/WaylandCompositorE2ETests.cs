using System.Diagnostics;
using Microsoft.Extensions.Logging;
using VirtioGpuHost.Compositor;
using VirtioGpuHost.Compositor.Core.Geometry;
using VirtioGpuHost.Compositor.Core.Layout;
using VirtioGpuHost.Compositor.Outputs;
using VirtioGpuHost.Compositor.Rendering.Cpu;
using VirtioGpuHost.FrontEnd;
using VirtioGpuHost.FrontEnd.CrossDomain;
using VirtioGpuHost.TestKit;

namespace VirtioGpuHost.IntegrationTests;

/// <summary>
/// Real Wayland clients in the compositor, placed by the layout like scanouts: weston-simple-shm
/// connected straight to a VM's wayland_socket, and another weston-simple-shm inside a second VM
/// whose messages travel as the guest's would (the guest-side proxy → the reference front-end →
/// the VM's vhost-user socket → a cross-domain context → the built-in Wayland server). Both
/// windows must show in their VMs' zones, under their labels, with exactly the pixels
/// simple-shm paints for the frame times the compositor sent; a third VM's 2D scanout
/// (critical) stays exact throughout.
/// </summary>
public sealed class WaylandCompositorE2ETests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("vgh-wl-").FullName;
    private readonly ListLoggerProvider _logs = new();
    private readonly ILoggerFactory _loggers;
    private TimeSpan _now = TimeSpan.FromSeconds(1);

    public WaylandCompositorE2ETests() => _loggers = LoggerFactory.Create(b => b.AddProvider(_logs).SetMinimumLevel(LogLevel.Information));

    public void Dispose()
    {
        _loggers.Dispose();
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    // 1040x300 output, four zones of 260x300 (label 20, border 2): content 256x276 at x+2, 22.
    // A 250x250 simple-shm window with scale "none" sits centred at (+3, +13) in it.
    private const int ZoneW = 260, ContentW = 256, ContentH = 276, Win = 250;
    private static RectI WindowRect(int zone) => new(zone * ZoneW + 2 + (ContentW - Win) / 2, 22 + (ContentH - Win) / 2, Win, Win);

    private LayoutConfig Layout()
    {
        var toml = $$"""
            [layout]
            label_height = 20
            border_width = 2

            [[output]]
            name = "main"
            width = 1040
            height = 300

            [[zone]]
            name = "cluster"
            output = "main"
            rect = [0, 0, 260, 300]
            class = "critical"

            [[zone]]
            name = "host"
            output = "main"
            rect = [260, 0, 260, 300]
            class = "normal"

            [[zone]]
            name = "guest"
            output = "main"
            rect = [520, 0, 260, 300]
            class = "untrusted"

            [[zone]]
            name = "flower"
            output = "main"
            rect = [780, 0, 260, 300]
            class = "untrusted"

            [[vm]]
            name = "cluster"
            socket = "{{_dir}}/cluster.sock"
            label = "CLUSTER"
            label_color = "#0D47A1"
            class = "critical"
            frame_period_ms = 60000

            [[vm]]
            name = "hostapps"
            socket = "{{_dir}}/hostapps.sock"
            wayland_socket = "{{_dir}}/hostapps-wayland"
            label = "HOST APPS"
            label_color = "#1B5E20"
            class = "normal"
            frame_period_ms = 60000

            [[vm]]
            name = "guest"
            socket = "{{_dir}}/guest.sock"
            label = "GUEST APPS"
            label_color = "#6A1B9A"
            class = "untrusted"
            frame_period_ms = 60000
            host_visible_mib = 16

            [[placement]]
            vm = "cluster"
            zone = "cluster"
            scale = "none"

            [[placement]]
            vm = "hostapps"
            app_id = "*simple-shm"
            zone = "host"
            scale = "none"

            [[placement]]
            vm = "guest"
            app_id = "*simple-shm"
            zone = "guest"
            scale = "none"

            [[placement]]
            vm = "guest"
            app_id = "*flower*"
            zone = "flower"
            scale = "none"
            """;
        var result = LayoutLoader.Load(toml, "wayland-e2e.toml");
        Assert.True(result.Success, result.ToString());
        return result.Layout!;
    }

    [Fact]
    public void SimpleShmAndFlower_DirectAndThroughCrossDomain_ShowPixelExactInTheirVmsZones()
    {
        var shm = WaylandClientProcess.Require("weston-simple-shm");
        var layout = Layout();
        using var renderer = new CpuRenderer();
        using var host = new CompositorHost(layout, renderer, _loggers, new CompositorHostOptions { FrameClock = false, Clock = () => _now });
        host.Start();
        var output = (HeadlessOutput)host.Engine.Output("main")!;

        // The critical cluster: a 2D scanout from the reference front-end.
        using var cluster = GpuVm.Connect(layout.Vm("cluster")!.Socket, new GpuVmOptions { RamSize = 32UL << 20 });
        var fb = FrameBuffer.Allocate(cluster.Ram, ContentW, ContentH, Device.Wire.VirtioGpuFormat.B8G8R8X8Unorm, scattered: true);
        fb.Fill((x, y) => 0xFF000000u | (x * 0x0101u) ^ (y << 16));
        cluster.Driver.SetUpFrameBuffer(1, fb, 0);
        cluster.Driver.Present(1, fb, new Device.Wire.VirtioGpuRect(0, 0, ContentW, ContentH));

        // The guest VM: blob device with cross-domain; its Wayland clients reach us through the proxy.
        using var guest = GpuVm.Connect(layout.Vm("guest")!.Socket, new GpuVmOptions { RamSize = 64UL << 20, Blob = true, HostVisibleSize = 16UL << 20 });
        using var proxy = new WaylandGuestProxy(guest, Path.Combine(_dir, "guest-wayland"));

        using var direct = WaylandClientProcess.Start(shm, "", Path.Combine(_dir, "hostapps-wayland"));
        using var viaGuest = WaylandClientProcess.Start(shm, "", proxy.SocketPath);
        using var flower = WaylandClientProcess.Start(WaylandClientProcess.Require("weston-flower"), "", proxy.SocketPath);

        // Compose frames (16 ms apart on the test's clock); each frame's time is what the
        // clients' frame callbacks carry, so each window shows paint_pixels(one of those times).
        var times = new List<uint> { 0 };
        bool ok = false;
        var sw = Stopwatch.StartNew();
        string lastMismatch = "nothing composed";
        while (sw.Elapsed < TimeSpan.FromSeconds(60) && !ok)
        {
            _now += TimeSpan.FromMilliseconds(16);
            var report = host.Engine.ComposeFrame();
            times.Add((uint)(long)report.At.TotalMilliseconds);
            var snap = output.Snapshot();
            ok = ShowsSimpleShm(snap, 1, times, out var m1) & ShowsSimpleShm(snap, 2, times, out var m2) && FramesAdvanced(host);
            lastMismatch = $"host zone: {m1}; guest zone: {m2}";
            if (!ok) Thread.Sleep(15);
            Assert.False(direct.HasExited, $"the direct client exited:\n{direct.Output}");
            Assert.False(viaGuest.HasExited, $"the guest's client exited:\n{viaGuest.Output}\nproxy: {string.Join("; ", proxy.Errors)}");
        }
        Assert.True(ok, $"{lastMismatch}\nproxy: {proxy.Sends} sends, {proxy.Receives} receives, errors: {string.Join("; ", proxy.Errors)}\nlog:\n{string.Join("\n", _logs.Lines.TakeLast(40).Select(l => l.Message))}");

        // The windows kept animating (frame callbacks are answered by the output clock), and
        // each went through its own path: the guest's through cross-domain SENDs.
        var windows = host.Wayland.Windows;
        Assert.Contains(windows, w => w.Owner == "hostapps" && w.Commits >= 3);
        var guestWindow = Assert.Single(windows, w => w.Owner == "guest" && w.AppId?.EndsWith("simple-shm", StringComparison.Ordinal) == true);
        Assert.True(guestWindow.Commits >= 3, $"the guest's window committed {guestWindow.Commits} times");
        // Every guest commit travelled as (part of) a cross-domain SEND, every frame callback back as a RECEIVE.
        Assert.True(proxy.Sends >= guestWindow.Commits, $"{proxy.Sends} SENDs for {guestWindow.Commits} commits");
        Assert.True(proxy.Receives >= guestWindow.Commits - 1, $"{proxy.Receives} RECEIVEs for {guestWindow.Commits} commits");

        // weston-flower, also through cross-domain: a static picture with a transparent
        // background, shown over the zone's black exactly as its window image (premultiplied).
        var flowerWindow = Assert.Single(host.Wayland.Windows, w => w.Owner == "guest" && w.AppId?.Contains("flower", StringComparison.Ordinal) == true);
        Assert.Equal((200, 200), (flowerWindow.Width, flowerWindow.Height));
        var image = PixelSourceReader.ReadAll(flowerWindow.Pixels);
        Assert.True(image.Distinct().Count() > 10, "the flower window has no picture");
        var fr = new RectI(3 * ZoneW + 2 + (ContentW - 200) / 2, 22 + (ContentH - 200) / 2, 200, 200);
        host.Engine.ComposeFrame();
        var shown = output.Snapshot();
        for (int y = 0; y < 200; y++)
            for (int x = 0; x < 200; x++)
                Assert.True(shown[(fr.Y + y) * 1040 + fr.X + x] == (0xFF000000u | image[y * 200 + x]),
                    $"flower pixel ({x},{y}) shows 0x{shown[(fr.Y + y) * 1040 + fr.X + x]:x8}, its window has 0x{image[y * 200 + x]:x8}");

        // Labels are the host's, not the clients': each zone's bar carries its VM's colour.
        var final = output.Snapshot();
        Assert.Contains(0xFF1B5E20u, Row(final, 260, 10, 260));
        Assert.Contains(0xFF6A1B9Au, Row(final, 520, 10, 260));
        // The critical cluster is untouched by either client.
        for (int y = 0; y < ContentH; y += 7)
            for (int x = 0; x < ContentW; x += 5)
                Assert.Equal(0xFF000000u | ((uint)x * 0x0101u) ^ ((uint)y << 16), final[(22 + y) * 1040 + 2 + x]);
        Assert.Equal(0, host.Engine.SafetyFailures);
    }

    private static bool FramesAdvanced(CompositorHost host) =>
        host.Wayland.Windows.Count(w => w.Commits >= 3) >= 2 && host.Wayland.Windows.Any(w => w.AppId?.Contains("flower", StringComparison.Ordinal) == true);

    private static IEnumerable<uint> Row(uint[] snap, int x0, int y, int width) => snap.Skip(y * 1040 + x0).Take(width);

    /// <summary>Whether zone <paramref name="zone"/> shows simple-shm's picture for one of <paramref name="times"/>, exactly.</summary>
    private static bool ShowsSimpleShm(uint[] snap, int zone, List<uint> times, out string mismatch)
    {
        var r = WindowRect(zone);
        mismatch = "no frame time matches";
        // The picture depends on the time only through time/16, /32, /64: test each distinct one.
        foreach (var t in times.Distinct().Reverse().Take(64))
        {
            var expected = SimpleShmPattern.Expected(Win, Win, t);
            bool all = true;
            for (int y = 0; y < Win && all; y++)
                for (int x = 0; x < Win; x++)
                    if (snap[(r.Y + y) * 1040 + r.X + x] != expected[y * Win + x])
                    {
                        all = false;
                        if (t == times[^1]) mismatch = $"at ({x},{y}) 0x{snap[(r.Y + y) * 1040 + r.X + x]:x8}, expected 0x{expected[y * Win + x]:x8} for t={t}";
                        break;
                    }
            if (all) { mismatch = ""; return true; }
        }
        return false;
    }
}
