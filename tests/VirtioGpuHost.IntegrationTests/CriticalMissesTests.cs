using VirtioGpuHost.Cli.Bench;

namespace VirtioGpuHost.IntegrationTests;

/// <summary>
/// `bench fairness` counts a critical miss for each output tick at which a cluster flush older
/// than one period had not been shown (FairnessBenchmark remarks). Synthetic flush and frame
/// times on a 10 ms grid check that definition.
/// </summary>
public sealed class CriticalMissesTests
{
    private static readonly TimeSpan Period = TimeSpan.FromMilliseconds(10), Epoch = TimeSpan.FromMilliseconds(1000);

    private static TimeSpan Tick(double k) => Epoch + Period * k;

    /// <summary>Frames starting 0.2 ms after each tick from 0 to 20, except those listed.</summary>
    private static List<TimeSpan> Frames(params int[] missing) =>
        Enumerable.Range(0, 21).Where(k => !missing.Contains(k)).Select(k => Tick(k) + TimeSpan.FromMilliseconds(0.2)).ToList();

    private static (int Missed, int Flushes) Count(List<TimeSpan> flushes, List<TimeSpan> frames, List<string>? details = null) =>
        FairnessBenchmark.CriticalMisses(flushes, frames, Epoch, Period, Tick(0), Tick(20), details);

    [Fact]
    public void FlushesShownByTheNextTicksFrame_AreNotMissed()
    {
        // Just before a tick, just after one (due at the next), mid-period.
        var flushes = new List<TimeSpan> { Tick(3) - TimeSpan.FromMilliseconds(0.05), Tick(5) + TimeSpan.FromMilliseconds(0.1), Tick(7.5) };
        Assert.Equal((0, 3), Count(flushes, Frames()));
    }

    [Fact]
    public void ASkippedTick_IsOneMiss_AndTwoFlushesWaitingThroughItCountOnce()
    {
        var flushes = new List<TimeSpan> { Tick(5.3), Tick(5.9) };
        var details = new List<string>();
        Assert.Equal((1, 2), Count(flushes, Frames(missing: 6), details));
        Assert.Equal(2, details.Count); // each late flush explained
    }

    [Fact]
    public void AFrameStalledForThreeTicks_MissesThree()
    {
        var flushes = new List<TimeSpan> { Tick(9.5) };
        Assert.Equal((3, 1), Count(flushes, Frames(missing: [10, 11, 12])));
    }

    [Fact]
    public void AFrameStartedBeforeItsTick_MissesAFlushLandingInTheGap()
    {
        // The frame for tick 4 started 0.5 ms early; a flush 0.2 ms before the tick came after it
        // started, so it waited for tick 5: the frame clock's fault, counted (this is what the old
        // millisecond wait did).
        var frames = Frames();
        frames[4] = Tick(4) - TimeSpan.FromMilliseconds(0.5);
        var flushes = new List<TimeSpan> { Tick(4) - TimeSpan.FromMilliseconds(0.2) };
        Assert.Equal((1, 1), Count(flushes, frames));
    }

    [Fact]
    public void FlushesOutsideTheWindow_AreNotCounted()
    {
        var flushes = new List<TimeSpan> { Tick(-1), Tick(25) };
        Assert.Equal((0, 0), Count(flushes, Frames(missing: [0, 1])));
    }
}
