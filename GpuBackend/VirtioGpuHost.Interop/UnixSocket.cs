using System.Runtime.InteropServices;
using System.Text;
using Tmds.Linux;
using static Tmds.Linux.LibC;

namespace VirtioGpuHost.Interop;

/// <summary>Outcome of a non-blocking socket operation.</summary>
public enum IoStatus
{
    /// <summary>Some bytes moved (see the count).</summary>
    Ok,
    /// <summary>The peer closed the connection (read of 0 bytes, EPIPE, ECONNRESET).</summary>
    Closed,
    /// <summary>Nothing could move now (EAGAIN); poll and retry.</summary>
    WouldBlock,
}

/// <summary>
/// AF_UNIX stream sockets with SCM_RIGHTS fd passing. This is the only place that
/// builds msghdr/cmsghdr; everything above works with spans and <see cref="FdHandle"/>s.
/// </summary>
public static unsafe class UnixSocket
{
    /// <summary>The most fds we accept in one message (rust-vmm's vhost accepts 32).</summary>
    public const int MaxFdsPerMessage = 32;

    private const int MaxIovecs = 1024; // IOV_MAX on Linux

    // cmsg arithmetic for 64-bit Linux (struct cmsghdr is 16 bytes, 8-byte alignment).
    private const int CmsgHeader = 16;
    private static int CmsgAlign(int n) => (n + 7) & ~7;
    private static int CmsgLen(int n) => CmsgHeader + n;
    private static int CmsgSpace(int n) => CmsgHeader + CmsgAlign(n);

