using Tmds.Linux;
using static Tmds.Linux.LibC;

namespace VirtioGpuHost.Interop;

/// <summary>What an fd received from a peer is (fstat's file type).</summary>
public enum FdKind
{
    Other,
    /// <summary>A regular file, memfds included: shareable memory.</summary>
    RegularFile,
    Pipe,
    Socket,
}

/// <summary>
/// Pipes and plain read/write/fstat on fds, for code that forwards fds between peers
/// (cross-domain contexts, the guest Wayland proxy). Non-blocking calls return
/// <see cref="IoStatus"/> like <see cref="UnixSocket"/>.
/// </summary>
public static unsafe class FdFiles
{
    private const uint S_IFMT = 0xF000, S_IFREG = 0x8000, S_IFIFO = 0x1000, S_IFSOCK = 0xC000;

    /// <summary>pipe2(O_CLOEXEC [| O_NONBLOCK]): (read end, write end).</summary>
    public static (FdHandle Read, FdHandle Write) CreatePipe(bool nonBlocking = false)
    {
        int* fds = stackalloc int[2];
        if (pipe2(fds, O_CLOEXEC | (nonBlocking ? O_NONBLOCK : 0)) < 0) throw Errno.Fail("pipe2");
        return (new FdHandle(fds[0]), new FdHandle(fds[1]));
    }

    /// <summary>The file type of <paramref name="fd"/>.</summary>
    public static FdKind KindOf(FdHandle fd)
    {
        using var r = new UnixSocket.HandleRef(fd);
        stat st;
        if (fstat(fd.Number, &st) < 0) throw Errno.Fail("fstat");
        return ((uint)st.st_mode & S_IFMT) switch
        {
            S_IFREG => FdKind.RegularFile,
            S_IFIFO => FdKind.Pipe,
            S_IFSOCK => FdKind.Socket,
            _ => FdKind.Other,
        };
    }

    /// <summary>True when the fd was opened write-only (a pipe's write end).</summary>
    public static bool IsWriteOnly(FdHandle fd)
    {
        using var r = new UnixSocket.HandleRef(fd);
        int flags = fcntl(fd.Number, F_GETFL);
        if (flags < 0) throw Errno.Fail("fcntl(F_GETFL)");
        return (flags & 3) == 1; // O_ACCMODE == O_WRONLY
    }

    /// <summary>True when the fd was opened read-only.</summary>
    public static bool IsReadOnly(FdHandle fd)
    {
        using var r = new UnixSocket.HandleRef(fd);
        int flags = fcntl(fd.Number, F_GETFL);
        if (flags < 0) throw Errno.Fail("fcntl(F_GETFL)");
        return (flags & 3) == 0;
    }

    /// <summary>st_size of the file behind <paramref name="fd"/>.</summary>
    public static ulong SizeOf(FdHandle fd) => MemFd.GetSize(fd);

    /// <summary>(st_dev, st_ino): identifies the file behind an fd across dups.</summary>
    public static (ulong Device, ulong Inode) IdentityOf(FdHandle fd)
    {
        using var r = new UnixSocket.HandleRef(fd);
        stat st;
        if (fstat(fd.Number, &st) < 0) throw Errno.Fail("fstat");
        return ((ulong)st.st_dev, (ulong)st.st_ino);
    }

    /// <summary>read(2): Ok with the count, Closed at end of file (0 bytes), WouldBlock on EAGAIN.</summary>
    public static IoStatus Read(FdHandle fd, Span<byte> buffer, out int read)
    {
        using var r = new UnixSocket.HandleRef(fd);
        long rc;
        fixed (byte* p = buffer)
        {
            do { rc = LibC.read(fd.Number, p, (size_t)(ulong)buffer.Length); } while (rc < 0 && errno == EINTR);
        }
        if (rc < 0)
        {
            read = 0;
            int err = errno;
            if (err == EAGAIN) return IoStatus.WouldBlock;
            if (err == ECONNRESET || err == EPIPE) return IoStatus.Closed;
            throw new SyscallException("read", err);
        }
        read = (int)rc;
        return rc == 0 && buffer.Length > 0 ? IoStatus.Closed : IoStatus.Ok;
    }

    /// <summary>write(2) (SIGPIPE is ignored by the .NET runtime: a closed reader gives EPIPE = Closed).</summary>
    public static IoStatus Write(FdHandle fd, ReadOnlySpan<byte> data, out int written)
    {
        using var r = new UnixSocket.HandleRef(fd);
        long rc;
        fixed (byte* p = data)
        {
            do { rc = LibC.write(fd.Number, p, (size_t)(ulong)data.Length); } while (rc < 0 && errno == EINTR);
        }
        if (rc < 0)
        {
            written = 0;
            int err = errno;
            if (err == EAGAIN) return IoStatus.WouldBlock;
            if (err == EPIPE || err == ECONNRESET) return IoStatus.Closed;
            throw new SyscallException("write", err);
        }
        written = (int)rc;
        return IoStatus.Ok;
    }

    /// <summary>Writes all of <paramref name="data"/> to a blocking fd; false when the reader went away.</summary>
    public static bool WriteAll(FdHandle fd, ReadOnlySpan<byte> data)
    {
        while (data.Length > 0)
        {
            var s = Write(fd, data, out int n);
            if (s == IoStatus.Closed) return false;
            if (s == IoStatus.WouldBlock)
            {
                Span<PollEntry> e = [new PollEntry(fd, PollEvents.Out)];
                Poller.Poll(e, 1000);
                continue;
            }
            data = data[n..];
        }
        return true;
    }

    /// <summary>How many fds this process has open (/proc/self/fd), for leak checks.</summary>
    public static int OpenCount() => Directory.GetFiles("/proc/self/fd").Length;
}
