using Tmds.Linux;
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
    /// Consumes pending notifications without blocking (the fd must be O_NONBLOCK) with one
    /// read: an eventfd holds one counter; a pipe with more left stays readable for the next
    /// poll. Reading once keeps an fd that is always readable from trapping the caller in a
    /// loop. Returns true when something was read.
    /// </summary>
    public static bool Drain(FdHandle fd)
    {
        bool added = false;
        try
        {
            fd.DangerousAddRef(ref added);
            byte* buf = stackalloc byte[64];
            long rc;
            do { rc = read(fd.Number, buf, 64); } while (rc < 0 && errno == EINTR);
            return rc > 0;
        }
        finally { if (added) fd.DangerousRelease(); }
    }

    /// <summary>
    /// True when <paramref name="fd"/> is an eventfd or a pipe: what vhost-user allows for kick,
    /// call and err (anything else, say /dev/zero, could be always readable or never writable).
    /// </summary>
    public static bool IsEventFdOrPipe(FdHandle fd)
    {
        bool added = false;
        try
        {
            fd.DangerousAddRef(ref added);
            stat st;
            if (fstat(fd.Number, &st) < 0) return false;
            const uint S_IFMT = 0xF000, S_IFIFO = 0x1000;
            if (((uint)st.st_mode & S_IFMT) == S_IFIFO) return true;
            string? target = null;
            try { target = new FileInfo($"/proc/self/fd/{fd.Number}").LinkTarget; }
            catch (IOException) { }
            return target == "anon_inode:[eventfd]";
        }
        finally { if (added) fd.DangerousRelease(); }
    }
}
