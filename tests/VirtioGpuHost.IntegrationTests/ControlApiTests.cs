using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using VirtioGpuHost.Compositor;
using VirtioGpuHost.Compositor.Control;
using VirtioGpuHost.Compositor.Core.Layout;
using VirtioGpuHost.Compositor.Outputs;
using VirtioGpuHost.Compositor.Rendering.Cpu;
using VirtioGpuHost.Device.Wire;
using VirtioGpuHost.FrontEnd.Guests;
using VirtioGpuHost.TestKit;

namespace VirtioGpuHost.IntegrationTests;

/// <summary>A running compositor (frame clock, real sockets, simulated guests) with its control server, for the API, browser and metrics tests.</summary>
public sealed class ControlRig : IDisposable
{
    public const uint ClusterColor = 0xFFD50000, IviColor = 0xFF00C853, AppsColor = 0xFF2962FF;
    private readonly TempDir _dir = new();
    private readonly ListLoggerProvider _logs = new();
    private readonly ILoggerFactory _loggers;
    private readonly CpuRenderer _renderer = new();
    private readonly List<GuestAnimation> _guests = new();

    public ControlRig(bool guests = true, string? listen = null)
    {
        _loggers = LoggerFactory.Create(b => b.AddProvider(_logs).SetMinimumLevel(LogLevel.Information));
        var result = LayoutLoader.Load(Toml(), "rig.toml");
        Assert.True(result.Success, result.ToString());
        Layout = result.Layout!;
        Host = new CompositorHost(Layout, _renderer, _loggers);
        Host.Start();
        Assert.True(ListenAddress.TryParse(listen ?? "127.0.0.1:0", out var at, out var error), error);
        Server = ControlServer.StartAsync(Host, at, _loggers).GetAwaiter().GetResult();
        Client = new ControlClient(Server.Url);
        if (guests)
        {
            _guests.Add(GuestAnimation.Start(Layout.Vm("cluster")!.Socket, new SolidScene(ClusterColor), new() { Name = "cluster" }));
            _guests.Add(GuestAnimation.Start(Layout.Vm("ivi")!.Socket, new SolidScene(IviColor), new() { Name = "ivi" }));
            _guests.Add(GuestAnimation.Start(Layout.Vm("apps")!.Socket, new SolidScene(AppsColor), new() { Name = "apps" }));
            foreach (var g in _guests) Assert.True(g.WaitStarted(TimeSpan.FromSeconds(20)), g.Error ?? "a guest did not start");
            Assert.True(WaitUntil(() => Layout.Vms.Take(3).All(v => Host.Engine.Health.TryGetValue(v.Name, out var h) && h == VmHealth.Live)), "the guests never went live");
        }
    }

    public string Dir => _dir.Path;
    public LayoutConfig Layout { get; }
    public CompositorHost Host { get; }
    public ControlServer Server { get; }
    public ControlClient Client { get; }
    public ListLoggerProvider Logs => _logs;
    public HeadlessOutput Output => (HeadlessOutput)Host.Engine.Output("main")!;

    /// <summary>640x360: cluster left (critical), ivi top right (normal), apps bottom right (untrusted).</summary>
    public string Toml(bool swapped = false) => $$"""
        [layout]
        label_height = 20
        border_width = 2

        [[output]]
        name = "main"
        width = 640
        height = 360
        refresh_hz = 30

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
        class = "{{(swapped ? "untrusted" : "normal")}}"

        [[zone]]
        name = "apps"
        output = "main"
        rect = [320, 180, 320, 180]
        class = "{{(swapped ? "normal" : "untrusted")}}"

        [[vm]]
        name = "cluster"
        socket = "{{_dir.Path}}/cluster.sock"
        label = "CLUSTER"
        label_color = "#0D47A1"
        class = "critical"
        frame_period_ms = 500
        fallback = "color:#400000"

        [[vm]]
        name = "ivi"
        socket = "{{_dir.Path}}/ivi.sock"
        label = "INFOTAINMENT"
        label_color = "#1B5E20"
        class = "normal"
        frame_period_ms = 500

        [[vm]]
        name = "apps"
        socket = "{{_dir.Path}}/apps.sock"
        label = "APPS"
        label_color = "#6A1B9A"
        class = "untrusted"
        frame_period_ms = 500
        fallback = "color:#202020"

        [[placement]]
        vm = "cluster"
        zone = "cluster"

        [[placement]]
        vm = "ivi"
        zone = "{{(swapped ? "apps" : "ivi")}}"

        [[placement]]
        vm = "apps"
        zone = "{{(swapped ? "ivi" : "apps")}}"
        """;

