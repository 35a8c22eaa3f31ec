using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.RegularExpressions;
using VirtioGpuHost.Compositor.Control;
using VirtioGpuHost.Compositor.Outputs;
using VirtioGpuHost.TestKit;

namespace VirtioGpuHost.IntegrationTests;

/// <summary>
/// `virtio-gpu-host demo --qemu` as a user runs it: four real Linux guests in QEMU 10 (the
/// qemu-guest-e2e recipe) draw the recipe's patterns through the demo's sockets; the output
/// (read through the control API's screenshot) must show each pattern pixel-exact in its zone
/// under its label, the frozen app VM's watchdog must take its zone over, and every QEMU must be
/// gone once the demo stops (SIGTERM).
/// </summary>
[Collection(AloneCollection.Name)]
public sealed partial class DemoQemuTests(ITestOutputHelper output) : IDisposable
{
    [DllImport("libc", SetLastError = true)]
    private static extern int kill(int pid, int sig);

    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private static readonly uint[] Bars = [0xffffff, 0xffff00, 0x00ffff, 0x00ff00, 0xff00ff, 0xff0000, 0x0000ff, 0x000000];

    private static uint Gradient(int x, int y, int w, int h) =>
        (uint)((w > 1 ? x * 255 / (w - 1) : 0) << 16 | (h > 1 ? y * 255 / (h - 1) : 0) << 8 | 128);

    /// <summary>fbbars.c's patterns for head 0 (as check-screen.py defines them), frame k for anim.</summary>
    private static uint Expected(string pattern, int x, int y, int w, int h, uint k)
    {
        if (pattern == "bars") return 0xFF000000 | Bars[x * 8 / w % 8];
        if (pattern == "anim")
        {
            int sx = w > 64 ? (int)(k * 8u % (uint)(w - 64)) : 0, sy = h > 64 ? (h - 64) / 2 : 0;
            if (x >= sx && x < sx + 64 && y >= sy && y < sy + 64)
            {
                int dx = x - sx, dy = y - sy;
                if (dy >= 32) return 0xFF000000 | Bars[k % 8];
                return ((k >> (31 - (dy / 8 * 8 + dx / 8))) & 1) != 0 ? 0xFFFFFFFF : 0xFF000000;
            }
        }
        return 0xFF000000 | Gradient(x, y, w, h);
    }

    /// <summary>
    /// Whether the zone's content shows the pattern exactly; for anim the frame number is read
    /// from the square (its bottom half is a bar colour, whose blue is 0 or 255, never the
    /// gradient's 128) and then every pixel is compared.
    /// </summary>
    private static bool Shows(uint[] pixels, int stride, RectDto c, string pattern, out string detail)
    {
        uint At(int x, int y) => pixels[(c.Y + y) * stride + c.X + x];
        uint k = 0;
        if (pattern == "anim")
        {
            int sy = (c.Height - 64) / 2, sx = -1;
            for (int x = 0; x < c.Width && sx < 0; x++) if ((At(x, sy + 48) & 0xFF) != 128) sx = x;
            if (sx < 0) { detail = "no square"; return false; }
            for (int bit = 0; bit < 32; bit++)
                if ((At(sx + bit % 8 * 8 + 4, sy + bit / 8 * 8 + 4) & 0xFFFFFF) == 0xFFFFFF) k |= 1u << (31 - bit);
        }
        for (int y = 0; y < c.Height; y++)
            for (int x = 0; x < c.Width; x++)
                if (At(x, y) != Expected(pattern, x, y, c.Width, c.Height, k))
                {
                    detail = $"{pattern}{(pattern == "anim" ? $" frame {k}" : "")}: ({x},{y}) is {At(x, y):X8}, expected {Expected(pattern, x, y, c.Width, c.Height, k):X8}";
                    return false;
                }
        detail = pattern == "anim" ? $"anim frame {k}" : pattern;
        return true;
    }

    [GeneratedRegex(@"viewer: (http://127\.0\.0\.1:\d+/)")]
    private static partial Regex ViewerLine();

    [GeneratedRegex(@"first frame from its Linux guest (\d+\.\d) s")]
    private static partial Regex FirstFrameLine();

