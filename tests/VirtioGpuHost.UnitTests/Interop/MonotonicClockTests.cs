using VirtioGpuHost.Interop;

namespace VirtioGpuHost.UnitTests.Interop;

public sealed class MonotonicClockTests
{
    [Fact]
    public void SleepUntil_NeverReturnsBeforeTheDeadline()
    {
        // WaitOne(TimeSpan) truncates to whole milliseconds and so wakes up to 1 ms early; the frame
        // clock relies on this sleep ending at or after its tick, every time.
        var random = new Random(7);
        for (int i = 0; i < 100; i++)
        {
            long deadline = MonotonicClock.NowNanoseconds() + random.Next(0, 2_500_000); // 0..2.5 ms ahead
            MonotonicClock.SleepUntil(deadline);
            long now = MonotonicClock.NowNanoseconds();
            Assert.True(now >= deadline, $"sleep {i} returned {deadline - now} ns before its deadline");
        }
    }

    [Fact]
    public void SleepUntil_APassedDeadline_ReturnsAtOnce_AndNowIsMonotonic()
    {
        long a = MonotonicClock.NowNanoseconds();
        MonotonicClock.SleepUntil(a - 1_000_000_000);
        MonotonicClock.SleepUntil(-1);
        long b = MonotonicClock.NowNanoseconds();
        Assert.True(b >= a);
        Assert.True(b - a < 1_000_000_000, "a deadline in the past must not sleep");
    }
}