    /// <summary>Blocks on a task outside test methods (the tests are synchronous, like the rest of this project's).</summary>
    public static T Sync<T>(Task<T> task) => task.GetAwaiter().GetResult();

    public static bool WaitUntil(Func<bool> condition, double seconds = 20)
    {
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < TimeSpan.FromSeconds(seconds))
        {
            if (condition()) return true;
            Thread.Sleep(25);
        }
        return condition();
    }

    public ControlResponse Get(string path) => Client.GetAsync(path).GetAwaiter().GetResult();
    public ControlResponse Send(HttpMethod method, string path, string? body, string? type = "application/json") => Client.SendAsync(method, path, body, type).GetAwaiter().GetResult();

    public static uint[] DecodePng(byte[] png, out int width, out int height)
    {
        var path = Path.GetTempFileName();
        try
        {
            File.WriteAllBytes(path, png);
            var (size, pixels) = PngFile.Read(path);
            width = size.Width;
            height = size.Height;
            return pixels;
        }
        finally { File.Delete(path); }
    }

    public void Dispose()
    {
        foreach (var g in _guests) g.Dispose();
        Client.Dispose();
        Server.Dispose();
        Host.Dispose();
        _renderer.Dispose();
        _loggers.Dispose();
        _dir.Dispose();
    }

    public sealed class SolidScene(uint color) : IGuestScene
    {
        public TimeSpan FrameInterval => TimeSpan.FromMilliseconds(50);

        public VirtioGpuRect? Paint(Span<uint> pixels, int width, int height, long frame, TimeSpan elapsed)
        {
            if (frame == 0) pixels.Fill(color);
            return new VirtioGpuRect(0, 0, (uint)width, (uint)height);
        }
    }
}

/// <summary>The control API's contract: every endpoint, bad requests, fuzzed bodies, preemption rules, metrics.</summary>
public sealed class ControlApiTests(ITestOutputHelper output)
{
    private static JsonElement Json(ControlResponse r)
    {
        Assert.True(r.Ok, $"{r.Status}: {r.Text}");
        Assert.StartsWith("application/json", r.ContentType);
        return JsonDocument.Parse(r.Body).RootElement;
    }

    private static void AssertError(ControlResponse r, int status, string contains)
    {
        Assert.True(r.Status == status, $"expected {status}, got {r.Status}: {r.Text}");
        var e = r.Error();
        Assert.Equal(status, e.Status);
        Assert.Contains(contains, e.Error, StringComparison.Ordinal);
    }

