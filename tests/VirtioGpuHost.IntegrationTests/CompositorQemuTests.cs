using System.Diagnostics;
using Microsoft.Extensions.Logging;
using VirtioGpuHost.Compositor;
using VirtioGpuHost.Compositor.Core.Geometry;
using VirtioGpuHost.Compositor.Core.Layout;
using VirtioGpuHost.Compositor.Outputs;
using VirtioGpuHost.Compositor.Rendering.Cpu;
using VirtioGpuHost.Compositor.Rendering.Labels;
using VirtioGpuHost.TestKit;

namespace VirtioGpuHost.IntegrationTests;

/// <summary>
/// Two real Linux guests in QEMU 10 (tests/e2e/qemu-guest-e2e) composited into one headless
/// output: each QEMU's vhost-user-gpu device connects to its VM's socket of the compositor,
/// each guest's kernel driver modesets to its zone's size and draws its pattern, and the output
/// must show both patterns pixel-exact in their zones under their trusted labels.
/// </summary>
public sealed class CompositorQemuTests(ITestOutputHelper output) : IDisposable
{
    private static string Recipe => Path.Combine(TestPaths.RepoRoot, "tests", "e2e", "qemu-guest-e2e");
    private static string WorkDir => TestPaths.QemuE2EWorkDir;
    private readonly string _sockets = Directory.CreateTempSubdirectory("vgh-q-").FullName;

    public void Dispose()
    {
        try { Directory.Delete(_sockets, recursive: true); } catch (IOException) { }
    }

    private static readonly uint[] Bars = [0xffffff, 0xffff00, 0x00ffff, 0x00ff00, 0xff00ff, 0xff0000, 0x0000ff, 0x000000];

    /// <summary>fbbars.c's patterns for scanout 0 (as check-screen.py defines them).</summary>
    private static uint Expected(string pattern, int x, int y, int w, int h) => 0xFF000000 | (pattern == "bars"
        ? Bars[x * 8 / w % 8]
        : (uint)((w > 1 ? x * 255 / (w - 1) : 0) << 16 | (h > 1 ? y * 255 / (h - 1) : 0) << 8 | 128));

