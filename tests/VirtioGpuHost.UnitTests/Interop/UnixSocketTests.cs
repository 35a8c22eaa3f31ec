using System.Runtime.InteropServices;
using Tmds.Linux;
using VirtioGpuHost.Interop;
using VirtioGpuHost.TestKit;
using static Tmds.Linux.LibC;

namespace VirtioGpuHost.UnitTests.Interop;

/// <summary>AF_UNIX stream sockets with SCM_RIGHTS, over real socketpairs and listening sockets.</summary>
public unsafe class UnixSocketTests
{
    private static (FdHandle A, FdHandle B) NonBlockingPair()
    {
        var (a, b) = UnixSocket.CreatePair();
        a.SetNonBlocking(true);
        b.SetNonBlocking(true);
        return (a, b);
    }

    private static void DisposeAll(IEnumerable<FdHandle> fds)
    {
        foreach (var fd in fds) fd.Dispose();
    }

    // ---- CreatePair / Send / Receive ----

    [Fact]
    public void CreatePair_BytesFlowBothWays()
    {
        var (a, b) = UnixSocket.CreatePair();
        using (a)
        using (b)
        {
            Assert.True(Fds.IsCloseOnExec(a));
            Assert.True(Fds.IsCloseOnExec(b));
            Assert.Equal(IoStatus.Ok, UnixSocket.Send(a, [1, 2, 3], [], out int sent));
            Assert.Equal(3, sent);
            var buf = new byte[8];
            Assert.Equal(IoStatus.Ok, UnixSocket.Receive(b, buf, null, out int got));
            Assert.Equal(new byte[] { 1, 2, 3 }, buf[..got]);

            Assert.Equal(IoStatus.Ok, UnixSocket.Send(b, [9], [], out _));
            Assert.Equal(IoStatus.Ok, UnixSocket.Receive(a, buf, null, out got));
            Assert.Equal(new byte[] { 9 }, buf[..got]);
        }
    }

    [Fact]
    public void Send_WithEventFd_ReceivedFdSignalsTheSameCounter()
    {
        var (a, b) = UnixSocket.CreatePair();
        using var _a = a;
        using var _b = b;
        using var efd = EventFd.Create();
        var fds = new List<FdHandle>();

        Assert.Equal(IoStatus.Ok, UnixSocket.Send(a, [0x42], [efd], out _));
        var buf = new byte[1];
        Assert.Equal(IoStatus.Ok, UnixSocket.Receive(b, buf, fds, out int got));

        try
        {
            Assert.Equal(1, got);
            var received = Assert.Single(fds);
            Assert.NotEqual(efd.Number, received.Number);
            Assert.True(Fds.IsCloseOnExec(received)); // MSG_CMSG_CLOEXEC
            EventFd.Signal(received);
            EventFd.Signal(received);
            Assert.Equal(2, Fds.ReadEventFdCounter(efd));
        }
        finally { DisposeAll(fds); }
    }

    [Fact]
    public void Send_32Fds_AllArriveInOrderAndUsable()
    {
        var (a, b) = UnixSocket.CreatePair();
        using var _a = a;
        using var _b = b;
        var originals = Enumerable.Range(0, UnixSocket.MaxFdsPerMessage).Select(_ => EventFd.Create()).ToArray();
        var fds = new List<FdHandle>();
        try
        {
            Assert.Equal(IoStatus.Ok, UnixSocket.Send(a, new byte[12], originals, out _));
            Assert.Equal(IoStatus.Ok, UnixSocket.Receive(b, new byte[12], fds, out int got));

            Assert.Equal(12, got);
            Assert.Equal(32, fds.Count);
            Assert.Equal(32, fds.Select(f => f.Number).Distinct().Count());
            for (int i = 0; i < 32; i++)
            {
                for (int k = 0; k <= i; k++) EventFd.Signal(fds[i]); // fd i gets i+1 signals
            }
            for (int i = 0; i < 32; i++) Assert.Equal(i + 1, Fds.ReadEventFdCounter(originals[i]));
        }
        finally { DisposeAll(fds); DisposeAll(originals); }
    }

    [Fact]
    public void Receive_FdsAppendedToExistingList()
    {
        var (a, b) = UnixSocket.CreatePair();
        using var _a = a;
        using var _b = b;
        using var efd = EventFd.Create();
        using var marker = EventFd.Create();
        var fds = new List<FdHandle> { marker };

        UnixSocket.Send(a, [1], [efd], out _);
        UnixSocket.Receive(b, new byte[1], fds, out _);

        Assert.Equal(2, fds.Count);
        Assert.Same(marker, fds[0]);
        fds[1].Dispose();
    }