    [Fact]
    public void EveryEndpoint_AnswersWithTheLiveState()
    {
        using var rig = new ControlRig();
        var sw = Stopwatch.StartNew();
        var vms = rig.Get("api/vms").Json<List<VmDto>>();
        output.WriteLine($"GET /api/vms (first): {sw.Elapsed.TotalMilliseconds:0.0} ms");
        Assert.Equal(["cluster", "ivi", "apps"], vms.Select(v => v.Name));
        Assert.All(vms, v => { Assert.True(v.Connected); Assert.Equal("live", v.Health); Assert.True(v.Commands > 0); Assert.True(v.Resources >= 1); Assert.True(v.HostMemoryBytes > 0); });
        Assert.True(ControlRig.WaitUntil(() => rig.Get("api/vms/cluster").Json<VmDto>().Fps > 5), "no fps for the cluster");
        var cluster = rig.Get("api/vms/cluster").Json<VmDto>();
        Assert.Equal("critical", cluster.Class);
        Assert.NotEmpty(cluster.FpsHistory);
        Assert.True(cluster.LatencyMs > 0 && cluster.LatencyMs < 1000, $"latency {cluster.LatencyMs} ms");

        var surfaces = rig.Get("api/surfaces").Json<List<SurfaceDto>>();
        var s = Assert.Single(surfaces, x => x.Vm == "cluster");
        Assert.True(s.Enabled);
        Assert.Equal((316, 336), (s.Width, s.Height));
        Assert.Equal(["cluster"], s.Zones);

        var zones = rig.Get("api/zones").Json<List<ZoneDto>>();
        Assert.Equal(["cluster", "ivi", "apps"], zones.Select(z => z.Name));
        var cz = zones[0];
        Assert.Equal(("critical", true, "cluster", "live", "CLUSTER"), (cz.Class, cz.Shown, cz.Vm, cz.Health, cz.Label));
        Assert.Equal(new RectDto(0, 0, 320, 360), cz.Rect);

        var outputs = rig.Get("api/outputs").Json<List<OutputDto>>();
        Assert.Equal("main", Assert.Single(outputs).Name);
        Assert.True(outputs[0].Capturable);

        var layout = rig.Get("api/layout").Json<LayoutDto>();
        Assert.Equal(3, layout.Placements.Count);
        Assert.Equal(20, layout.LabelHeight);
        Assert.Empty(layout.Preemptions);

        var status = rig.Get("api/status").Json<StatusDto>();
        Assert.True(status.Frames > 0);
        Assert.Equal(0, status.SafetyFailures);
        Json(rig.Get("api")).GetProperty("endpoints");

        // Screenshot: a PNG of exactly what the output shows.
        var shot = rig.Get("api/outputs/main/screenshot.png");
        Assert.True(shot.Ok);
        Assert.Equal("image/png", shot.ContentType);
        var pixels = ControlRig.DecodePng(shot.Body, out int w, out int h);
        Assert.Equal((640, 360), (w, h));
        Assert.Equal(ControlRig.ClusterColor, pixels[100 * 640 + 100]);
        Assert.Equal(ControlRig.IviColor, pixels[100 * 640 + 480]);
        Assert.Equal(ControlRig.AppsColor, pixels[280 * 640 + 480]);
        Assert.Equal(rig.Output.Snapshot(), pixels);

        // Frames: long poll returns newer frames; jpeg and png.
        var f1 = rig.Get("api/outputs/main/frame?format=png");
        Assert.True(f1.Ok, f1.Text);
        Assert.Equal("image/png", f1.ContentType);
        var jpeg = rig.Get("api/outputs/main/frame?format=jpeg");
        Assert.Equal("image/jpeg", jpeg.ContentType);
        Assert.Equal(0xFF, jpeg.Body[0]);
        Assert.Equal(0xD8, jpeg.Body[1]);

        // MJPEG stream: the first part arrives with its headers.
        using (var http = new HttpClient { BaseAddress = new Uri(rig.Server.Url) })
        using (var resp = ControlRig.Sync(http.GetAsync("api/outputs/main/stream", HttpCompletionOption.ResponseHeadersRead)))
        {
            Assert.Equal("multipart/x-mixed-replace", resp.Content.Headers.ContentType!.MediaType);
            using var stream = resp.Content.ReadAsStream();
            var buf = new byte[256];
            int n = stream.ReadAtLeast(buf, 64, throwOnEndOfStream: false);
            Assert.StartsWith("--vghframe\r\nContent-Type: image/jpeg", Encoding.ASCII.GetString(buf, 0, n));
        }

        // The viewer page.
        var page = rig.Get("");
        Assert.Contains("VirtioGpuHost viewer", page.Text);
        Assert.Equal(0, rig.Host.Engine.SafetyFailures);
    }

