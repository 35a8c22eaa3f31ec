using Microsoft.Extensions.Logging;
using VirtioGpuHost.Compositor;
using VirtioGpuHost.Compositor.Core.Layout;
using VirtioGpuHost.Compositor.Rendering.Cpu;
using VirtioGpuHost.FrontEnd;
using VirtioGpuHost.Interop;
using VirtioGpuHost.TestKit;

namespace VirtioGpuHost.IntegrationTests;

/// <summary>
/// The fairness policy is applied to real connections (docs/reliability.md, "Fairness and
/// deadlines"): an untrusted VM's connection threads run at nice +10 with a command budget, the
/// others as the process; each VM's policy is logged once. What the policy achieves under a flood
/// is measured by `bench fairness`, not here (no timing assertions).
/// </summary>
public sealed class FairnessPolicyTests
{
    private static LayoutConfig Layout(string dir)
    {
        var toml = $$"""
            [[output]]
            name = "main"
            width = 400
            height = 200

            [[zone]]
            name = "a"
            output = "main"
            rect = [0, 0, 200, 200]
            class = "normal"

            [[zone]]
            name = "b"
            output = "main"
            rect = [200, 0, 200, 200]
            class = "untrusted"

            [[vm]]
            name = "nm"
            socket = "{{dir}}/nm.sock"
            label = "NM"
            label_color = "#303030"
            class = "normal"
            frame_period_ms = 60000

            [[vm]]
            name = "un"
            socket = "{{dir}}/un.sock"
            label = "UN"
            label_color = "#303030"
            class = "untrusted"
            frame_period_ms = 60000

            [[placement]]
            vm = "nm"
            zone = "a"

            [[placement]]
            vm = "un"
            zone = "b"
            """;
        var result = LayoutLoader.Load(toml, "fairness.toml");
        Assert.True(result.Success, result.ToString());
        return result.Layout!;
    }

    /// <summary>Kernel thread ids of this process's threads named <paramref name="comm"/> (.NET names the OS thread).</summary>
    private static List<int> Threads(string comm) =>
        Directory.GetDirectories("/proc/self/task")
            .Select(d => (Tid: int.Parse(Path.GetFileName(d)), Comm: TryRead(Path.Combine(d, "comm"))))
            .Where(t => t.Comm == comm).Select(t => t.Tid).ToList();

    private static string? TryRead(string path)
    {
        try { return File.ReadAllText(path).TrimEnd('\n'); }
        catch (IOException) { return null; }
    }

    private static (int Untrusted, int Normal, ListLoggerProvider Logs) ConnectionNices(bool fairness)
    {
        var dir = Directory.CreateTempSubdirectory("vgh-fair-").FullName;
        var logs = new ListLoggerProvider();
        try
        {
            using var loggers = LoggerFactory.Create(b => b.AddProvider(logs).SetMinimumLevel(LogLevel.Information));
            using var renderer = new CpuRenderer();
            using var host = new CompositorHost(Layout(dir), renderer, loggers, new CompositorHostOptions { FrameClock = false, Fairness = fairness });
            host.Start();
            int processNice = ThreadScheduling.ReadNiceFromProc(ThreadScheduling.CurrentThreadId);
            using var un = GpuVm.Connect($"{dir}/un.sock", new GpuVmOptions { RamSize = 8UL << 20 });
            using var nm = GpuVm.Connect($"{dir}/nm.sock", new GpuVmOptions { RamSize = 8UL << 20 });
            // The connections answer: their threads are up (and have applied their policy).
            GpuDriver.Expect(un.Driver.GetDisplayInfo(), "GET_DISPLAY_INFO");
            GpuDriver.Expect(nm.Driver.GetDisplayInfo(), "GET_DISPLAY_INFO");
            var unThreads = Threads("un connection");
            var nmThreads = Threads("nm connection");
            Assert.Single(unThreads);
            Assert.Single(nmThreads);
            return (ThreadScheduling.ReadNiceFromProc(unThreads[0]) - processNice, ThreadScheduling.ReadNiceFromProc(nmThreads[0]) - processNice, logs);
        }
        finally
        {
            try { Directory.Delete(dir, recursive: true); } catch (IOException) { }
        }
    }