    [Fact]
    public void Receive_FdsWithNullList_AreClosed()
    {
        var (a, b) = UnixSocket.CreatePair();
        using var _a = a;
        using var _b = b;
        var (r, w) = Fds.Pipe();
        using var _r = r;

        UnixSocket.Send(a, [1], [w], out _);
        w.Dispose();
        Assert.False(Fds.AllWritersClosed(r)); // the copy in flight keeps the pipe open

        Assert.Equal(IoStatus.Ok, UnixSocket.Receive(b, new byte[1], null, out int got));

        Assert.Equal(1, got);
        Assert.True(Fds.AllWritersClosed(r));
    }

    [Fact]
    public void Receive_MoreThan32Fds_ThrowsAndClosesEveryFdThatArrived()
    {
        var (a, b) = UnixSocket.CreatePair();
        using var _a = a;
        using var _b = b;
        var (r, w) = Fds.Pipe();
        using var _r = r;
        RawSend(a, [7], Enumerable.Repeat(w.Number, 33).ToArray());
        w.Dispose();
        var fds = new List<FdHandle>();

        var e = Assert.Throws<IOException>(() => UnixSocket.Receive(b, new byte[1], fds, out _));

        Assert.Contains("truncated", e.Message);
        Assert.Empty(fds);
        Assert.True(Fds.AllWritersClosed(r)); // none of the 32 installed copies leaked
    }

    [Fact]
    public void Receive_MoreThan32Fds_NextMessageStillReadable()
    {
        var (a, b) = UnixSocket.CreatePair();
        using var _a = a;
        using var _b = b;
        using var efd = EventFd.Create();
        RawSend(a, [7], Enumerable.Repeat(efd.Number, 40).ToArray());
        UnixSocket.Send(a, [8], [], out _);
        Assert.Throws<IOException>(() => UnixSocket.Receive(b, new byte[1], null, out _));

        var buf = new byte[1];
        Assert.Equal(IoStatus.Ok, UnixSocket.Receive(b, buf, null, out int got));
        Assert.Equal((1, (byte)8), (got, buf[0]));
    }

    [Fact]
    public void Send_MoreThan32Fds_ThrowsArgumentException()
    {
        var (a, b) = UnixSocket.CreatePair();
        using var _a = a;
        using var _b = b;
        using var efd = EventFd.Create();
        var fds = Enumerable.Repeat(efd, 33).ToArray();

        Assert.Throws<ArgumentException>(() => UnixSocket.Send(a, [1], fds, out _));
        Assert.Equal(IoStatus.WouldBlock, ReceiveNonBlocking(b, new byte[1], out _));
    }

    [Fact]
    public void Send_ClosedFdInList_ThrowsAndLeaksNoReferenceToTheOthers()
    {
        var (a, b) = UnixSocket.CreatePair();
        using var _a = a;
        using var _b = b;
        var (r, w) = Fds.Pipe();
        using var _r = r;
        var dead = EventFd.Create();
        dead.Dispose();

        Assert.Throws<ObjectDisposedException>(() => UnixSocket.Send(a, [1], [w, dead], out _));

        w.Dispose(); // must really close: the failed send may not keep a reference to it
        Assert.True(Fds.AllWritersClosed(r));
    }

    [Fact]
    public void Send_ClosedSocket_ThrowsAndLeaksNoReferenceToTheFds()
    {
        var (a, b) = UnixSocket.CreatePair();
        using var _b = b;
        a.Dispose();
        var (r, w) = Fds.Pipe();
        using var _r = r;

        Assert.Throws<ObjectDisposedException>(() => UnixSocket.Send(a, [1], [w], out _));

        w.Dispose();
        Assert.True(Fds.AllWritersClosed(r));
    }

    [Fact]
    public void Send_AfterSuccess_ReleasesFdReferences()
    {
        var (a, b) = UnixSocket.CreatePair();
        using var _a = a;
        using var _b = b;
        var (r, w) = Fds.Pipe();
        using var _r = r;

        UnixSocket.Send(a, [1], [w], out _);
        w.Dispose();
        UnixSocket.Receive(b, new byte[1], null, out _);

        Assert.True(Fds.AllWritersClosed(r));
    }