    [Fact]
    public void BadRequests_Get4xxWithAMessage_AndChangeNothing()
    {
        using var rig = new ControlRig(guests: false);
        var before = rig.Host.Layout;
        AssertError(rig.Get("api/vms/nope"), 404, "no vm \"nope\"");
        AssertError(rig.Get("api/nothing-here"), 404, "no such endpoint");
        AssertError(rig.Send(HttpMethod.Delete, "api/vms", null), 405, "not allowed");
        AssertError(rig.Get("api/outputs/nope/screenshot.png"), 404, "no output \"nope\"");
        AssertError(rig.Get("api/outputs/main/frame?format=gif"), 400, "format must be jpeg or png");
        AssertError(rig.Get("api/outputs/main/frame?after=banana"), 400, "\"after\"");
        AssertError(rig.Get("api/outputs/main/frame?timeout=999999"), 400, "\"timeout\"");
        AssertError(rig.Send(HttpMethod.Post, "api/zones/ivi/preempt", "{\"vm\": "), 400, "malformed JSON");
        AssertError(rig.Send(HttpMethod.Post, "api/zones/ivi/preempt", "[1,2]"), 400, "expected a JSON object");
        AssertError(rig.Send(HttpMethod.Post, "api/zones/ivi/preempt", "{}"), 400, "\"vm\" is required");
        AssertError(rig.Send(HttpMethod.Post, "api/zones/ivi/preempt", "{\"vm\": 5}"), 400, "\"vm\" must be");
        AssertError(rig.Send(HttpMethod.Post, "api/zones/ivi/preempt", "{\"vm\": \"ivi\", \"scanout\": 99}"), 400, "\"scanout\" must be an integer in 0..15");
        AssertError(rig.Send(HttpMethod.Post, "api/zones/ivi/preempt", "{\"vm\": \"ivi\", \"zone\": \"x\"}"), 400, "unknown field \"zone\"");
        AssertError(rig.Send(HttpMethod.Post, "api/zones/nope/preempt", "{\"vm\": \"ivi\"}"), 404, "no zone \"nope\"");
        AssertError(rig.Send(HttpMethod.Post, "api/zones/ivi/preempt", "{\"vm\": \"ghost\"}"), 404, "no vm \"ghost\"");
        AssertError(rig.Send(HttpMethod.Post, "api/zones/ivi/preempt", "{\"vm\": \"ivi\", \"scanout\": 3}"), 400, "scanouts 0..0");
        AssertError(rig.Send(HttpMethod.Post, "api/zones/ivi/preempt", "{\"vm\": \"ivi\"}"), 409, "already placed");
        AssertError(rig.Send(HttpMethod.Delete, "api/zones/ivi/preempt", null), 404, "has no preemption");
        AssertError(rig.Send(HttpMethod.Put, "api/layout", new string('x', ControlService.MaxBodyBytes + 10), "text/plain"), 413, "too large");
        using (var http = new HttpClient { BaseAddress = new Uri(rig.Server.Url) })
        {
            var resp = ControlRig.Sync(http.PostAsync("api/layout/validate", new ByteArrayContent([0x5b, 0xff, 0xfe, 0x5d])));
            Assert.Equal(HttpStatusCode.BadRequest, resp.StatusCode);
            Assert.Contains("not valid UTF-8", ControlRig.Sync(resp.Content.ReadAsStringAsync()));
        }

        // A bad layout: 422 with the loader's diagnostics (file, line, field), nothing applied.
        var bad = rig.Toml().Replace("rect = [0, 0, 320, 360]", "rect = [0, 0, 0, 360]").Replace("class = \"normal\"\n\n[[zone]]", "class = \"norml\"\n\n[[zone]]");
        var r = rig.Send(HttpMethod.Put, "api/layout?name=bad.toml", bad, "application/toml");
        AssertError(r, 422, "bad.toml: ");
        var diags = r.Error().Diagnostics!;
        Assert.Contains(diags, d => d.Text.StartsWith("bad.toml:14: zone \"cluster\": rect width must be > 0", StringComparison.Ordinal));
        Assert.All(diags, d => Assert.True(d.Line > 0));
        var same = LayoutLoader.Load(bad, "bad.toml").Diagnostics.Select(d => d.ToString()).ToList();
        Assert.Equal(same, diags.Select(d => d.Text).ToList()); // exactly what the file loader says

        // A layout that would point the server at a path outside its socket directories.
        AssertError(rig.Send(HttpMethod.Put, "api/layout", rig.Toml().Replace($"{rig.Dir}/apps.sock", "/etc/passwd"), "text/plain"), 422, "socket \"/etc/passwd\"");
        Assert.Same(before, rig.Host.Layout);
        Assert.True(File.Exists("/etc/passwd"));
    }

