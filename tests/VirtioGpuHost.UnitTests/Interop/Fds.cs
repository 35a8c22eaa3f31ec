using Tmds.Linux;
using VirtioGpuHost.Interop;
using static Tmds.Linux.LibC;

namespace VirtioGpuHost.UnitTests.Interop;

/// <summary>
/// Raw fd checks for the Interop tests. Whether an fd was closed is proven with a pipe: its read
/// end sees EOF only once every copy of the write end is closed (fd numbers are reused by
/// parallel tests, so "fcntl fails on number N" would prove nothing).
/// </summary>
internal static unsafe class Fds
{
    /// <summary>A non-blocking, close-on-exec pipe.</summary>
    public static (FdHandle Read, FdHandle Write) Pipe()
    {
        int* fds = stackalloc int[2];
        if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) < 0) throw new SyscallException("pipe2", errno);
        return (new FdHandle(fds[0]), new FdHandle(fds[1]));
    }

    /// <summary>A raw pipe (no FdHandle, no flags) for tests of adoption.</summary>
    public static (int Read, int Write) RawPipe()
    {
        int* fds = stackalloc int[2];
        if (pipe2(fds, 0) < 0) throw new SyscallException("pipe2", errno);
        return (fds[0], fds[1]);
    }

    public static void CloseRaw(int fd) => _ = close(fd);

    /// <summary>read(2) on a non-blocking fd: the count, 0 at EOF, -1 when nothing is there yet.</summary>
    public static int Read(FdHandle fd, Span<byte> buffer)
    {
        fixed (byte* p = buffer)
        {
            long rc;
            do { rc = read(fd.Number, p, buffer.Length); } while (rc < 0 && errno == EINTR);
            if (rc >= 0) return (int)rc;
            if (errno == EAGAIN) return -1;
            throw new SyscallException("read", errno);
        }
    }

    public static int Write(FdHandle fd, ReadOnlySpan<byte> data) => WriteRaw(fd.Number, data);

    public static int WriteRaw(int fd, ReadOnlySpan<byte> data)
    {
        fixed (byte* p = data)
        {
            long rc = write(fd, p, data.Length);
            if (rc < 0) throw new SyscallException("write", errno);
            return (int)rc;
        }
    }

    /// <summary>True when every write end of the pipe behind <paramref name="readEnd"/> is closed (EOF).</summary>
    public static bool AllWritersClosed(FdHandle readEnd) => Read(readEnd, stackalloc byte[1]) == 0;

    /// <summary>F_GETFD (FD_CLOEXEC).</summary>
    public static bool IsCloseOnExec(FdHandle fd) => IsCloseOnExec(fd.Number);

    public static bool IsCloseOnExec(int fd)
    {
        int flags = fcntl(fd, F_GETFD);
        if (flags < 0) throw new SyscallException("fcntl(F_GETFD)", errno);
        return (flags & FD_CLOEXEC) != 0;
    }

    /// <summary>F_GETFL has O_NONBLOCK.</summary>
    public static bool IsNonBlocking(FdHandle fd)
    {
        int flags = fcntl(fd.Number, F_GETFL);
        if (flags < 0) throw new SyscallException("fcntl(F_GETFL)", errno);
        return (flags & O_NONBLOCK) != 0;
    }

    /// <summary>The eventfd counter (an 8-byte read that also resets it); -1 when it is zero.</summary>
    public static long ReadEventFdCounter(FdHandle fd)
    {
        ulong v;
        long rc = read(fd.Number, &v, 8);
        if (rc < 0 && errno == EAGAIN) return -1;
        if (rc != 8) throw new SyscallException("read(eventfd)", errno);
        return (long)v;
    }
}