    [Fact]
    public void Receive_FdsStayWithTheirMessage_NotMergedIntoTheNext()
    {
        var (a, b) = UnixSocket.CreatePair();
        using var _a = a;
        using var _b = b;
        using var e1 = EventFd.Create();
        using var e2 = EventFd.Create();
        UnixSocket.Send(a, [1, 1, 1, 1], [e1], out _);
        UnixSocket.Send(a, [2, 2, 2, 2], [e2], out _);
        var fds = new List<FdHandle>();
        try
        {
            var buf = new byte[8];
            UnixSocket.Receive(b, buf, fds, out int got);
            Assert.Equal(4, got); // recvmsg stops at the boundary of a message that carries fds
            EventFd.Signal(Assert.Single(fds));
            Assert.Equal(1, Fds.ReadEventFdCounter(e1));
            Assert.Equal(-1, Fds.ReadEventFdCounter(e2));
        }
        finally { DisposeAll(fds); }
    }

    [Fact]
    public void Receive_EmptyNonBlockingSocket_WouldBlock()
    {
        var (a, b) = NonBlockingPair();
        using var _a = a;
        using var _b = b;
        Assert.Equal(IoStatus.WouldBlock, UnixSocket.Receive(b, new byte[4], null, out int got));
        Assert.Equal(0, got);
    }

    [Fact]
    public void Receive_PeerClosed_Closed()
    {
        var (a, b) = UnixSocket.CreatePair();
        using var _b = b;
        a.Dispose();
        Assert.Equal(IoStatus.Closed, UnixSocket.Receive(b, new byte[4], null, out int got));
        Assert.Equal(0, got);
    }

    [Fact]
    public void Receive_PendingDataThenPeerClosed_DataFirstThenClosed()
    {
        var (a, b) = UnixSocket.CreatePair();
        using var _b = b;
        UnixSocket.Send(a, [5, 6], [], out _);
        a.Dispose();
        var buf = new byte[4];

        Assert.Equal(IoStatus.Ok, UnixSocket.Receive(b, buf, null, out int got));
        Assert.Equal(new byte[] { 5, 6 }, buf[..got]);
        Assert.Equal(IoStatus.Closed, UnixSocket.Receive(b, buf, null, out _));
    }

    [Fact]
    public void Send_PeerClosed_ClosedWithoutSigpipe()
    {
        var (a, b) = UnixSocket.CreatePair();
        using var _a = a;
        b.Dispose();

        Assert.Equal(IoStatus.Closed, UnixSocket.Send(a, [1, 2, 3], [], out int sent));
        Assert.Equal(0, sent);
    }

    [Fact]
    public void Send_FullNonBlockingSocket_EventuallyWouldBlock()
    {
        var (a, b) = NonBlockingPair();
        using var _a = a;
        using var _b = b;
        var chunk = new byte[64 * 1024];
        IoStatus status = IoStatus.Ok;
        long total = 0;
        for (int i = 0; i < 10_000 && status == IoStatus.Ok; i++)
        {
            status = UnixSocket.Send(a, chunk, [], out int sent);
            total += sent;
        }

        Assert.Equal(IoStatus.WouldBlock, status);
        Assert.True(total > 0);
    }

    [Fact]
    public void SendVector_SeveralNativeSegments_ArriveConcatenated()
    {
        var (a, b) = UnixSocket.CreatePair();
        using var _a = a;
        using var _b = b;
        using var m = MappedMemory.Anonymous(4096);
        var span = m.AsSpan(0, 4096);
        for (int i = 0; i < 4096; i++) span[i] = (byte)i;
        IoSegment[] segments = [new(m.Address + 10, 3), new(m.Address + 1000, 2), new(m.Address, 1)];

        Assert.Equal(IoStatus.Ok, UnixSocket.SendVector(a, segments, [], out long sent));
        var buf = new byte[16];
        UnixSocket.Receive(b, buf, null, out int got);

        Assert.Equal(6, sent);
        Assert.Equal(new byte[] { 10, 11, 12, 1000 % 256, 1001 % 256, 0 }, buf[..got]);
    }

    [Fact]
    public void SendVector_MoreThan1024Segments_SendsOnlyTheFirst1024()
    {
        var (a, b) = UnixSocket.CreatePair();
        using var _a = a;
        using var _b = b;
        using var m = MappedMemory.Anonymous(4096);
        var span = m.AsSpan(0, 2000);
        for (int i = 0; i < 2000; i++) span[i] = (byte)(i % 251);
        var segments = Enumerable.Range(0, 1100).Select(i => new IoSegment(m.Address + i, 1)).ToArray();

        Assert.Equal(IoStatus.Ok, UnixSocket.SendVector(a, segments, [], out long sent));
        var buf = new byte[2000];
        UnixSocket.Receive(b, buf, null, out int got);

        Assert.Equal(1024, sent);
        Assert.Equal(1024, got);
        Assert.Equal(span[..1024].ToArray(), buf[..1024]);
    }