    [Fact]
    public void FuzzedBodiesAndLayouts_NeverCrashTheServer_AndRejectedOnesChangeNothing()
    {
        using var rig = new ControlRig(guests: false);
        var before = rig.Host.Layout;
        var rng = new Random(8);
        string valid = rig.Toml();
        int requests = 0, rejected = 0;
        var sw = Stopwatch.StartNew();
        for (int i = 0; i < 300; i++)
        {
            // Malformed JSON for the preempt endpoint.
            var bytes = new byte[rng.Next(0, 64)];
            rng.NextBytes(bytes);
            string json = i % 3 == 0 ? Encoding.Latin1.GetString(bytes) : "{\"vm\": \"ivi\", \"scanout\": 0}"[..rng.Next(0, 28)] + new string('}', rng.Next(0, 3));
            var r1 = rig.Send(HttpMethod.Post, "api/zones/ivi/preempt", json);
            Assert.True(r1.Status is >= 400 and < 500, $"preempt with {json}: {r1.Status} {r1.Text}");
            Assert.False(string.IsNullOrWhiteSpace(r1.Error().Error));

            // A layout with a random mutation: validated only (an accepted one would be applied).
            var chars = valid.ToCharArray();
            for (int k = rng.Next(1, 6); k > 0; k--)
            {
                int at = rng.Next(chars.Length);
                chars[at] = "[]{}\"=,#\n0123456789-abcxyz\\\0é"[rng.Next(29)];
            }
            var r2 = rig.Send(HttpMethod.Post, "api/layout/validate", new string(chars), "text/plain");
            Assert.True(r2.Status is 200 or 422, $"validate: {r2.Status} {r2.Text}");
            if (r2.Status == 422) rejected++;
            else Assert.True(r2.Json<LayoutResultDto>() is { Ok: true, Applied: false });
            var r3 = rig.Send(HttpMethod.Put, "api/layout", new string(chars) + "\n[[nonsense", "text/plain");
            Assert.Equal(422, r3.Status);
            requests += 3;
        }
        output.WriteLine($"{requests} fuzzed requests in {sw.Elapsed.TotalSeconds:0.0} s ({sw.Elapsed.TotalMilliseconds / requests:0.00} ms each), {rejected}/300 mutated layouts rejected");
        Assert.True(rejected > 100);
        Assert.Same(before, rig.Host.Layout);
        Assert.True(rig.Get("api/status").Ok);
        Assert.DoesNotContain(rig.Logs.Lines, l => l.Message.Contains("failed", StringComparison.Ordinal) && l.Message.StartsWith("control:", StringComparison.Ordinal));
    }

