using System.Diagnostics;
using System.Text.Json;
using VirtioGpuHost.Compositor.Control;
using VirtioGpuHost.TestKit;

namespace VirtioGpuHost.IntegrationTests;

/// <summary>Debian's chromium, headless, as the viewer's browser.</summary>
internal static class Chromium
{
    public const string Path = "/usr/bin/chromium";

    public static void SkipIfMissing()
    {
        if (!File.Exists(Path)) Assert.Skip($"{Path} is not installed (scripts/setup-deps.sh installs Debian's chromium): the viewer's browser test needs a real browser");
    }

    /// <summary>Runs chromium headless on <paramref name="url"/> with extra args; returns stdout.</summary>
    public static string Run(string url, int width, int height, int budgetMs, params string[] args)
    {
        using var profile = new TempDir();
        var psi = new ProcessStartInfo(Path) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--force-device-scale-factor=1", "--force-color-profile=srgb",
                     "--no-first-run", "--disable-extensions", $"--user-data-dir={profile.Path}", $"--window-size={width},{height}", $"--virtual-time-budget={budgetMs}" })
            psi.ArgumentList.Add(a);
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.ArgumentList.Add(url);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(TimeSpan.FromSeconds(90))) { p.Kill(true); Assert.Fail("chromium did not finish within 90 s"); }
        p.WaitForExit();
        Assert.True(p.ExitCode == 0, $"chromium exit {p.ExitCode}: {stderr.Result}");
        return stdout.Result;
    }
}

/// <summary>The web viewer in a real browser: its picture against the headless output, and its overlay.</summary>
public sealed class ViewerBrowserTests(ITestOutputHelper output)
{
    /// <summary>
    /// Tolerance: the viewer (PNG frames, drawn 1:1) must match the headless output on at least
    /// 99.9 % of the pixels within 2 per channel (exact in practice; the margin is for a browser's
    /// colour handling), and no pixel may be off by more than 16.
    /// </summary>
    [Fact]
    public void ViewerScreenshot_MatchesTheHeadlessOutput()
    {
        Chromium.SkipIfMissing();
        using var rig = new ControlRig();
        using var dir = new TempDir();
        string png = System.IO.Path.Combine(dir.Path, "viewer.png");
        var sw = Stopwatch.StartNew();
        Chromium.Run(rig.Server.Url + "?overlay=0&scale=1&panel=0&format=png&frames=3", 640, 360, 3000, $"--screenshot={png}");
        output.WriteLine($"chromium screenshot in {sw.Elapsed.TotalSeconds:0.0} s");
        var expected = rig.Output.Snapshot();
        var (size, got) = Compositor.Outputs.PngFile.Read(png);
        Assert.Equal((640, 360), (size.Width, size.Height));
        int close = 0, worst = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            int d = 0;
            for (int shift = 0; shift < 24; shift += 8)
                d = Math.Max(d, Math.Abs((int)(expected[i] >> shift & 0xFF) - (int)(got[i] >> shift & 0xFF)));
            if (d <= 2) close++;
            worst = Math.Max(worst, d);
        }
        double ratio = close / (double)expected.Length;
        output.WriteLine($"viewer vs headless: {ratio:P3} of pixels within 2, worst channel difference {worst}");
        Assert.True(ratio >= 0.999 && worst <= 16, $"the viewer's picture differs: {ratio:P3} within 2, worst {worst} (saved {png})");
    }

    [Fact]
    public void ViewerOverlay_ShowsZonesVmLabelsWatchdogStatesAndSparklines()
    {
        Chromium.SkipIfMissing();
        using var rig = new ControlRig();
        string dom = Chromium.Run(rig.Server.Url + "?frames=3", 1000, 800, 3000, "--dump-dom");
        foreach (var zone in new[] { "cluster", "ivi", "apps" }) Assert.Contains($"data-zone=\"{zone}\"", dom);
        foreach (var label in new[] { "CLUSTER", "INFOTAINMENT", "APPS" }) Assert.Contains(label, dom);
        Assert.Contains("class=\"state-live\">live</b>", dom);
        Assert.Contains("data-vm=\"cluster\"", dom);
        Assert.Contains("canvas class=\"spark\"", dom);
        Assert.Contains("data-ready=\"1\"", dom); // a frame was shown
    }
}