    [Fact]
    public void TwoQemuGuests_CompositedIntoOneOutput_BothPatternsExactInTheirZones_WithLabels()
    {
        if (!File.Exists(Path.Combine(WorkDir, "kernel.env")) || !File.Exists(Path.Combine(WorkDir, "qemu10.env")))
            Assert.Skip($"the qemu-guest-e2e work directory {WorkDir} is not set up (scripts/setup-deps.sh does it; needs network once)");
        var result = LayoutLoader.Load($$"""
            [[output]]
            name = "main"
            width = 1280
            height = 480

            [[zone]]
            name = "left"
            output = "main"
            rect = [0, 0, 640, 480]
            class = "critical"

            [[zone]]
            name = "right"
            output = "main"
            rect = [640, 0, 640, 480]
            class = "normal"

            [[vm]]
            name = "bars"
            socket = "{{_sockets}}/bars.sock"
            label = "GUEST ONE (BARS)"
            label_color = "#0D47A1"
            class = "critical"
            frame_period_ms = 60000   # the guests draw once and hold the picture
            fallback = "color:#400000"

            [[vm]]
            name = "gradient"
            socket = "{{_sockets}}/gradient.sock"
            label = "GUEST TWO (GRADIENT)"
            label_color = "#1B5E20"
            class = "normal"
            frame_period_ms = 60000

            [[placement]]
            vm = "bars"
            zone = "left"

            [[placement]]
            vm = "gradient"
            zone = "right"
            """, "qemu-e2e.toml");
        Assert.True(result.Success, result.ToString());
        var layout = result.Layout!;
        var logs = new ListLoggerProvider();
        using var loggers = LoggerFactory.Create(b => b.AddProvider(logs));
        using var renderer = new CpuRenderer();
        using var host = new CompositorHost(layout, renderer, loggers);

        // Every composed frame is checked on the frame thread; the first frame where both
        // zones are exact (and the labels are the host's) is kept as the evidence.
        var zones = layout.Zones.ToDictionary(z => z.Name, z => layout.ContentRect(z));
        var labels = new LabelRenderer();
        var exact = new Dictionary<string, long>();
        string? mismatch = null;
        uint[]? evidence = null;
        var outputSize = new SizeI(1280, 480);
        host.Engine.FrameComposed += report =>
        {
            var pixels = ((HeadlessOutput)host.Engine.Output("main")!).Snapshot();
            foreach (var (zone, pattern) in new[] { ("left", "bars"), ("right", "gradient") })
            {
                var state = host.Store.Get(new Compositor.Core.Scene.SurfaceKey(pattern, 0));
                if (state is null || !state.IsEnabled || state.Frames < 1) continue;
                var c = zones[zone];
                // The guest's mode is the zone's content size, so "fit" maps it 1:1.
                if (state.SourceRect.Width != c.Width || state.SourceRect.Height != c.Height)
                {
                    mismatch = $"{pattern}: scanout {state.SourceRect.Width}x{state.SourceRect.Height}, zone content {c.Width}x{c.Height}";
                    continue;
                }
                bool ok = true;
                for (int y = 0; y < c.Height && ok; y++)
                    for (int x = 0; x < c.Width && ok; x++)
                        ok = pixels[(c.Y + y) * 1280 + c.X + x] == Expected(pattern, x, y, c.Width, c.Height);
                if (ok) exact.TryAdd(pattern, report.Frame);
            }
            bool labelsOk = report.Outputs[0].Plan.Items.OfType<LabelItem>().All(l =>
            {
                var image = labels.RenderBar(l.Text, l.Background, l.Foreground, new SizeI(l.Destination.Width, l.Destination.Height));
                return l.Clip.Rects.All(r => Enumerable.Range(r.Y, r.Height).All(y => Enumerable.Range(r.X, r.Width).All(x =>
                    pixels[y * 1280 + x] == image.Pixels[(y - l.Destination.Y) * image.Size.Width + x - l.Destination.X])));
            });
            if (evidence is null && exact.ContainsKey("bars") && exact.ContainsKey("gradient") && labelsOk
                && report.Outputs[0].Plan.Items.OfType<LabelItem>().Count() == 2)
                evidence = pixels;
        };
        host.Start();

        var outDir = Path.Combine(TestPaths.RepoRoot, "artifacts", "e2e", "compositor-2guests");
        var guests = new[] { ("bars", "bars"), ("gradient", "gradient") }.Select(g => StartGuest(g.Item1, g.Item2, Path.Combine(outDir, g.Item1))).ToList();
        try
        {
            var sw = Stopwatch.StartNew();
            while (evidence is null && sw.Elapsed < TimeSpan.FromMinutes(3) && guests.Any(g => !g.Process.HasExited)) Thread.Sleep(100);
        }
        finally
        {
            File.WriteAllText(HoldFile, "done"); // release the guests
            foreach (var g in guests)
            {
                if (!g.Process.WaitForExit(TimeSpan.FromMinutes(3))) g.Process.Kill(true);
                output.WriteLine($"--- {g.Name}: exit {g.Process.ExitCode}\n{g.Output()}");
                var res = Path.Combine(outDir, g.Name, "result.txt");
                if (File.Exists(res)) output.WriteLine(File.ReadAllText(res));
            }
        }
        Assert.True(mismatch is null, mismatch);
        Assert.True(evidence is not null,
            $"no frame showed both guests exactly (exact so far: {string.Join(", ", exact.Select(e => $"{e.Key}@{e.Value}"))}); logs:\n{string.Join("\n", logs.Warnings)}");
        Directory.CreateDirectory(outDir);
        PngFile.Write(Path.Combine(outDir, "output.png"), outputSize, evidence);
        foreach (var g in guests)
            Assert.True(g.Process.ExitCode == 0, $"run-guest.sh for {g.Name} exit {g.Process.ExitCode}:\n{g.Output()}");
        Assert.Equal(0, host.Engine.SafetyFailures);
    }

    private sealed record Guest(string Name, Process Process, Func<string> Output);

    /// <summary>
    /// One recipe guest whose vhost-user-gpu device connects to the compositor's socket of
    /// <paramref name="vm"/>: the "back-end command" only links the recipe's socket path to it.
    /// </summary>
    private string HoldFile => Path.Combine(_sockets, "release-guests");

    private Guest StartGuest(string vm, string pattern, string dir)
    {
        Directory.CreateDirectory(dir);
        var psi = new ProcessStartInfo(Path.Combine(Recipe, "run-guest.sh")) { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(WorkDir);
        psi.ArgumentList.Add(dir);
        psi.Environment["BACKEND_CMD"] = $"ln -s '{_sockets}/{vm}.sock' \"$GPU_SOCK\" && exec sleep 600";
        psi.Environment["PATTERN"] = pattern;
        psi.Environment["CHECK"] = "none"; // QEMU's own console shows nothing: the compositor is the display
        psi.Environment["PROXY"] = "0";
        psi.Environment["TIMEOUT"] = "150";
        // Both guests must be on screen at once: each holds its picture until the test has its evidence.
        psi.Environment["HOLD_UNTIL_FILE"] = HoldFile;
        var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        return new Guest(vm, p, () => stdout.Result + stderr.Result);
    }
}
