using System.Diagnostics;
using VirtioGpuHost.TestKit;

namespace VirtioGpuHost.IntegrationTests;

/// <summary>
/// Real Linux guests in QEMU 10 (tests/e2e/qemu-guest-e2e) draw through our back-end,
/// started as `./virtio-gpu-host -s SOCKET` exactly like QEMU's C back-end, and QEMU's
/// own screendump must match the pattern pixel-exactly.
/// </summary>
public class QemuGuestTests(ITestOutputHelper output)
{
    private static string Recipe => Path.Combine(TestPaths.RepoRoot, "tests", "e2e", "qemu-guest-e2e");
    private static string WorkDir => TestPaths.QemuE2EWorkDir;

    private static void RequireRecipe()
    {
        if (!File.Exists(Path.Combine(WorkDir, "kernel.env")) || !File.Exists(Path.Combine(WorkDir, "qemu10.env")))
            Assert.Skip($"the qemu-guest-e2e work directory {WorkDir} is not set up (scripts/setup-deps.sh does it; needs network once)");
    }

    private (int ExitCode, string Output) Run(string script, string outDir, params (string Key, string Value)[] env)
    {
        var psi = new ProcessStartInfo(Path.Combine(Recipe, script)) { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(WorkDir);
        psi.ArgumentList.Add(outDir);
        psi.Environment["BACKEND"] = Path.Combine(TestPaths.RepoRoot, "virtio-gpu-host");
        psi.Environment["TIMEOUT"] = "120";
        foreach (var (k, v) in env) psi.Environment[k] = v;
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(TimeSpan.FromMinutes(4))) { p.Kill(true); throw new TimeoutException($"{script} did not finish in 4 minutes"); }
        string text = stdout.Result + stderr.Result;
        output.WriteLine(text);
        return (p.ExitCode, text);
    }

    private static string OutDir(string name)
    {
        var d = Path.Combine(TestPaths.RepoRoot, "artifacts", "e2e", name);
        Directory.CreateDirectory(d);
        return d;
    }

    [Theory]
    [InlineData("bars", "PATTERN=bars")]
    [InlineData("gradient2", "PATTERN=gradient SCANOUTS=2")]
    [InlineData("anim", "PATTERN=anim FRAMES=120")]
    [InlineData("res1080", "PATTERN=bars RES=1920x1080")]
    public void Guest_DrawsThroughOurBackend_ScreendumpMatches(string name, string settings)
    {
        RequireRecipe();
        var env = settings.Split(' ').Select(s => s.Split('=')).Select(kv => (kv[0], kv[1])).ToArray();
        var dir = OutDir(name);
        var (rc, text) = Run("run-guest.sh", dir, env);
        Assert.True(rc == 0, $"run-guest.sh exit {rc}:\n{text}\n{File.ReadAllText(Path.Combine(dir, "result.txt"))}");
        var result = File.ReadAllText(Path.Combine(dir, "result.txt"));
        Assert.Contains("status=PASS", result);
        Assert.Contains("check_0=", result);
        Assert.DoesNotContain(": MISMATCH", result);
    }

    [Fact]
    public void TwoGuests_EachOnItsOwnBackendSocket_BothMatch()
    {
        RequireRecipe();
        var dir = OutDir("parallel2");
        var psi = new ProcessStartInfo(Path.Combine(Recipe, "run-parallel.sh")) { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(WorkDir);
        psi.ArgumentList.Add(dir);
        psi.ArgumentList.Add("2");
        psi.Environment["BACKEND"] = Path.Combine(TestPaths.RepoRoot, "virtio-gpu-host");
        psi.Environment["TIMEOUT"] = "120";
        using var p = Process.Start(psi)!;
        string text = p.StandardOutput.ReadToEnd() + p.StandardError.ReadToEnd();
        Assert.True(p.WaitForExit(TimeSpan.FromMinutes(4)));
        output.WriteLine(text);
        Assert.True(p.ExitCode == 0, text);
        for (int i = 1; i <= 2; i++)
        {
            var guest = Path.Combine(dir, $"g{i}");
            Assert.Contains("status=PASS", File.ReadAllText(Path.Combine(guest, "result.txt")));
        }
    }
}
