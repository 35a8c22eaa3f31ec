using Tmds.Linux;
using static Tmds.Linux.LibC;

namespace VirtioGpuHost.Interop;

[Flags]
public enum PollEvents : short
{
    None = 0,
    In = 0x001,
    Out = 0x004,
    Error = 0x008,
    HangUp = 0x010,
    Invalid = 0x020,
}

/// <summary>One fd to wait on; <see cref="Ready"/> is filled in by <see cref="Poller.Poll"/>.</summary>
public struct PollEntry
{
    public FdHandle? Fd;
    public PollEvents Wanted;
    public PollEvents Ready;

    public PollEntry(FdHandle? fd, PollEvents wanted)
    {
        Fd = fd;
        Wanted = wanted;
        Ready = PollEvents.None;
    }

    public readonly bool Readable => (Ready & (PollEvents.In | PollEvents.HangUp | PollEvents.Error)) != 0;
    public readonly bool Writable => (Ready & (PollEvents.Out | PollEvents.Error | PollEvents.HangUp)) != 0;
}

/// <summary>poll(2) over a small set of fds (an event loop per connection needs at most a handful).</summary>
public static unsafe class Poller
{
    /// <summary>
    /// Waits until one entry is ready or the timeout (ms, -1 = forever) passes; returns the
    /// number of ready entries. Entries with a null or closed Fd are skipped.
    /// </summary>
    public static int Poll(Span<PollEntry> entries, int timeoutMs) =>
        PollMicroseconds(entries, timeoutMs < 0 ? -1 : timeoutMs * 1000L);

    /// <summary>As <see cref="Poll"/> with a timeout in microseconds (ppoll; -1 = forever).</summary>
    public static int PollMicroseconds(Span<PollEntry> entries, long timeoutUs)
    {
        var pfds = stackalloc NativeMethods.PollFd[entries.Length];
        var added = new bool[entries.Length];
        try
        {
            for (int i = 0; i < entries.Length; i++)
            {
                entries[i].Ready = PollEvents.None;
                var fd = entries[i].Fd;
                pfds[i].Fd = -1;
                pfds[i].Events = (short)entries[i].Wanted;
                pfds[i].Revents = 0;
                if (fd is null || fd.IsClosed) continue;
                fd.DangerousAddRef(ref added[i]);
                pfds[i].Fd = fd.Number;
            }
            int rc, err;
            var ts = new NativeMethods.TimeSpec { Seconds = Math.Max(0, timeoutUs) / 1_000_000, Nanoseconds = Math.Max(0, timeoutUs) % 1_000_000 * 1000 };
            do
            {
                rc = NativeMethods.PPoll(pfds, (nuint)entries.Length, timeoutUs >= 0 ? &ts : null, null);
                err = rc < 0 ? NativeMethods.LastErrno : 0;
            }
            while (rc < 0 && err == EINTR); // a signal: poll again (the timeout restarts; callers loop on deadlines)
            if (rc < 0) throw new SyscallException("ppoll", err);
            for (int i = 0; i < entries.Length; i++) entries[i].Ready = (PollEvents)pfds[i].Revents;
            return rc;
        }
        finally
        {
            for (int i = 0; i < entries.Length; i++) if (added[i]) entries[i].Fd!.DangerousRelease();
        }
    }

    /// <summary>True when <paramref name="fd"/> became readable (or hung up) within the timeout.</summary>
    public static bool WaitReadable(FdHandle fd, int timeoutMs)
    {
        Span<PollEntry> e = [new PollEntry(fd, PollEvents.In)];
        return Poll(e, timeoutMs) > 0 && e[0].Readable;
    }
}
