using System.Diagnostics;
using System.Text.Json;
using System.Text.RegularExpressions;
using VirtioGpuHost.Compositor.Control;
using VirtioGpuHost.FrontEnd.Guests;
using VirtioGpuHost.TestKit;

namespace VirtioGpuHost.IntegrationTests;

/// <summary>`ctl` against a running `serve`, and the demo with its viewer, as processes.</summary>
public sealed partial class ControlCliTests(ITestOutputHelper output) : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    [GeneratedRegex(@"(?:control API and viewer on|viewer:) (http://127\.0\.0\.1:\d+/)")]
    private static partial Regex UrlLine();

    private sealed class Proc : IDisposable
    {
        private readonly System.Text.StringBuilder _log = new();
        public Process Process { get; }

        public Proc(params string[] args)
        {
            var psi = new ProcessStartInfo("dotnet") { ArgumentList = { TestPaths.OurBackend }, RedirectStandardError = true, RedirectStandardOutput = true };
            foreach (var a in args) psi.ArgumentList.Add(a);
            Process = Process.Start(psi)!;
            Process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (_log) _log.AppendLine(e.Data); };
            Process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (_log) _log.AppendLine(e.Data); };
            Process.BeginErrorReadLine();
            Process.BeginOutputReadLine();
        }

        public string Log { get { lock (_log) return _log.ToString(); } }

        public string WaitForUrl()
        {
            var sw = Stopwatch.StartNew();
            while (sw.Elapsed < TimeSpan.FromSeconds(60) && !Process.HasExited)
            {
                if (UrlLine().Match(Log) is { Success: true } m) return m.Groups[1].Value;
                Thread.Sleep(50);
            }
            Assert.Fail("no control URL printed:\n" + Log);
            return "";
        }

        public void Dispose()
        {
            if (!Process.HasExited)
            {
                Process.Kill(false); // SIGKILL is fine for a test server; sockets are in a temp dir
                Process.WaitForExit(TimeSpan.FromSeconds(20));
            }
            Process.Dispose();
        }
    }

    private static (int Code, string Out, string Err) Ctl(params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { ArgumentList = { TestPaths.OurBackend, "ctl" }, RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var o = p.StandardOutput.ReadToEndAsync();
        var e = p.StandardError.ReadToEndAsync();
        Assert.True(p.WaitForExit(TimeSpan.FromSeconds(60)), "ctl hung");
        p.WaitForExit();
        return (p.ExitCode, o.Result, e.Result);
    }

    private string Layout() => $$"""
        [[output]]
        name = "main"
        width = 400
        height = 200

        [[zone]]
        name = "a"
        output = "main"
        rect = [0, 0, 200, 200]
        class = "critical"

        [[zone]]
        name = "b"
        output = "main"
        rect = [200, 0, 200, 200]
        class = "normal"

        [[vm]]
        name = "one"
        socket = "{{_dir.Path}}/one.sock"
        label = "ONE"
        label_color = "#0D47A1"
        class = "critical"
        frame_period_ms = 60000

        [[vm]]
        name = "two"
        socket = "{{_dir.Path}}/two.sock"
        label = "TWO"
        label_color = "#1B5E20"
        class = "normal"
        frame_period_ms = 60000

        [[placement]]
        vm = "one"
        zone = "a"

        [[placement]]
        vm = "two"
        zone = "b"
        """;

    [Fact]
    public void Ctl_TablesAndJson_AgainstARunningServe()
    {
        var path = _dir.File("layout.toml");
        File.WriteAllText(path, Layout());
        using var serve = new Proc("serve", "--config", path, "--listen", "127.0.0.1:0");
        string url = serve.WaitForUrl();
        using var one = GuestAnimation.Start(_dir.File("one.sock"), new ControlRig.SolidScene(0xFFD50000), new() { Name = "one" });
        Assert.True(one.WaitStarted(TimeSpan.FromSeconds(20)), one.Error);

        var (code, text, err) = Ctl("--server", url, "vms");
        Assert.True(code == 0, err);
        output.WriteLine(text);
        var lines = text.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Matches(@"^VM\s+LABEL\s+CLASS\s+CONNECTED\s+WATCHDOG\s+FPS", lines[0]);
        Assert.Matches(@"^one\s+ONE\s+critical\s+yes\s+", lines[1]);
        Assert.Matches(@"^two\s+TWO\s+normal\s+no\s+disconnected", lines[2]);

        (code, text, err) = Ctl("--server", url, "vms", "--json");
        Assert.True(code == 0, err);
        var vms = JsonSerializer.Deserialize<List<VmDto>>(text, ControlJson.Options)!;
        Assert.Equal(["one", "two"], vms.Select(v => v.Name));

        foreach (var sub in new[] { "zones", "surfaces", "outputs", "layout", "status" })
        {
            (code, text, err) = Ctl("--server", url, sub);
            Assert.True(code == 0, $"{sub}: {err}");
            output.WriteLine($"$ ctl {sub}\n{text}");
            (code, text, err) = Ctl("--server", url, "--json", sub);
            Assert.True(code == 0, $"{sub} --json: {err}");
            JsonDocument.Parse(text).Dispose();
        }

        string shot = _dir.File("shot.png");
        (code, _, err) = Ctl("--server", url, "screenshot", "main", shot);
        Assert.True(code == 0, err);
        Assert.Equal(400, Compositor.Outputs.PngFile.Read(shot).Size.Width);

        // Refusals: exit 1 and the server's message.
        (code, _, err) = Ctl("--server", url, "preempt", "a", "two");
        Assert.Equal(1, code);
        Assert.Contains("ctl: 409: vm \"two\" is normal and cannot be shown in zone \"a\", which is critical", err);
        (code, text, err) = Ctl("--server", url, "preempt", "b", "one");
        Assert.True(code == 0, err);
        Assert.Contains("zone b: vm one scanout 0 preempts it", text);
        (code, _, err) = Ctl("--server", url, "release", "b");
        Assert.True(code == 0, err);

        var bad = _dir.File("bad.toml");
        File.WriteAllText(bad, Layout().Replace("width = 400", "width = -4"));
        (code, _, err) = Ctl("--server", url, "apply", bad);
        Assert.Equal(1, code);
        Assert.Contains("bad.toml:3: output \"main\": width must be", err);
        (code, text, err) = Ctl("--server", url, "validate", path);
        Assert.True(code == 0, err);
        Assert.Contains("ok (1 outputs, 2 zones, 2 VMs, 2 placements), not applied", text);

        (code, _, err) = Ctl("--server", "http://127.0.0.1:1", "vms");
        Assert.Equal(2, code);
        Assert.Contains("cannot reach the control API", err);
        Assert.False(serve.Process.HasExited, serve.Log);
    }

    [Fact]
    public void Serve_NoControl_ListensNowhere_AndABadListenAddressIsRefused()
    {
        var path = _dir.File("layout.toml");
        File.WriteAllText(path, Layout());
        using (var bad = new Proc("serve", "--config", path, "--listen", "nowhere"))
        {
            Assert.True(bad.Process.WaitForExit(TimeSpan.FromSeconds(60)));
            bad.Process.WaitForExit(); // the timed wait alone does not drain the output readers
            Assert.Equal(1, bad.Process.ExitCode);
            Assert.Contains("--listen \"nowhere\": expected HOST:PORT", bad.Log);
        }
        using var serve = new Proc("serve", "--config", path, "--no-control");
        var sw = Stopwatch.StartNew();
        while (!serve.Log.Contains("vm \"two\" (normal): listening", StringComparison.Ordinal) && sw.Elapsed < TimeSpan.FromSeconds(60)) Thread.Sleep(50);
        Assert.DoesNotContain("control API", serve.Log);
    }

    [Fact]
    public void Demo_PrintsTheViewerUrl_ViewerShowsAllVms_WatchdogCatchesTheFreezingApp()
    {
        using var demo = new Proc("demo", "--flood-for", "1.5", "--out", _dir.File("demo"));
        string url = demo.WaitForUrl();
        Assert.Contains($"viewer: {url}", demo.Log);
        using var client = new ControlClient(url);
        List<VmDto>? vms = null;
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < TimeSpan.FromSeconds(60))
        {
            vms = ControlRig.Sync(client.GetAsync("api/vms")).Json<List<VmDto>>();
            if (vms.First(v => v.Name == "apps").Health == "stale" && vms.Count(v => v.Connected) == 4 && vms.Count(v => v.Frames > 0) == 4) break;
            Thread.Sleep(200);
        }
        Assert.NotNull(vms);
        Assert.Equal(["cluster", "ivi", "apps", "camera"], vms!.Select(v => v.Name));
        Assert.True(vms.All(v => v.Connected && v.Frames > 0), string.Join("; ", vms.Select(v => $"{v.Name} {v.Health} {v.Frames}")) + "\n" + demo.Log);
        Assert.Equal("stale", vms.First(v => v.Name == "apps").Health);
        Assert.Equal("live", vms.First(v => v.Name == "cluster").Health);
        Assert.Contains("vm \"apps\": Live -> Stale", demo.Log);
        var metrics = ControlRig.Sync(client.GetAsync("metrics")).Text;
        Assert.Contains("vgh_vm_watchdog_state{vm=\"apps\",state=\"stale\"} 1", metrics);

        // The viewer page and a frame of the 2560x1080 output, as the page fetches them.
        Assert.Contains("VirtioGpuHost viewer", ControlRig.Sync(client.GetAsync("")).Text);
        var frame = ControlRig.Sync(client.GetAsync("api/outputs/main/frame?format=jpeg"));
        Assert.Equal("image/jpeg", frame.ContentType);
        var zones = ControlRig.Sync(client.GetAsync("api/zones")).Json<List<ZoneDto>>();
        Assert.Contains(zones, z => z.Name == "apps" && z.Health == "stale" && z.Fallback);
        if (File.Exists(Chromium.Path))
        {
            string dom = Chromium.Run(url + "?frames=2", 1400, 900, 3000, "--dump-dom");
            foreach (var vm in new[] { "cluster", "ivi", "apps", "camera" }) Assert.Contains($"data-vm=\"{vm}\"", dom);
            Assert.Contains("class=\"state-stale\">stale</b>", dom); // the apps zone's overlay
            Assert.Contains("data-ready=\"1\"", dom);
        }
        else
        {
            output.WriteLine($"{Chromium.Path} missing: the demo's viewer was checked through the API only");
        }
        Assert.False(demo.Process.HasExited, demo.Log);
        Assert.DoesNotContain("safety check failed", demo.Log);
    }
}