    /// <summary>Creates a listening socket at <paramref name="path"/>, replacing a stale socket file.</summary>
    public static FdHandle Listen(string path, int backlog = 16)
    {
        var addr = MakeAddress(path, out int addrLen);
        RemoveStaleSocket(path);
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) throw Errno.Fail("socket");
        var handle = new FdHandle(fd);
        if (bind(fd, (sockaddr*)&addr, (socklen_t)addrLen) < 0) { var e = Errno.Fail($"bind({path})"); handle.Dispose(); throw e; }
        if (listen(fd, backlog) < 0) { var e = Errno.Fail("listen"); handle.Dispose(); throw e; }
        return handle;
    }

    /// <summary>Connects to a listening socket at <paramref name="path"/>.</summary>
    public static FdHandle Connect(string path)
    {
        var addr = MakeAddress(path, out int addrLen);
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) throw Errno.Fail("socket");
        var handle = new FdHandle(fd);
        int rc;
        do { rc = connect(fd, (sockaddr*)&addr, (socklen_t)addrLen); } while (rc < 0 && errno == EINTR);
        if (rc < 0) { var e = Errno.Fail($"connect({path})"); handle.Dispose(); throw e; }
        return handle;
    }

    /// <summary>Accepts one connection; returns null when the wait timed out.</summary>
    public static FdHandle? Accept(FdHandle listener, int timeoutMs = -1)
    {
        if (timeoutMs >= 0 && !Poller.WaitReadable(listener, timeoutMs)) return null;
        using var _ = new HandleRef(listener);
        int fd;
        do { fd = accept4(listener.Number, null, null, SOCK_CLOEXEC); } while (fd < 0 && errno == EINTR);
        if (fd < 0)
        {
            if (errno == EAGAIN) return null;
            throw Errno.Fail("accept4");
        }
        return new FdHandle(fd);
    }

    /// <summary>A connected pair (socketpair(AF_UNIX, SOCK_STREAM)).</summary>
    public static (FdHandle First, FdHandle Second) CreatePair()
    {
        int* fds = stackalloc int[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0) throw Errno.Fail("socketpair");
        return (new FdHandle(fds[0]), new FdHandle(fds[1]));
    }

    /// <summary>
    /// Sends <paramref name="data"/> with <paramref name="fds"/> attached to its first byte.
    /// Returns the status and how many bytes went out (may be short on a non-blocking socket).
    /// </summary>
    public static IoStatus Send(FdHandle socket, ReadOnlySpan<byte> data, ReadOnlySpan<FdHandle> fds, out int sent)
    {
        fixed (byte* p = data)
        {
            Span<IoSegment> seg = [new IoSegment((nint)p, data.Length)];
            var status = SendVector(socket, seg, fds, out long n);
            sent = (int)n;
            return status;
        }
    }

    /// <summary>
    /// sendmsg over several native segments (zero-copy from mapped memory). At most
    /// 1024 segments go in one call; the caller loops on short sends.
    /// </summary>
    public static IoStatus SendVector(FdHandle socket, ReadOnlySpan<IoSegment> segments, ReadOnlySpan<FdHandle> fds, out long sent)
    {
        if (fds.Length > MaxFdsPerMessage) throw new ArgumentException("too many fds", nameof(fds));
        int count = Math.Min(segments.Length, MaxIovecs);
        iovec* iov = stackalloc iovec[count];
        for (int i = 0; i < count; i++)
        {
            iov[i].iov_base = (void*)segments[i].Address;
            iov[i].iov_len = (size_t)(ulong)segments[i].Length;
        }
        int controlLen = fds.Length > 0 ? CmsgSpace(sizeof(int) * fds.Length) : 0;
        byte* control = stackalloc byte[Math.Max(controlLen, 1)];
        new Span<byte>(control, Math.Max(controlLen, 1)).Clear();
        msghdr msg = default;
        msg.msg_iov = iov;
        msg.msg_iovlen = count;

        using var sockRef = new HandleRef(socket);
        var refs = fds.Length > 0 ? new SafeHandleRefs(fds) : default; // takes all references or none
        try
        {
            if (fds.Length > 0)
            {
                msg.msg_control = control;
                msg.msg_controllen = (socklen_t)controlLen;
                cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
                cmsg->cmsg_len = (socklen_t)CmsgLen(sizeof(int) * fds.Length);
                cmsg->cmsg_level = SOL_SOCKET;
                cmsg->cmsg_type = SCM_RIGHTS;
                int* data = (int*)CMSG_DATA(cmsg);
                for (int i = 0; i < fds.Length; i++) data[i] = fds[i].Number;
            }
            long rc;
            do { rc = sendmsg(socket.Number, &msg, MSG_NOSIGNAL); } while (rc < 0 && errno == EINTR);
            if (rc >= 0) { sent = rc; return IoStatus.Ok; }
            sent = 0;
            int err = errno;
            if (err == EAGAIN) return IoStatus.WouldBlock;
            if (err == EPIPE || err == ECONNRESET) return IoStatus.Closed;
            throw new SyscallException("sendmsg", err);
        }
        finally
        {
            refs.Release();
        }
    }

    /// <summary>
    /// recvmsg into <paramref name="buffer"/>; fds that arrive are appended to <paramref name="fdsOut"/>
    /// (MSG_CMSG_CLOEXEC). A truncated control message (MSG_CTRUNC) is a protocol error: the
    /// fds that did arrive are closed and an exception is thrown.
    /// </summary>
    public static IoStatus Receive(FdHandle socket, Span<byte> buffer, List<FdHandle>? fdsOut, out int received)
    {
        int controlLen = CmsgSpace(sizeof(int) * MaxFdsPerMessage);
        byte* control = stackalloc byte[controlLen];
        fixed (byte* p = buffer)
        {
            iovec iov = default;
            iov.iov_base = p;
            iov.iov_len = (size_t)(ulong)buffer.Length;
            msghdr msg = default;
            msg.msg_iov = &iov;
            msg.msg_iovlen = 1;
            msg.msg_control = control;
            msg.msg_controllen = (socklen_t)controlLen;
            using var sockRef = new HandleRef(socket);
            long rc;
            do { rc = recvmsg(socket.Number, &msg, MSG_CMSG_CLOEXEC); } while (rc < 0 && errno == EINTR);
            if (rc < 0)
            {
                received = 0;
                int err = errno;
                if (err == EAGAIN) return IoStatus.WouldBlock;
                if (err == ECONNRESET) return IoStatus.Closed;
                throw new SyscallException("recvmsg", err);
            }
            var got = new List<FdHandle>();
            for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != null; c = CMSG_NXTHDR(&msg, c))
            {
                if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
                int n = (int)(((int)c->cmsg_len - CmsgLen(0)) / sizeof(int));
                int* fds = (int*)CMSG_DATA(c);
                for (int i = 0; i < n; i++) got.Add(new FdHandle(fds[i]));
            }
            if ((msg.msg_flags & MSG_CTRUNC) != 0)
            {
                foreach (var fd in got) fd.Dispose();
                throw new IOException("recvmsg: control data truncated (too many fds attached)");
            }
            if (fdsOut != null) fdsOut.AddRange(got);
            else foreach (var fd in got) fd.Dispose();
            received = (int)rc;
            return rc == 0 && buffer.Length > 0 ? IoStatus.Closed : IoStatus.Ok;
        }
    }

    /// <summary>
    /// TIOCOUTQ: memory the socket's sent data still occupies (for AF_UNIX: everything the peer
    /// has not read yet, counted with kernel overhead, so never less than the unread bytes).
    /// </summary>
    public static long OutputQueueBytes(FdHandle socket)
    {
        using var r = new HandleRef(socket);
        int v = 0;
        if (ioctl(socket.Number, TIOCOUTQ, &v) < 0) throw Errno.Fail("ioctl(TIOCOUTQ)");
        return v;
    }

    /// <summary>True when <paramref name="socket"/> is a listening socket (SO_ACCEPTCONN).</summary>
    public static bool IsListening(FdHandle socket)
    {
        using var r = new HandleRef(socket);
        int v = 0;
        socklen_t len = sizeof(int);
        if (getsockopt(socket.Number, SOL_SOCKET, SO_ACCEPTCONN, &v, &len) < 0) throw Errno.Fail("getsockopt(SO_ACCEPTCONN)");
        return v != 0;
    }

    /// <summary>SO_RCVTIMEO: a blocking read that waits longer than this fails with EAGAIN.</summary>
    public static void SetReceiveTimeout(FdHandle socket, TimeSpan timeout) => SetTimeout(socket, SO_RCVTIMEO, timeout);

    /// <summary>SO_SNDTIMEO: a blocking send that waits longer than this fails with EAGAIN.</summary>
    public static void SetSendTimeout(FdHandle socket, TimeSpan timeout) => SetTimeout(socket, SO_SNDTIMEO, timeout);

    /// <summary>Asks for a larger send buffer; the kernel caps it at net.core.wmem_max (or forces it as root).</summary>
    public static void TrySetSendBuffer(FdHandle socket, int bytes)
    {
        using var r = new HandleRef(socket);
        int v = bytes;
        if (setsockopt(socket.Number, SOL_SOCKET, SO_SNDBUFFORCE, &v, sizeof(int)) < 0)
            _ = setsockopt(socket.Number, SOL_SOCKET, SO_SNDBUF, &v, sizeof(int));
    }

    /// <summary>Asks for a larger receive buffer (as <see cref="TrySetSendBuffer"/>).</summary>
    public static void TrySetReceiveBuffer(FdHandle socket, int bytes)
    {
        using var r = new HandleRef(socket);
        int v = bytes;
        if (setsockopt(socket.Number, SOL_SOCKET, SO_RCVBUFFORCE, &v, sizeof(int)) < 0)
            _ = setsockopt(socket.Number, SOL_SOCKET, SO_RCVBUF, &v, sizeof(int));
    }

    /// <summary>shutdown(SHUT_RDWR): wakes a thread blocked on this socket; errors are ignored.</summary>
    public static void Shutdown(FdHandle socket)
    {
        if (socket.IsClosed) return;
        using var r = new HandleRef(socket);
        _ = shutdown(socket.Number, 2 /* SHUT_RDWR */);
    }

    /// <summary>shutdown(SHUT_WR): the peer reads EOF after what was sent, while this end can still read its replies.</summary>
    public static void ShutdownWrite(FdHandle socket)
    {
        if (socket.IsClosed) return;
        using var r = new HandleRef(socket);
        _ = shutdown(socket.Number, 1 /* SHUT_WR */);
    }

    private static void SetTimeout(FdHandle socket, int option, TimeSpan timeout)
    {
        using var r = new HandleRef(socket);
        long* tv = stackalloc long[2];
        tv[0] = (long)timeout.TotalSeconds;
        tv[1] = (long)(timeout.TotalMicroseconds % 1_000_000);
        if (setsockopt(socket.Number, SOL_SOCKET, option, tv, 16) < 0) throw Errno.Fail("setsockopt(timeout)");
    }

    /// <summary>Removes a socket file left by an earlier run; refuses to remove anything else.</summary>
    private static void RemoveStaleSocket(string path)
    {
        var bytes = Encoding.UTF8.GetBytes(path + "\0");
        stat st;
        fixed (byte* p = bytes)
        {
            if (fstatat(-100 /* AT_FDCWD */, p, &st, 0x100 /* AT_SYMLINK_NOFOLLOW */) < 0) return; // nothing there
            const uint S_IFMT = 0xF000, S_IFSOCK = 0xC000;
            if (((uint)st.st_mode & S_IFMT) != S_IFSOCK)
                throw new IOException($"{path} exists and is not a socket; refusing to replace it");
            if (unlink(p) < 0) throw Errno.Fail($"unlink({path})");
        }
    }

    private static sockaddr_un MakeAddress(string path, out int length)
    {
        var bytes = Encoding.UTF8.GetBytes(path);
        sockaddr_un addr = default;
        if (bytes.Length >= sockaddr_un.sun_path_length)
            throw new ArgumentException($"Unix socket path is {bytes.Length} bytes; the limit is {sockaddr_un.sun_path_length - 1}: {path}", nameof(path));
        addr.sun_family = (ushort)AF_UNIX;
        byte* dst = (byte*)&addr + sockaddr_un.sun_path_offset;
        for (int i = 0; i < bytes.Length; i++) dst[i] = bytes[i];
        length = sockaddr_un.sun_path_offset + bytes.Length + 1;
        return addr;
    }

    /// <summary>Keeps a SafeHandle's fd number valid for the duration of a call.</summary>
    internal readonly ref struct HandleRef
    {
        private readonly SafeHandle _handle;
        private readonly bool _added;

        public HandleRef(SafeHandle handle)
        {
            _handle = handle;
            _added = false;
            handle.DangerousAddRef(ref _added);
        }

        public void Dispose()
        {
            if (_added) _handle.DangerousRelease();
        }
    }

    private readonly struct SafeHandleRefs
    {
        private readonly FdHandle[] _handles;
        private readonly bool[] _added;

        public SafeHandleRefs(ReadOnlySpan<FdHandle> handles)
        {
            _handles = handles.ToArray();
            _added = new bool[_handles.Length];
            try
            {
                for (int i = 0; i < _handles.Length; i++) _handles[i].DangerousAddRef(ref _added[i]);
            }
            catch
            {
                Release(); // a closed fd in the list: give back the references already taken
                throw;
            }
        }

        public void Release()
        {
            if (_handles == null) return;
            for (int i = 0; i < _handles.Length; i++) if (_added[i]) _handles[i].DangerousRelease();
        }
    }
}
