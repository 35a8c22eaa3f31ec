using static Tmds.Linux.LibC;

namespace VirtioGpuHost.Interop;

/// <summary>eventfd(2) helpers; vhost-user kick/call/err fds are eventfds (or pipes).</summary>
public static unsafe class EventFd
{
    public static FdHandle Create(bool nonBlocking = true)
    {
        int fd = eventfd(0, EFD_CLOEXEC | (nonBlocking ? EFD_NONBLOCK : 0));
        if (fd < 0) throw Errno.Fail("eventfd");
        return new FdHandle(fd);
    }

    /// <summary>Adds 1 to the counter (one notification). A full counter or closed fd is ignored.</summary>
    public static void Signal(FdHandle fd)
    {
        if (fd.IsClosed) return;
        bool added = false;
        try
        {
            fd.DangerousAddRef(ref added);
            ulong one = 1;
            long rc;
            do { rc = write(fd.Number, &one, 8); } while (rc < 0 && errno == EINTR);
        }
        catch (ObjectDisposedException) { }
        finally { if (added) fd.DangerousRelease(); }
    }

    /// <summary>
    /// Consumes pending notifications without blocking (the fd should be O_NONBLOCK);
    /// returns true when there was at least one. Works for eventfds and pipes.
    /// </summary>
    public static bool Drain(FdHandle fd)
    {
        bool added = false;
        try
        {
            fd.DangerousAddRef(ref added);
            byte* buf = stackalloc byte[64];
            bool any = false;
            while (true)
            {
                long rc = read(fd.Number, buf, 64);
                if (rc > 0) { any = true; if (rc < 64) return any; continue; }
                if (rc < 0 && errno == EINTR) continue;
                return any;
            }
        }
        finally { if (added) fd.DangerousRelease(); }
    }
}
