using Tmds.Linux;
using static Tmds.Linux.LibC;

namespace VirtioGpuHost.Interop;

/// <summary>
/// Zero-copy sending of mapped memory to a socket: vmsplice(2) puts references to the
/// pages into a pipe, splice(2) moves them into the socket (Linux 6.5+ splices into AF_UNIX
/// sockets by reference). The receiver copies from the very pages, so the memory must not
/// change until the receiver has read it (see <see cref="UnixSocket.OutputQueueBytes"/>).
/// Non-blocking on both ends; the caller loops on partial progress.
/// </summary>
public sealed unsafe class SplicePipe : IDisposable
{
    private readonly FdHandle _read, _write;

    private SplicePipe(FdHandle read, FdHandle write, int capacity)
    {
        _read = read;
        _write = write;
        Capacity = capacity;
    }

    /// <summary>Bytes sitting in the pipe (moved in by <see cref="Fill"/>, not yet drained to the socket).</summary>
    public long Buffered { get; private set; }

    public int Capacity { get; }

    /// <summary>A non-blocking pipe of up to <paramref name="capacity"/> bytes; null when the system refuses.</summary>
    public static SplicePipe? TryCreate(int capacity)
    {
        int* fds = stackalloc int[2];
        if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0) return null;
        var r = new FdHandle(fds[0]);
        var w = new FdHandle(fds[1]);
        int got = fcntl(fds[1], F_SETPIPE_SZ, capacity);
        if (got < 0) got = fcntl(fds[1], F_GETPIPE_SZ);
        return new SplicePipe(r, w, got);
    }

    /// <summary>
    /// vmsplice: moves references to up to Capacity - Buffered bytes of <paramref name="segments"/>
    /// (from <paramref name="skip"/> bytes in) into the pipe; returns bytes moved (0 when full).
    /// Throws SyscallException when vmsplice is not possible (the caller falls back to copying).
    /// </summary>
    public long Fill(ReadOnlySpan<IoSegment> segments, long skip)
    {
        int count = Math.Min(segments.Length, 1024);
        iovec* iov = stackalloc iovec[count];
        int n = 0;
        long room = Capacity - Buffered;
        foreach (var s in segments)
        {
            if (n == count || room <= 0) break;
            if (skip >= s.Length) { skip -= s.Length; continue; }
            long len = Math.Min(s.Length - skip, room);
            iov[n].iov_base = (void*)(s.Address + (nint)skip);
            iov[n].iov_len = (size_t)(ulong)len;
            n++;
            room -= len;
            skip = 0;
        }
        if (n == 0) return 0;
        bool added = false;
        try
        {
            _write.DangerousAddRef(ref added);
            long rc;
            do { rc = vmsplice(_write.Number, iov, (size_t)(ulong)n, 0); } while (rc < 0 && errno == EINTR);
            if (rc < 0)
            {
                if (errno == EAGAIN) return 0;
                throw new SyscallException("vmsplice", errno);
            }
            Buffered += rc;
            return rc;
        }
        finally { if (added) _write.DangerousRelease(); }
    }

    /// <summary>splice: moves buffered bytes into <paramref name="socket"/>; returns the status and bytes moved.</summary>
    public IoStatus Drain(FdHandle socket, out long moved)
    {
        moved = 0;
        bool r = false, s = false;
        try
        {
            _read.DangerousAddRef(ref r);
            socket.DangerousAddRef(ref s);
            while (Buffered > 0)
            {
                long rc = splice(_read.Number, null, socket.Number, null, (size_t)(ulong)Buffered, (uint)(SPLICE_F_NONBLOCK | SPLICE_F_MOVE));
                if (rc < 0)
                {
                    int e = errno;
                    if (e == EINTR) continue;
                    if (e == EAGAIN) return IoStatus.WouldBlock;
                    if (e == EPIPE || e == ECONNRESET) return IoStatus.Closed;
                    throw new SyscallException("splice", e);
                }
                if (rc == 0) return IoStatus.WouldBlock;
                Buffered -= rc;
                moved += rc;
            }
            return IoStatus.Ok;
        }
        finally
        {
            if (s) socket.DangerousRelease();
            if (r) _read.DangerousRelease();
        }
    }

    public void Dispose()
    {
        _read.Dispose();
        _write.Dispose();
        Buffered = 0;
    }
}
