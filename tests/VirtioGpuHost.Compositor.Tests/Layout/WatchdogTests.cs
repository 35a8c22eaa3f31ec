using CsCheck;
using VirtioGpuHost.Compositor.Core.Geometry;
using VirtioGpuHost.Compositor.Core.Layout;

namespace VirtioGpuHost.Compositor.Tests.Layout;

/// <summary>The watchdog with a fake clock: times are plain TimeSpans passed in, nothing sleeps.</summary>
public class WatchdogTests
{
    private static readonly TimeSpan Period = TimeSpan.FromMilliseconds(100);

    private static TimeSpan Ms(double ms) => TimeSpan.FromMilliseconds(ms);

    private static VmConfig Vm(string name, bool mustChange = false, double periodMs = 100) =>
        new(name, $"/tmp/vgh/{name}.sock", name, ColorBgra.Opaque(1, 2, 3), SafetyClass.Normal, Ms(periodMs), mustChange, new FallbackConfig(FallbackKind.Dim));

    [Fact]
    public void Evaluate_BeforeAnyFrame_NoSignal()
    {
        var w = new Watchdog([Vm("a"), Vm("b")]);

        var health = w.Evaluate(Ms(1000));

        Assert.Equal(VmHealth.NoSignal, health["a"]);
        Assert.Equal(VmHealth.NoSignal, health["b"]);
        Assert.Equal(["a", "b"], health.Keys.Order());
    }

    [Fact]
    public void Evaluate_FrameWithinPeriod_Live()
    {
        var w = new Watchdog([Vm("a")]);
        w.OnFrame("a", Ms(10), null);

        Assert.Equal(VmHealth.Live, w.Evaluate(Ms(10))["a"]);
        Assert.Equal(VmHealth.Live, w.Evaluate(Ms(110))["a"]); // exactly one period old: still live
    }

    [Fact]
    public void Evaluate_PastThePeriod_StaleThenLiveAgainOnTheNextFrame()
    {
        var w = new Watchdog([Vm("a")]);
        w.OnFrame("a", Ms(10), null);

        Assert.Equal(VmHealth.Stale, w.Evaluate(Ms(110.001))["a"]);
        w.OnFrame("a", Ms(500), null);
        Assert.Equal(VmHealth.Live, w.Evaluate(Ms(500))["a"]);
    }

    [Fact]
    public void Evaluate_Transitions_ReportedOnceWithReason()
    {
        var w = new Watchdog([Vm("a")]);
        var log = new List<HealthTransition>();

        w.Evaluate(Ms(0), log);
        w.OnFrame("a", Ms(5), null);
        w.Evaluate(Ms(16), log);
        w.Evaluate(Ms(32), log);
        w.Evaluate(Ms(200), log);
        w.Evaluate(Ms(216), log);
        w.OnDisconnected("a");
        w.Evaluate(Ms(232), log);

        Assert.Equal(
            [(VmHealth.NoSignal, VmHealth.Live, Ms(16)), (VmHealth.Live, VmHealth.Stale, Ms(200)), (VmHealth.Stale, VmHealth.NoSignal, Ms(232))],
            log.Select(t => (t.From, t.To, t.At)));
        Assert.Contains("no frame for 195 ms, period 100 ms", log[1].Reason, StringComparison.Ordinal);
        Assert.Equal("disconnected", log[2].Reason);
        Assert.StartsWith("vm \"a\": Live -> Stale at 0.200s", log[1].ToString(), StringComparison.Ordinal);
        Assert.Equal(VmHealth.NoSignal, w.HealthOf("a"));
    }

    [Fact]
    public void OnDisconnected_LiveVm_NoSignalUntilNextFrame()
    {
        var w = new Watchdog([Vm("a")]);
        w.OnFrame("a", Ms(10), null);
        w.OnDisconnected("a");

        Assert.Equal(VmHealth.NoSignal, w.Evaluate(Ms(20))["a"]);
        w.OnFrame("a", Ms(30), null);
        Assert.Equal(VmHealth.Live, w.Evaluate(Ms(30))["a"]);
    }

    [Fact]
    public void OnFrame_ContentMustChangeAndSameHash_DoesNotCount()
    {
        var w = new Watchdog([Vm("a", mustChange: true)]);

        Assert.True(w.OnFrame("a", Ms(0), 42));
        Assert.False(w.OnFrame("a", Ms(50), 42));
        Assert.False(w.OnFrame("a", Ms(100), 42));
        Assert.Equal(VmHealth.Live, w.Evaluate(Ms(100))["a"]);
        Assert.False(w.OnFrame("a", Ms(150), 42));
        Assert.Equal(VmHealth.Stale, w.Evaluate(Ms(150))["a"]); // frozen picture: stale although flushing
        Assert.True(w.OnFrame("a", Ms(160), 43));
        Assert.Equal(VmHealth.Live, w.Evaluate(Ms(160))["a"]);
    }