    [Fact]
    public void DemoQemu_FourLinuxGuests_PatternsExactInTheirZones_WatchdogTakesTheFrozenApp_AllQemusStopOnSigterm()
    {
        string workDir = TestPaths.QemuE2EWorkDir;
        if (!File.Exists(Path.Combine(workDir, "kernel.env")) || !File.Exists(Path.Combine(workDir, "qemu10.env")))
            Assert.Skip($"the qemu-guest-e2e work directory {workDir} is not set up (scripts/setup-deps.sh does it; needs network once): demo --qemu not run");
        string outDir = _dir.File("demo");
        var log = new StringBuilder();
        var psi = new ProcessStartInfo("dotnet")
        {
            ArgumentList = { TestPaths.OurBackend, "demo", "--qemu", "--duration", "300", "--listen", "127.0.0.1:0", "--out", outDir, "--flood-for", "15" },
            RedirectStandardError = true,
            RedirectStandardOutput = true,
            WorkingDirectory = TestPaths.RepoRoot,
            Environment = { ["QE2E_WORKDIR"] = workDir },
        };
        using var demo = Process.Start(psi)!;
        demo.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (log) log.AppendLine(e.Data); };
        demo.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (log) log.AppendLine(e.Data); };
        demo.BeginErrorReadLine();
        demo.BeginOutputReadLine();
        string Log() { lock (log) return log.ToString(); }
        var results = new Dictionary<string, string>();
        try
        {
            var sw = Stopwatch.StartNew();
            string? url = null;
            while (url is null && sw.Elapsed < TimeSpan.FromSeconds(60) && !demo.HasExited)
            {
                if (ViewerLine().Match(Log()) is { Success: true } m) url = m.Groups[1].Value;
                else Thread.Sleep(50);
            }
            Assert.True(url is not null, "no viewer URL:\n" + Log());
            using var client = new ControlClient(url!);
            var layoutVms = ControlRig.Sync(client.GetAsync("api/layout")).Json<LayoutDto>().Vms.ToDictionary(v => v.Name);
            string shot = _dir.File("shot.png");
            // (zone, the pattern its guest draws): the cluster animates, the infotainment shows the
            // gradient once the camera (anim) has stopped preempting it, the app VM draws bars until it freezes.
            var wanted = new Dictionary<string, string> { ["cluster"] = "anim", ["ivi"] = "gradient", ["apps"] = "bars" };
            bool cameraSeen = false, appsFrozen = false;
            while (sw.Elapsed < TimeSpan.FromMinutes(4) && !demo.HasExited && !(wanted.Keys.All(results.ContainsKey) && cameraSeen && appsFrozen))
            {
                var zones = ControlRig.Sync(client.GetAsync("api/zones")).Json<List<ZoneDto>>().ToDictionary(z => z.Name);
                var response = ControlRig.Sync(client.GetAsync("api/outputs/main/screenshot.png"));
                if (!response.Ok) { Thread.Sleep(200); continue; }
                File.WriteAllBytes(shot, response.Body);
                var (size, pixels) = PngFile.Read(shot);
                foreach (var (zone, pattern) in wanted)
                {
                    var z = zones[zone];
                    if (results.ContainsKey(zone) || z.Vm != zone || z.Health != "live" || z.Fallback || z.Preempting) continue;
                    if (!Shows(pixels, size.Width, z.Content, pattern, out var detail)) continue;
                    // The host's label over it, in the VM's label colour (the bar's right end, past the text).
                    uint label = uint.Parse(layoutVms[zone].LabelColor.TrimStart('#'), NumberStyles.HexNumber) | 0xFF000000;
                    uint labelPixel = pixels[(z.Content.Y - 6) * size.Width + z.Content.X + z.Content.Width - 4];
                    Assert.True(labelPixel == label, $"zone {zone}: label bar pixel {labelPixel:X8}, expected {label:X8} ({z.Label})");
                    Assert.Equal(layoutVms[zone].Label, z.Label);
                    results[zone] = $"{detail} at {sw.Elapsed.TotalSeconds:0.0} s";
                    File.Copy(shot, Path.Combine(TestPaths.RepoRoot, "artifacts", "e2e", $"demo-qemu-{zone}.png"), overwrite: true);
                }
                var ivi = zones["ivi"];
                if (ivi.Preempting && ivi.Vm == "camera" && ivi.Health == "live" && Shows(pixels, size.Width, ivi.Content, "anim", out var cam))
                    cameraSeen = results.TryAdd("camera (preempting ivi)", $"{cam} at {sw.Elapsed.TotalSeconds:0.0} s") || cameraSeen;
                var apps = zones["apps"];
                if (results.ContainsKey("apps") && apps.Health == "stale" && apps.Fallback)
                {
                    // The frozen app's zone shows its placeholder (#202020), the label stays the host's.
                    Assert.Equal(0xFF202020u, pixels[(apps.Content.Y + apps.Content.Height / 2) * size.Width + apps.Content.X + apps.Content.Width / 2]);
                    appsFrozen = true;
                }
                Thread.Sleep(150);
            }
            foreach (var r in results) output.WriteLine($"{r.Key}: {r.Value}");
            Assert.True(wanted.Keys.All(results.ContainsKey) && cameraSeen && appsFrozen,
                $"after {sw.Elapsed.TotalSeconds:0} s: exact {string.Join(", ", results.Keys)}; camera seen {cameraSeen}; apps frozen {appsFrozen}\n{Log()}");
            var vms = ControlRig.Sync(client.GetAsync("api/vms")).Json<List<VmDto>>();
            Assert.True(vms.All(v => v.Connected && v.Frames > 0 && v.GuestErrors == 0), string.Join("; ", vms.Select(v => $"{v.Name} {v.Connected} {v.Frames} {v.GuestErrors}")));
            Assert.Equal("live", vms.First(v => v.Name == "cluster").Health);
        }
        finally
        {
            if (!demo.HasExited) kill(demo.Id, 15);
            if (!demo.WaitForExit(TimeSpan.FromSeconds(60))) demo.Kill(true);
            demo.WaitForExit();
            output.WriteLine(Log());
        }
        string text = Log();
        Assert.True(demo.ExitCode == 0, text);
        Assert.Contains("[vm=apps] watchdog: vm \"apps\": Live -> Stale", text);
        Assert.DoesNotContain("safety check failed", text);
        Assert.DoesNotContain("did not stop; killing it", text);
        Assert.Contains("demo: 4 QEMU guests stopped", text);
        foreach (Match m in FirstFrameLine().Matches(text)) output.WriteLine("boot to first frame: " + m.Value);
        Assert.Equal(4, FirstFrameLine().Matches(text).Count);
        // Every QEMU and run-guest.sh of the demo is gone (their command lines name the demo's --out).
        var sw2 = Stopwatch.StartNew();
        List<string> left;
        do
        {
            left = Directory.GetDirectories("/proc").Select(d => (Dir: d, Cmd: ReadCmdline(d))).Where(p => p.Cmd.Contains(outDir, StringComparison.Ordinal)).Select(p => $"{Path.GetFileName(p.Dir)}: {p.Cmd}").ToList();
            if (left.Count == 0) break;
            Thread.Sleep(100);
        } while (sw2.Elapsed < TimeSpan.FromSeconds(5));
        Assert.True(left.Count == 0, "still running after the demo stopped:\n" + string.Join("\n", left));
        foreach (var vm in new[] { "cluster", "ivi", "apps", "camera" })
            Assert.True(File.Exists(Path.Combine(outDir, "qemu-" + vm, "serial.log")), $"no serial.log for {vm}");
    }

    private static string ReadCmdline(string procDir)
    {
        try { return File.ReadAllText(Path.Combine(procDir, "cmdline")).Replace('\0', ' '); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return ""; }
    }
}


/// <summary>
/// Tests that boot four TCG guests at once: they run after every parallel test and alone, so the
/// 2-core CI machine is not shared with the other QEMU tests (a starved guest would miss its window).
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class AloneCollection
{
    public const string Name = "alone (four QEMU guests)";
}
