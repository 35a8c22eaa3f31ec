using System.Runtime.InteropServices;

namespace VirtioGpuHost.Interop;

/// <summary>
/// CLOCK_MONOTONIC in nanoseconds, and sleeping until an absolute time on it
/// (clock_nanosleep with TIMER_ABSTIME). A frame clock needs both: a relative wait such as
/// WaitHandle.WaitOne(TimeSpan) works in whole milliseconds (it truncates, so it wakes up to 1 ms
/// early), and a chain of relative sleeps drifts by each wake-up's lateness.
/// </summary>
public static partial class MonotonicClock
{
    private const int ClockMonotonic = 1, TimerAbstime = 1, Eintr = 4;

    [StructLayout(LayoutKind.Sequential)]
    private struct Timespec
    {
        public long Seconds;
        public long Nanoseconds;
    }

    /// <summary>Now on CLOCK_MONOTONIC, in nanoseconds.</summary>
    public static long NowNanoseconds()
    {
        Timespec ts;
        if (ClockGetTime(ClockMonotonic, out ts) != 0) throw new SyscallException("clock_gettime", Marshal.GetLastSystemError());
        return ts.Seconds * 1_000_000_000L + ts.Nanoseconds;
    }

    /// <summary>
    /// Sleeps until CLOCK_MONOTONIC reaches <paramref name="deadlineNanoseconds"/> (returns at
    /// once when it has passed); never returns early. A signal handler interrupting the sleep
    /// (EINTR) restarts it.
    /// </summary>
    public static void SleepUntil(long deadlineNanoseconds)
    {
        var ts = new Timespec { Seconds = deadlineNanoseconds / 1_000_000_000L, Nanoseconds = deadlineNanoseconds % 1_000_000_000L };
        if (deadlineNanoseconds < 0) return;
        int rc;
        // clock_nanosleep returns the error number itself (it does not set errno).
        while ((rc = ClockNanosleep(ClockMonotonic, TimerAbstime, in ts, IntPtr.Zero)) == Eintr) { }
        if (rc != 0) throw new SyscallException("clock_nanosleep", rc);
    }

    [LibraryImport("libc", EntryPoint = "clock_gettime", SetLastError = true)]
    private static partial int ClockGetTime(int clock, out Timespec ts);

    [LibraryImport("libc", EntryPoint = "clock_nanosleep")]
    private static partial int ClockNanosleep(int clock, int flags, in Timespec request, IntPtr remain);
}