    [Fact]
    public void SendVector_WithFds_FdsTravelWithTheBytes()
    {
        var (a, b) = UnixSocket.CreatePair();
        using var _a = a;
        using var _b = b;
        using var memfd = MemFd.Create("vgh-test", 4096);
        using var m = MappedMemory.Map(memfd, 0, 4096);
        m.AsSpan(0, 4).Fill(0x11);
        var fds = new List<FdHandle>();
        try
        {
            UnixSocket.SendVector(a, [new IoSegment(m.Address, 4)], [memfd], out _);
            UnixSocket.Receive(b, new byte[4], fds, out _);

            using var remote = MappedMemory.Map(Assert.Single(fds), 0, 4096);
            remote.AsSpan(100, 1)[0] = 0x77; // written through the received fd ...
            Assert.Equal(0x77, m.AsSpan(100, 1)[0]); // ... visible through ours
        }
        finally { DisposeAll(fds); }
    }

    [Fact]
    public void Send_EmptyPayloadNoFds_SendsNothing()
    {
        var (a, b) = NonBlockingPair();
        using var _a = a;
        using var _b = b;
        Assert.Equal(IoStatus.Ok, UnixSocket.Send(a, [], [], out int sent));
        Assert.Equal(0, sent);
        Assert.Equal(IoStatus.WouldBlock, UnixSocket.Receive(b, new byte[1], null, out _));
    }

    // ---- Listen / Connect / Accept ----

    [Fact]
    public void ListenConnectAccept_ConnectedPairCarriesBytesAndFds()
    {
        using var dir = new TempDir();
        string path = dir.File("s.sock");
        using var listener = UnixSocket.Listen(path);
        using var client = UnixSocket.Connect(path);
        using var server = UnixSocket.Accept(listener, 5000);
        Assert.NotNull(server);
        using var efd = EventFd.Create();
        var fds = new List<FdHandle>();
        try
        {
            Assert.True(UnixSocket.IsListening(listener));
            Assert.False(UnixSocket.IsListening(client));
            Assert.False(UnixSocket.IsListening(server!));
            Assert.True(Fds.IsCloseOnExec(server!));

            UnixSocket.Send(client, [1, 2], [efd], out _);
            var buf = new byte[2];
            UnixSocket.Receive(server!, buf, fds, out int got);

            Assert.Equal(new byte[] { 1, 2 }, buf[..got]);
            EventFd.Signal(Assert.Single(fds));
            Assert.Equal(1, Fds.ReadEventFdCounter(efd));
        }
        finally { DisposeAll(fds); }
    }

    [Fact]
    public void Accept_NoPendingConnectionWithTimeoutZero_ReturnsNull()
    {
        using var dir = new TempDir();
        using var listener = UnixSocket.Listen(dir.File("s.sock"));
        Assert.Null(UnixSocket.Accept(listener, 0));
    }

    [Fact]
    public void Accept_NonBlockingListenerWithoutTimeout_ReturnsNull()
    {
        using var dir = new TempDir();
        using var listener = UnixSocket.Listen(dir.File("s.sock"));
        listener.SetNonBlocking(true);
        Assert.Null(UnixSocket.Accept(listener));
    }

    [Fact]
    public void Listen_StaleSocketFileFromEarlierRun_IsReplaced()
    {
        using var dir = new TempDir();
        string path = dir.File("s.sock");
        UnixSocket.Listen(path).Dispose(); // leaves the socket file behind
        Assert.True(File.Exists(path));

        using var listener = UnixSocket.Listen(path);
        using var client = UnixSocket.Connect(path);
        using var server = UnixSocket.Accept(listener, 5000);

        Assert.NotNull(server);
    }

    [Fact]
    public void Listen_PathIsARegularFile_RefusesAndKeepsTheFile()
    {
        using var dir = new TempDir();
        string path = dir.File("not-a-socket");
        File.WriteAllText(path, "precious");

        Assert.Throws<IOException>(() => UnixSocket.Listen(path));

        Assert.Equal("precious", File.ReadAllText(path));
    }

    [Fact]
    public void Listen_PathLongerThanSunPath_ThrowsArgumentException()
    {
        using var dir = new TempDir();
        string path = dir.File(new string('x', 120));
        Assert.Throws<ArgumentException>(() => UnixSocket.Listen(path));
        Assert.Throws<ArgumentException>(() => UnixSocket.Connect(path));
    }