    [Fact]
    public void Preempt_FollowsTheLayoutRules_CannotLowerACriticalZone_ReleaseRestores()
    {
        using var rig = new ControlRig();
        // The untrusted app VM may not take the critical cluster, nor the normal ivi zone.
        AssertError(rig.Send(HttpMethod.Post, "api/zones/cluster/preempt", "{\"vm\": \"apps\"}"), 409, "vm \"apps\" is untrusted and cannot be shown in zone \"cluster\", which is critical");
        AssertError(rig.Send(HttpMethod.Post, "api/zones/cluster/preempt", "{\"vm\": \"ivi\"}"), 409, "which is critical");
        AssertError(rig.Send(HttpMethod.Post, "api/zones/ivi/preempt", "{\"vm\": \"apps\"}"), 409, "is untrusted");
        var zones = rig.Get("api/zones").Json<List<ZoneDto>>();
        Assert.Equal("critical", zones[0].Class);
        Assert.Null(zones[0].Preemption);

        // The critical cluster VM may take the normal ivi zone: it shows there while live.
        var p = rig.Send(HttpMethod.Post, "api/zones/ivi/preempt", "{\"vm\": \"cluster\", \"scanout\": 0}").Json<PreemptionDto>();
        Assert.Equal(("ivi", "cluster", 0, 1), (p.Zone, p.Vm, p.Scanout, p.Priority));
        Assert.True(ControlRig.WaitUntil(() => rig.Output.Snapshot()[100 * 640 + 480] == ControlRig.ClusterColor), "the preempting VM never showed in the zone");
        var layout = rig.Get("api/layout").Json<LayoutDto>();
        var pre = Assert.Single(layout.Preemptions);
        Assert.True(pre.Active);
        Assert.Contains(layout.Placements, x => x.FromApi && x.Zone == "ivi" && x.Vm == "cluster" && x.Preempts);
        Assert.Equal("critical", rig.Get("api/zones").Json<List<ZoneDto>>()[0].Class);
        Assert.Equal(ControlRig.ClusterColor, rig.Output.Snapshot()[100 * 640 + 100]); // the cluster zone itself unchanged

        Assert.True(rig.Send(HttpMethod.Delete, "api/zones/ivi/preempt", null).Ok);
        Assert.True(ControlRig.WaitUntil(() => rig.Output.Snapshot()[100 * 640 + 480] == ControlRig.IviColor), "the zone did not return to its VM");
        Assert.Empty(rig.Get("api/layout").Json<LayoutDto>().Preemptions);
        Assert.Equal(0, rig.Host.Engine.SafetyFailures);
    }

    [Fact]
    public void ApplyLayout_Atomic_ValidateDoesNotApply()
    {
        using var rig = new ControlRig();
        var v = rig.Send(HttpMethod.Post, "api/layout/validate", rig.Toml(swapped: true), "application/toml").Json<LayoutResultDto>();
        Assert.True(v.Ok);
        Assert.False(v.Applied);
        Thread.Sleep(200);
        Assert.Equal(ControlRig.IviColor, rig.Output.Snapshot()[100 * 640 + 480]);
        var a = rig.Send(HttpMethod.Put, "api/layout", rig.Toml(swapped: true), "application/toml").Json<LayoutResultDto>();
        Assert.True(a.Applied);
        Assert.True(ControlRig.WaitUntil(() => rig.Output.Snapshot()[100 * 640 + 480] == ControlRig.AppsColor && rig.Output.Snapshot()[280 * 640 + 480] == ControlRig.IviColor), "the swap never showed");
        Assert.Equal("api", rig.Get("api/layout").Json<LayoutDto>().Source);
    }

    [Fact]
    public void Metrics_ScrapeHasPerVmCountersWatchdogAndLatency()
    {
        using var rig = new ControlRig();
        Thread.Sleep(500);
        var sw = Stopwatch.StartNew();
        var r = rig.Get("metrics");
        var first = sw.Elapsed;
        var times = new List<double>();
        for (int i = 0; i < 20; i++)
        {
            sw.Restart();
            Assert.True(rig.Get("metrics").Ok);
            times.Add(sw.Elapsed.TotalMilliseconds);
        }
        times.Sort();
        output.WriteLine($"/metrics: first {first.TotalMilliseconds:0.0} ms, median {times[10]:0.00} ms, max {times[^1]:0.00} ms, {r.Body.Length} bytes");
        string text = rig.Get("metrics").Text;
        Assert.StartsWith("text/plain", r.ContentType);
        foreach (var vm in new[] { "cluster", "ivi", "apps" })
        {
            Assert.Matches($"vgh_vm_frames_total{{vm=\"{vm}\"}} [1-9]", text);
            Assert.Matches($"vgh_vm_commands_total{{vm=\"{vm}\"}} [1-9]", text);
            Assert.Contains($"vgh_vm_guest_errors_total{{vm=\"{vm}\"}} 0", text);
            Assert.Contains($"vgh_vm_watchdog_state{{vm=\"{vm}\",state=\"live\"}} 1", text);
            Assert.Contains($"vgh_vm_watchdog_state{{vm=\"{vm}\",state=\"stale\"}} 0", text);
            Assert.Matches($"vgh_vm_scanout_bytes_copied_per_frame{{vm=\"{vm}\"}} [0-9]", text);
            Assert.Matches($"vgh_vm_flush_to_present_seconds_count{{vm=\"{vm}\"}} [1-9]", text);
            Assert.Contains($"vgh_vm_flush_to_present_seconds_bucket{{vm=\"{vm}\",le=\"0.001\"}}", text);
        }
        Assert.Matches("vgh_compositor_frames_total [1-9]", text);
        Assert.Contains("vgh_compositor_safety_check_failures_total 0", text);
        Assert.True(times[10] < 50, $"median scrape {times[10]} ms");
    }