    [Fact]
    public void OnFrame_ContentMustChangeWithoutHash_DoesNotCount()
    {
        var w = new Watchdog([Vm("a", mustChange: true)]);

        Assert.False(w.OnFrame("a", Ms(0), null));
        Assert.Equal(VmHealth.NoSignal, w.Evaluate(Ms(0))["a"]);
    }

    [Fact]
    public void OnFrame_ContentMayRepeat_SameHashCounts()
    {
        var w = new Watchdog([Vm("a")]);

        Assert.True(w.OnFrame("a", Ms(0), 7));
        Assert.True(w.OnFrame("a", Ms(90), 7));
        Assert.Equal(VmHealth.Live, w.Evaluate(Ms(180))["a"]);
    }

    [Fact]
    public void OnFrame_UnknownVm_IgnoredAndNotReported()
    {
        var w = new Watchdog([Vm("a")]);

        Assert.False(w.OnFrame("ghost", Ms(0), null));
        w.OnDisconnected("ghost");
        Assert.DoesNotContain("ghost", w.Evaluate(Ms(0)).Keys);
        Assert.Equal(VmHealth.NoSignal, w.HealthOf("ghost"));
    }

    [Fact]
    public void Evaluate_VmsAreIndependent()
    {
        var w = new Watchdog([Vm("fast", periodMs: 20), Vm("slow", periodMs: 500)]);
        w.OnFrame("fast", Ms(0), null);
        w.OnFrame("slow", Ms(0), null);

        var health = w.Evaluate(Ms(100));

        Assert.Equal(VmHealth.Stale, health["fast"]);
        Assert.Equal(VmHealth.Live, health["slow"]);
    }

    [Fact]
    public void Evaluate_EveryOutputFrame_StaleWithinTwoPeriods()
    {
        // Evaluated once per output frame (period O <= frame period P), a VM that stops after a random
        // number of frames is reported stale within two periods of its last frame, and never before one.
        var gen = Gen.Select(Gen.Int[10, 200], Gen.Int[1, 200], Gen.Int[0, 20], Gen.Int[0, 1000]);
        gen.Sample((periodMs, outputMsRaw, frames, phaseUs) =>
        {
            double outputMs = Math.Min(outputMsRaw, periodMs);
            var w = new Watchdog([Vm("a", periodMs: periodMs)]);
            var lastFrame = TimeSpan.Zero;
            for (int i = 0; i <= frames; i++)
            {
                lastFrame = Ms(i * periodMs * 0.9) + TimeSpan.FromMicroseconds(phaseUs);
                w.OnFrame("a", lastFrame, null);
            }
            TimeSpan? staleAt = null;
            for (int k = 0; staleAt is null && k < 10_000; k++)
            {
                var now = Ms(k * outputMs);
                var health = w.Evaluate(now)["a"];
                if (now < lastFrame) continue;
                if (health == VmHealth.Stale) staleAt = now;
            }
            Assert.NotNull(staleAt);
            Assert.True(staleAt - lastFrame > Ms(periodMs), $"stale too early: {staleAt} after last frame {lastFrame}");
            Assert.True(staleAt - lastFrame <= Ms(2 * periodMs), $"stale too late: {staleAt} after last frame {lastFrame}, period {periodMs} ms, output {outputMs} ms");
        }, iter: 2000);
    }

    [Fact]
    public void Constructor_DuplicateNames_FirstWins()
    {
        var w = new Watchdog([Vm("a", periodMs: 10), Vm("a", periodMs: 1000)]);
        w.OnFrame("a", Ms(0), null);

        Assert.Equal(VmHealth.Stale, w.Evaluate(Ms(50))["a"]);
        Assert.Single(w.Evaluate(Ms(50)));
    }

    [Fact]
    public void Evaluate_PeriodFromConfig_UsesEachVmsPeriod()
    {
        var w = new Watchdog([Vm("a", periodMs: Period.TotalMilliseconds)]);
        w.OnFrame("a", Ms(0), null);

        Assert.Equal(VmHealth.Live, w.Evaluate(Period)["a"]);
        Assert.Equal(VmHealth.Stale, w.Evaluate(Period + TimeSpan.FromTicks(1))["a"]);
    }
}