    [Fact]
    public void UntrustedConnectionThread_RunsAtNice10_OthersAsTheProcess_PolicyLoggedOncePerVm()
    {
        var (untrusted, normal, logs) = ConnectionNices(fairness: true);
        Assert.Equal(VmScheduling.UntrustedNice, untrusted);
        Assert.Equal(0, normal);
        var lines = logs.Lines.Select(l => l.Message).Where(m => m.Contains("scheduling policy", StringComparison.Ordinal)).ToList();
        Assert.Single(lines, l => l.Contains("\"un\"", StringComparison.Ordinal) && l.Contains("nice +10", StringComparison.Ordinal) && l.Contains("128 commands", StringComparison.Ordinal));
        Assert.Single(lines, l => l.Contains("\"nm\"", StringComparison.Ordinal) && l.Contains("no command budget", StringComparison.Ordinal));
        Assert.Equal(2, lines.Count);
    }

    [Fact]
    public void FairnessOff_EveryConnectionThreadAsTheProcess()
    {
        var (untrusted, normal, _) = ConnectionNices(fairness: false);
        Assert.Equal(0, untrusted);
        Assert.Equal(0, normal);
    }

    [Fact]
    public void Policy_FollowsTheClass()
    {
        Assert.Equal(new VmScheduling(SafetyClass.Untrusted, 10, VmScheduling.UntrustedBudget), VmScheduling.For(SafetyClass.Untrusted));
        Assert.Equal(new VmScheduling(SafetyClass.Normal, 0, null), VmScheduling.For(SafetyClass.Normal));
        Assert.Equal(new VmScheduling(SafetyClass.Critical, VmScheduling.CriticalNice, null), VmScheduling.For(SafetyClass.Critical));
        Assert.Equal(new VmScheduling(SafetyClass.Critical, 0, null), VmScheduling.For(SafetyClass.Critical, enabled: false));
        Assert.Equal(new VmScheduling(SafetyClass.Untrusted, 0, null), VmScheduling.For(SafetyClass.Untrusted, enabled: false));
    }

    [Fact]
    public void FrameClock_NeverComposesBeforeItsTick()
    {
        // A frame composed before its tick misses what a guest flushed just before the tick, which
        // the critical zone's deadline counts as a missed frame (bench fairness found frames up to
        // 1 ms early while the clock waited with millisecond WaitOne). Frame n (1-based) is made for
        // tick n - 1 + the ticks skipped before it; its start on the engine's clock must not be
        // before Epoch + tick x period.
        var dir = Directory.CreateTempSubdirectory("vgh-clock-").FullName;
        try
        {
            using var renderer = new CpuRenderer();
            using var host = new CompositorHost(Layout(dir), renderer, LoggerFactory.Create(_ => { }), new CompositorHostOptions { FrameClock = true });
            var starts = new List<(long Frame, TimeSpan At, long SkippedBefore)>();
            using var enough = new ManualResetEventSlim();
            host.Engine.FrameComposed += r =>
            {
                lock (starts)
                {
                    starts.Add((r.Frame, r.At, host.MissedFrames)); // skips are counted after a frame, so this is before it
                    if (starts.Count == 45) enough.Set();
                }
            };
            host.Start();
            Assert.True(enough.Wait(TimeSpan.FromSeconds(30)), "45 frames at 60 Hz within 30 s");
            var epoch = host.FrameClockEpoch!.Value;
            var period = host.Engine.FramePeriod;
            List<(long Frame, TimeSpan At, long SkippedBefore)> seen;
            lock (starts) seen = starts.ToList();
            var early = seen.Select(f => (f.Frame, Early: epoch + period * (f.Frame - 1 + f.SkippedBefore) - f.At))
                .Where(f => f.Early > TimeSpan.Zero).ToList();
            Assert.True(early.Count == 0, $"{early.Count} of {seen.Count} frames started before their tick: " +
                string.Join(", ", early.Take(5).Select(f => $"frame {f.Frame} {f.Early.TotalMilliseconds:F3} ms early")));
        }
        finally
        {
            try { Directory.Delete(dir, recursive: true); } catch (IOException) { }
        }
    }
}