    [Fact]
    public void UnixSocket_ServesTheSameApi()
    {
        var dir = Directory.CreateTempSubdirectory("vgh-ctl-").FullName;
        try
        {
            using var rig = new ControlRig(guests: false, listen: $"unix:{dir}/control.sock");
            Assert.Equal($"unix:{dir}/control.sock", rig.Server.Url);
            var vms = rig.Get("api/vms").Json<List<VmDto>>();
            Assert.Equal(3, vms.Count);
            Assert.All(vms, v => Assert.False(v.Connected));
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    /// <summary>
    /// Viewers polling frames (a fresh feed lookup each time) while the frame clock runs: no lock
    /// order between the frame thread and requests may deadlock (the frame thread holds the
    /// engine's frame lock while it tells the feeds about a present). Also the viewer's numbers.
    /// </summary>
    [Fact]
    public void ManyViewersPollingFrames_WhileFramesRun_NeitherStallsAndFramesKeepComing()
    {
        using var rig = new ControlRig();
        long framesBefore = rig.Host.Engine.Frames;
        var sw = Stopwatch.StartNew();
        var latencies = new System.Collections.Concurrent.ConcurrentBag<double>();
        int received = 0;
        var clients = Enumerable.Range(0, 4).Select(i => Task.Run(async () =>
        {
            using var c = new ControlClient(rig.Server.Url, TimeSpan.FromSeconds(10));
            long seq = -1;
            while (sw.Elapsed < TimeSpan.FromSeconds(3))
            {
                var r = await c.GetAsync($"api/outputs/main/frame?after={seq}&format={(i % 2 == 0 ? "jpeg" : "png")}");
                Assert.True(r.Ok, r.Text);
                var v = await c.GetAsync("api/vms");
                Assert.True(v.Ok, v.Text);
                Interlocked.Increment(ref received);
                seq++;
            }
        })).ToArray();
        Assert.True(ControlRig.Sync(Task.WhenAll(clients).ContinueWith(t => t.IsCompletedSuccessfully).WaitAsync(TimeSpan.FromSeconds(30))), "viewers stalled (a deadlock between requests and the frame thread?)");
        long composed = rig.Host.Engine.Frames - framesBefore;
        output.WriteLine($"4 viewers x 3 s: {received} frames served ({received / 3.0 / 4:0.0} per viewer per second at 30 Hz output), compositor {composed / sw.Elapsed.TotalSeconds:0.0} fps");
        Assert.True(composed > 30, $"the frame clock stalled: {composed} frames");
        Assert.True(received > 20, $"only {received} frames served");
    }

    [Fact]
    public void ListenAddresses_ParseLoopbackAndUnix_RejectGarbage()
    {
        Assert.True(ListenAddress.TryParse("127.0.0.1:8080", out var a, out _));
        Assert.Equal("127.0.0.1:8080", a.ToString());
        Assert.True(ListenAddress.TryParse("localhost:0", out a, out _));
        Assert.Equal(IPAddress.Loopback, a.Ip);
        Assert.True(ListenAddress.TryParse("[::1]:9", out a, out _));
        Assert.Equal("[::1]:9", a.ToString());
        Assert.True(ListenAddress.TryParse("unix:/run/vgh.sock", out a, out _));
        Assert.Equal("/run/vgh.sock", a.UnixPath);
        foreach (var bad in new[] { "", "8080", "example.com:80", "127.0.0.1:99999", "unix:relative", "127.0.0.1:-1" })
            Assert.False(ListenAddress.TryParse(bad, out _, out var error), bad);
    }
}
