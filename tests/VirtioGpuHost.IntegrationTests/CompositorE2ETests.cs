using System.Collections.Concurrent;
using System.Diagnostics;
using Microsoft.Extensions.Logging;
using VirtioGpuHost.Compositor;
using VirtioGpuHost.Compositor.Core.Geometry;
using VirtioGpuHost.Compositor.Core.Layout;
using VirtioGpuHost.Compositor.Outputs;
using VirtioGpuHost.Compositor.Rendering.Cpu;
using VirtioGpuHost.Compositor.Rendering.Labels;
using VirtioGpuHost.Device.Wire;
using VirtioGpuHost.FrontEnd.Guests;
using VirtioGpuHost.TestKit;

namespace VirtioGpuHost.IntegrationTests;

/// <summary>
/// The compositor serving several VMs at once over real vhost-user sockets, each VM driven by
/// the reference front-end (VMM + guest driver) through guest RAM and virtqueues.
/// </summary>
public sealed class CompositorE2ETests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("vgh-comp-").FullName;
    private readonly ListLoggerProvider _logs = new();
    private readonly ILoggerFactory _loggers;

    public CompositorE2ETests()
    {
        _loggers = LoggerFactory.Create(b => b.AddProvider(_logs).SetMinimumLevel(LogLevel.Information));
    }

    public void Dispose()
    {
        _loggers.Dispose();
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    // Output 640x360: cluster left (critical), ivi top right (normal), apps bottom right
    // (untrusted). Label bar 20, border 2: cluster content 316x336+2+22.
    private static readonly RectI ClusterContent = new(2, 22, 316, 336);
    private static readonly RectI AppsContent = new(322, 202, 316, 156);
    private const uint AppsFallback = 0xFF202020;

    private LayoutConfig Layout(int clusterPeriodMs = 250, int appsPeriodMs = 200) => LoadLayout($$"""
        [layout]
        label_height = 20
        border_width = 2

        [[output]]
        name = "main"
        width = 640
        height = 360
        refresh_hz = 60

        [[zone]]
        name = "cluster"
        output = "main"
        rect = [0, 0, 320, 360]
        z = 100
        class = "critical"

        [[zone]]
        name = "ivi"
        output = "main"
        rect = [320, 0, 320, 180]
        z = 10
        class = "normal"

        [[zone]]
        name = "apps"
        output = "main"
        rect = [320, 180, 320, 180]
        class = "untrusted"

        [[vm]]
        name = "cluster"
        socket = "{{_dir}}/cluster.sock"
        label = "CLUSTER"
        label_color = "#0D47A1"
        class = "critical"
        frame_period_ms = {{clusterPeriodMs}}
        fallback = "color:#400000"

        [[vm]]
        name = "ivi"
        socket = "{{_dir}}/ivi.sock"
        label = "INFOTAINMENT"
        label_color = "#1B5E20"
        class = "normal"
        frame_period_ms = 500
        fallback = "dim"

        [[vm]]
        name = "apps"
        socket = "{{_dir}}/apps.sock"
        label = "APPS"
        label_color = "#6A1B9A"
        class = "untrusted"
        frame_period_ms = {{appsPeriodMs}}
        fallback = "color:#202020"

        [[placement]]
        vm = "cluster"
        zone = "cluster"

        [[placement]]
        vm = "ivi"
        zone = "ivi"

        [[placement]]
        vm = "apps"
        zone = "apps"
        """);

    private static LayoutConfig LoadLayout(string toml)
    {
        var result = LayoutLoader.Load(toml, "e2e.toml");
        Assert.True(result.Success, result.ToString());
        return result.Layout!;
    }

    /// <summary>
    /// Frame k is base(k) XOR a position pattern: an output region showing it can be checked
    /// exactly (every pixel, no shift, no tearing between frames) knowing only base(k).
    /// </summary>
    private sealed class CheckableClusterScene : IGuestScene
    {
        public ConcurrentDictionary<uint, long> Painted { get; } = new();
        public TimeSpan FrameInterval => TimeSpan.FromMilliseconds(33);

        public static uint Base(long frame) => (uint)(frame * 0x9E3779B1L) & 0xFFFFFF;
        public static uint Pattern(int x, int y) => (uint)(x & 0xFF) | (uint)(y & 0xFF) << 8;

        public VirtioGpuRect? Paint(Span<uint> pixels, int width, int height, long frame, TimeSpan elapsed)
        {
            uint b = Base(frame);
            Painted[b] = frame;
            for (int y = 0; y < height; y++)
                for (int x = 0; x < width; x++) pixels[y * width + x] = 0xFF000000 | (b ^ Pattern(x, y));
            return new VirtioGpuRect(0, 0, (uint)width, (uint)height);
        }
    }

    [Fact]
    public void ThreeVms_ClusterExactInEveryFrame_FloodingThenFrozenVmFallsBackWithinTwoPeriods_LabelsIntact()
    {
        var layout = Layout();
        using var renderer = new CpuRenderer();
        using var host = new CompositorHost(layout, renderer, _loggers, new CompositorHostOptions { FrameClock = false });
        host.Start();
        var clusterScene = new CheckableClusterScene();
        var flood = new FloodThenFreezeScene(TimeSpan.FromSeconds(1.5));
        using var cluster = GuestAnimation.Start(layout.Vm("cluster")!.Socket, clusterScene, new() { Name = "cluster" });
        using var ivi = GuestAnimation.Start(layout.Vm("ivi")!.Socket, new InfotainmentScene(), new() { Name = "ivi" });
        using var apps = GuestAnimation.Start(layout.Vm("apps")!.Socket, flood, new() { Name = "apps" });
        foreach (var g in new[] { cluster, ivi, apps }) Assert.True(g.WaitStarted(TimeSpan.FromSeconds(20)), g.Error ?? "a guest did not start");
        Assert.Equal((316u, 336u), cluster.Mode); // the device reported its zone's content size

        var labels = new LabelRenderer();
        var output = (HeadlessOutput)host.Engine.Output("main")!;
        int clusterFramesChecked = 0, floodFrames = 0;
        TimeSpan? staleAt = null;
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < TimeSpan.FromSeconds(30))
        {
            var report = host.Engine.ComposeFrame();
            var main = report.Outputs.Single();
            var pixels = output.Snapshot();
            Assert.All(main.SafetyChecks, c => Assert.True(c.Ok, c.ToString()));

            // The cluster: exactly one painted frame, every pixel, whatever the flood does.
            if (report.Health["cluster"] == VmHealth.Live)
            {
                uint b = pixels[ClusterContent.Y * 640 + ClusterContent.X] & 0xFFFFFF;
                Assert.True(clusterScene.Painted.ContainsKey(b), $"frame {report.Frame}: the cluster shows {b:x6}, a colour it never painted");
                for (int y = 0; y < ClusterContent.Height; y++)
                    for (int x = 0; x < ClusterContent.Width; x++)
                    {
                        uint want = 0xFF000000 | (b ^ CheckableClusterScene.Pattern(x, y));
                        uint got = pixels[(ClusterContent.Y + y) * 640 + ClusterContent.X + x];
                        if (got != want) Assert.Fail($"frame {report.Frame}: cluster pixel ({x},{y}) is {got:x8}, frame {clusterScene.Painted[b]} has {want:x8}");
                    }
                clusterFramesChecked++;
            }
            else if (clusterFramesChecked > 0)
            {
                Assert.Fail($"frame {report.Frame}: the cluster went {report.Health["cluster"]} while another VM misbehaved");
            }

            // Labels: exactly the host's rendering of the plan's text, every frame.
            foreach (var label in main.Plan.Items.OfType<LabelItem>())
            {
                var image = labels.RenderBar(label.Text, label.Background, label.Foreground, new SizeI(label.Destination.Width, label.Destination.Height));
                foreach (var r in label.Clip.Rects)
                    for (int y = r.Y; y < r.Bottom; y++)
                        for (int x = r.X; x < r.Right; x++)
                        {
                            uint want = image.Pixels[(y - label.Destination.Y) * image.Size.Width + x - label.Destination.X];
                            if (pixels[y * 640 + x] != want) Assert.Fail($"frame {report.Frame}: label \"{label.Text}\" pixel ({x},{y}) is {pixels[y * 640 + x]:x8}, not {want:x8}");
                        }
            }

            if (!flood.Frozen) floodFrames++;
            if (report.Transitions.FirstOrDefault(t => t.Vm == "apps" && t.To == VmHealth.Stale) is { } t)
            {
                // Within two periods of the last frame the device saw (the engine's clock).
                var last = host.Store.Get(new VirtioGpuHost.Compositor.Core.Scene.SurfaceKey("apps", 0))!.LastFrame;
                Assert.True(t.At - last <= TimeSpan.FromMilliseconds(400), $"stale {(t.At - last).TotalMilliseconds} ms after the last frame (period 200 ms)");
                Assert.All(Region(pixels, AppsContent), p => Assert.Equal(AppsFallback, p));
                Assert.Contains(main.Plan.Items.OfType<LabelItem>(), l => l.Text.Contains("NO SIGNAL", StringComparison.Ordinal) && l.Zone == "apps");
                staleAt = sw.Elapsed;
            }
            if (staleAt is { } s && sw.Elapsed - s > TimeSpan.FromSeconds(0.5)) break;
            Thread.Sleep(16);
        }
        Assert.NotNull(staleAt);
        Assert.True(flood.Frozen);
        Assert.True(apps.FramesPresented > 100, $"the app VM presented only {apps.FramesPresented} frames: no flood");
        Assert.True(clusterFramesChecked > 30, $"only {clusterFramesChecked} cluster frames were checked");
        Assert.Equal(0, host.Engine.SafetyFailures);
        Assert.Null(cluster.Error);
        Assert.Contains(_logs.Lines, l => l.Message.Contains("vm \"apps\": Live -> Stale", StringComparison.Ordinal));
    }

    [Fact]
    public void VmDisconnectsAndReconnects_ItsZoneFallsBackThenRecovers_OthersUnaffected()
    {
        var layout = Layout();
        using var renderer = new CpuRenderer();
        using var host = new CompositorHost(layout, renderer, _loggers, new CompositorHostOptions { FrameClock = false });
        host.Start();
        using var cluster = GuestAnimation.Start(layout.Vm("cluster")!.Socket, new ClusterScene(), new() { Name = "cluster" });
        var first = GuestAnimation.Start(layout.Vm("apps")!.Socket, new SolidScene(0xFF00C853), new() { Name = "apps" });
        Assert.True(cluster.WaitStarted(TimeSpan.FromSeconds(20)));
        Assert.True(first.WaitStarted(TimeSpan.FromSeconds(20)));
        var output = (HeadlessOutput)host.Engine.Output("main")!;
        Assert.True(ComposeUntil(host, () => Region(output.Snapshot(), AppsContent).All(p => p == 0xFF00C853)), "the app VM never showed");

        first.Dispose(); // the VMM goes away
        Assert.True(ComposeUntil(host, () => host.Engine.Health["apps"] == VmHealth.NoSignal), "no NoSignal after the disconnect");
        Assert.True(ComposeUntil(host, () => Region(output.Snapshot(), AppsContent).All(p => p == AppsFallback)), "the fallback did not show");
        Assert.Equal(VmHealth.Live, host.Engine.Health["cluster"]);

        using var second = GuestAnimation.Start(layout.Vm("apps")!.Socket, new SolidScene(0xFF2962FF), new() { Name = "apps again" });
        Assert.True(second.WaitStarted(TimeSpan.FromSeconds(20)), second.Error);
        Assert.True(ComposeUntil(host, () => Region(output.Snapshot(), AppsContent).All(p => p == 0xFF2962FF)), "the reconnected VM never showed");
        Assert.Equal(VmHealth.Live, host.Engine.Health["apps"]);
        Assert.Equal(2, host.ConnectionsServed("apps"));
        Assert.Equal(0, host.Engine.SafetyFailures);
    }

    private static bool ComposeUntil(CompositorHost host, Func<bool> condition)
    {
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < TimeSpan.FromSeconds(20))
        {
            host.Engine.ComposeFrame();
            if (condition()) return true;
            Thread.Sleep(16);
        }
        return false;
    }

    private static IEnumerable<uint> Region(uint[] pixels, RectI rect, int stride = 640)
    {
        for (int y = rect.Y; y < rect.Bottom; y++)
            for (int x = rect.X; x < rect.Right; x++) yield return pixels[y * stride + x];
    }

    /// <summary>One colour, re-presented 20 times a second (alive, unchanging).</summary>
    private sealed class SolidScene(uint color) : IGuestScene
    {
        public TimeSpan FrameInterval => TimeSpan.FromMilliseconds(50);

        public VirtioGpuRect? Paint(Span<uint> pixels, int width, int height, long frame, TimeSpan elapsed)
        {
            if (frame == 0) pixels.Fill(color);
            return new VirtioGpuRect(0, 0, (uint)width, (uint)height);
        }
    }
}