    [Fact]
    public void Connect_NothingListening_ThrowsWithErrno()
    {
        using var dir = new TempDir();
        var e = Assert.Throws<SyscallException>(() => UnixSocket.Connect(dir.File("missing.sock")));
        Assert.Equal(ENOENT, e.Errno);
        Assert.StartsWith("connect(", e.Call);
    }

    // ---- options and shutdown ----

    [Fact]
    public void SetReceiveTimeout_BlockingReceiveWithNoData_ReturnsWouldBlock()
    {
        var (a, b) = UnixSocket.CreatePair();
        using var _a = a;
        using var _b = b;
        UnixSocket.SetReceiveTimeout(b, TimeSpan.FromMilliseconds(20));
        Assert.Equal(IoStatus.WouldBlock, UnixSocket.Receive(b, new byte[1], null, out _));
    }

    [Fact]
    public void SetSendTimeout_ValidTimeout_DoesNotThrow()
    {
        var (a, b) = UnixSocket.CreatePair();
        using var _a = a;
        using var _b = b;
        UnixSocket.SetSendTimeout(a, TimeSpan.FromSeconds(1.5));
        long* tv = stackalloc long[2];
        socklen_t len = 16;
        Assert.Equal(0, getsockopt(a.Number, SOL_SOCKET, SO_SNDTIMEO, tv, &len));
        Assert.Equal((1L, 500_000L), (tv[0], tv[1]));
    }

    [Fact]
    public void TrySetBuffers_KernelReportsTheDoubledSize()
    {
        // Linux stores twice the requested size (bookkeeping overhead); 100 000 is under the
        // default wmem_max/rmem_max, and SO_*BUFFORCE ignores the cap anyway.
        var (a, b) = UnixSocket.CreatePair();
        using var _a = a;
        using var _b = b;
        UnixSocket.TrySetSendBuffer(a, 100_000);
        UnixSocket.TrySetReceiveBuffer(b, 100_000);
        Assert.Equal(200_000, GetInt(a, SO_SNDBUF));
        Assert.Equal(200_000, GetInt(b, SO_RCVBUF));
    }

    [Fact]
    public void Shutdown_WakesThePeerWithClosed()
    {
        var (a, b) = UnixSocket.CreatePair();
        using var _a = a;
        using var _b = b;
        UnixSocket.Shutdown(a);
        Assert.Equal(IoStatus.Closed, UnixSocket.Receive(b, new byte[1], null, out _));
        Assert.Equal(IoStatus.Closed, UnixSocket.Receive(a, new byte[1], null, out _));
    }

    [Fact]
    public void Shutdown_DisposedSocket_IsIgnored()
    {
        var (a, b) = UnixSocket.CreatePair();
        using var _b = b;
        a.Dispose();
        UnixSocket.Shutdown(a);
        Assert.True(a.IsClosed);
    }

    // ---- helpers ----

    private static IoStatus ReceiveNonBlocking(FdHandle socket, Span<byte> buffer, out int got)
    {
        socket.SetNonBlocking(true);
        return UnixSocket.Receive(socket, buffer, null, out got);
    }

    private static int GetInt(FdHandle socket, int option)
    {
        int v = 0;
        socklen_t len = sizeof(int);
        if (getsockopt(socket.Number, SOL_SOCKET, option, &v, &len) < 0) throw new SyscallException("getsockopt", errno);
        return v;
    }

    /// <summary>sendmsg with any number of fds (UnixSocket.Send refuses more than 32): a hostile peer.</summary>
    private static void RawSend(FdHandle socket, byte[] data, int[] fds)
    {
        int payload = fds.Length * sizeof(int);
        int space = 16 + ((payload + 7) & ~7);
        byte* control = stackalloc byte[space];
        new Span<byte>(control, space).Clear();
        fixed (byte* p = data)
        {
            iovec iov = default;
            iov.iov_base = p;
            iov.iov_len = (size_t)(ulong)data.Length;
            msghdr msg = default;
            msg.msg_iov = &iov;
            msg.msg_iovlen = 1;
            msg.msg_control = control;
            msg.msg_controllen = (socklen_t)space;
            cmsghdr* c = CMSG_FIRSTHDR(&msg);
            c->cmsg_len = (socklen_t)(16 + payload);
            c->cmsg_level = SOL_SOCKET;
            c->cmsg_type = SCM_RIGHTS;
            Marshal.Copy(fds, 0, (nint)CMSG_DATA(c), fds.Length);
            long rc = sendmsg(socket.Number, &msg, MSG_NOSIGNAL);
            if (rc < 0) throw new SyscallException("sendmsg", errno);
        }
    }
}
