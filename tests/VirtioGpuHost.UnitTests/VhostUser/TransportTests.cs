using VirtioGpuHost.FrontEnd;
using VirtioGpuHost.Interop;
using VirtioGpuHost.VhostUser.Backend;
using VirtioGpuHost.VhostUser.Transport;
using VirtioGpuHost.VhostUser.Wire;

namespace VirtioGpuHost.UnitTests.VhostUser;

/// <summary>FramedSocket, ReceivedFds, EventLoop and BackendChannel over real socketpairs.</summary>
public class TransportTests
{
    private static (FramedSocket A, FramedSocket B) Pair()
    {
        var (a, b) = UnixSocket.CreatePair();
        UnixSocket.SetReceiveTimeout(a, TimeSpan.FromSeconds(10));
        UnixSocket.SetReceiveTimeout(b, TimeSpan.FromSeconds(10));
        return (new FramedSocket(a), new FramedSocket(b));
    }

    [Fact]
    public void FramedSocket_FdsSentWithAMessage_ArriveWithThatMessageOnly()
    {
        var (a, b) = Pair();
        using var _a = a;
        using var _b = b;
        using var e1 = EventFd.Create();
        using var e2 = EventFd.Create();
        a.Send(7, VhostUserHeader.Version, [1, 2, 3], [e1, e2]);
        a.Send(8, VhostUserHeader.Version, new byte[100]);
        using (var m = b.Receive()!)
        {
            Assert.Equal((7u, 3u, 2), (m.Header.Request, m.Header.Size, m.Fds.Count));
            Assert.Equal(new byte[] { 1, 2, 3 }, m.Payload);
            // The fds are the same eventfds: a signal on ours shows on theirs.
            using var got = m.Fds.Take(1);
            EventFd.Signal(e2);
            Assert.True(Poller.WaitReadable(got, 1000));
        }
        using (var m = b.Receive()!)
        {
            Assert.Equal((8u, 100, 0), (m.Header.Request, m.Payload.Length, m.Fds.Count));
        }
    }

    [Fact]
    public void FramedSocket_PeerClosesBetweenMessages_ReturnsNull()
    {
        var (a, b) = Pair();
        using var _b = b;
        a.Send(1, VhostUserHeader.Version, []);
        a.Dispose();
        using (var m = b.Receive()) Assert.NotNull(m);
        Assert.Null(b.Receive());
    }

    [Fact]
    public void FramedSocket_PayloadOverItsLimit_ThrowsProtocolViolation()
    {
        var (a, b) = UnixSocket.CreatePair();
        using var fa = new FramedSocket(a, maxPayload: 1 << 20);
        using var fb = new FramedSocket(b);
        fa.Send(1, VhostUserHeader.Version, new byte[FramedSocket.DefaultMaxPayload + 1]);
        var e = Assert.Throws<ProtocolViolationException>(() => fb.Receive());
        Assert.Contains("exceeds the limit", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void FramedSocket_HeaderCutShortThenClosed_ThrowsProtocolViolation()
    {
        var (a, b) = UnixSocket.CreatePair();
        using var fb = new FramedSocket(b);
        UnixSocket.Send(a, new byte[] { 1, 2, 3 }, default, out _);
        a.Dispose();
        Assert.Throws<ProtocolViolationException>(() => fb.Receive());
    }

    [Fact]
    public void FramedSocket_SilentPeerInsideAMessage_TimesOutWithProtocolViolation()
    {
        var (a, b) = UnixSocket.CreatePair();
        using var _a = a;
        UnixSocket.SetReceiveTimeout(b, TimeSpan.FromMilliseconds(200));
        using var fb = new FramedSocket(b);
        var h = new byte[VhostUserHeader.Length];
        new VhostUserHeader(1, VhostUserHeader.Version, 8).Write(h);
        UnixSocket.Send(a, h, default, out _);
        var e = Assert.Throws<ProtocolViolationException>(() => fb.Receive());
        Assert.Contains("payload cut short", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(true)]  // blocking with SO_SNDTIMEO, as the back-end's main socket
    [InlineData(false)] // non-blocking
    public void FramedSocket_PeerNotReading_SendFailsAfterItsSendTimeoutNotLater(bool blocking)
    {
        var timeout = TimeSpan.FromMilliseconds(300);
        var (a, b) = UnixSocket.CreatePair();
        using var _b = b; // never read
        if (blocking) UnixSocket.SetSendTimeout(a, timeout);
        else a.SetNonBlocking(true);
        using var fa = new FramedSocket(a) { SendTimeout = timeout };
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var e = Assert.Throws<IOException>(() =>
        {
            for (int i = 0; i < 1_000_000; i++)
            {
                sw.Restart();
                fa.Send(1, VhostUserHeader.Version, new byte[100]);
            }
        });
        // The send that failed waited the timeout once (the blocked send, then no extra poll).
        Assert.Contains("send timed out", e.Message, StringComparison.Ordinal);
        Assert.InRange(sw.Elapsed, timeout * 0.9, timeout + TimeSpan.FromSeconds(1));
    }

    [Fact]
    public void ReceivedFds_TakenTwice_Throws_AndDisposeClosesOnlyWhatWasNotTaken()
    {
        var e1 = EventFd.Create();
        var e2 = EventFd.Create();
        var fds = new ReceivedFds([e1, e2]);
        var taken = fds.Take(0);
        Assert.Throws<InvalidOperationException>(() => fds.Take(0));
        fds.Dispose();
        Assert.False(taken.IsClosed);
        Assert.True(e2.IsClosed);
        taken.Dispose();
    }

    [Fact]
    public void EventLoop_PostScheduleAndAwait_AllRunOnTheLoopThread()
    {
        using var loop = new EventLoop();
        var thread = new Thread(loop.Run) { IsBackground = true };
        thread.Start();
        try
        {
            var results = new System.Collections.Concurrent.ConcurrentQueue<string>();
            using var done = new ManualResetEventSlim();
            loop.Post(() => results.Enqueue(loop.IsLoopThread ? "post" : "post off-loop"));
            loop.Schedule(TimeSpan.FromMilliseconds(50), () => results.Enqueue(loop.IsLoopThread ? "timer" : "timer off-loop"));
            loop.Schedule(TimeSpan.FromMilliseconds(20), () => results.Enqueue("cancelled")).Dispose();
            loop.Post(async () =>
            {
                await Task.Delay(10);
                results.Enqueue(loop.IsLoopThread ? "await" : "await off-loop");
                loop.Schedule(TimeSpan.FromMilliseconds(100), done.Set);
            });
            Assert.True(done.Wait(TimeSpan.FromSeconds(10)));
            Assert.Equal(new[] { "await", "post", "timer" }, results.Order().ToArray());
        }
        finally
        {
            loop.Stop();
            Assert.True(thread.Join(TimeSpan.FromSeconds(10)));
        }
    }

    [Fact]
    public void EventLoop_WatchedFd_CallsBackWhenReadableUntilTheWatchIsDisposed()
    {
        using var loop = new EventLoop();
        using var efd = EventFd.Create();
        int calls = 0;
        using var fired = new SemaphoreSlim(0);
        IDisposable? watch = null;
        loop.Post(() => watch = loop.Watch(efd, () => PollEvents.In, _ =>
        {
            EventFd.Drain(efd);
            Interlocked.Increment(ref calls);
            fired.Release();
        }));
        var thread = new Thread(loop.Run) { IsBackground = true };
        thread.Start();
        try
        {
            EventFd.Signal(efd);
            Assert.True(fired.Wait(TimeSpan.FromSeconds(10)));
            EventFd.Signal(efd);
            Assert.True(fired.Wait(TimeSpan.FromSeconds(10)));
            using var disposed = new ManualResetEventSlim();
            loop.Post(() => { watch!.Dispose(); disposed.Set(); });
            Assert.True(disposed.Wait(TimeSpan.FromSeconds(10)));
            EventFd.Signal(efd);
            Assert.False(fired.Wait(TimeSpan.FromMilliseconds(200)));
            Assert.Equal(2, calls);
        }
        finally
        {
            loop.Stop();
            Assert.True(thread.Join(TimeSpan.FromSeconds(10)));
        }
    }

    [Fact]
    public void BackendChannel_WithReplyAck_ReturnsTheFrontEndsAck()
    {
        var (mine, theirs) = UnixSocket.CreatePair();
        using var server = new BackendChannelServer(mine, replyAck: true);
        using var channel = new BackendChannel(theirs, replyAck: true);
        // Without a host-visible region the reference front-end refuses SHMEM requests: failure (1).
        Assert.Equal(1UL, channel.Request(VhostUserBackendRequest.ShmemUnmap, new byte[ShmemMapRequest.Size]));
        lock (server.Received) Assert.Equal((VhostUserBackendRequest.ShmemUnmap, ShmemMapRequest.Size), server.Received.Single());
    }

    [Fact]
    public void BackendChannel_FrontEndGone_ThrowsIOException()
    {
        var (mine, theirs) = UnixSocket.CreatePair();
        mine.Dispose();
        using var channel = new BackendChannel(theirs, replyAck: true);
        Assert.ThrowsAny<IOException>(() => channel.Request(VhostUserBackendRequest.ShmemUnmap, new byte[ShmemMapRequest.Size]));
    }

    [Fact]
    public void BackendChannel_NotASocket_ThrowsIOException()
    {
        using var e = EventFd.Create();
        Assert.ThrowsAny<IOException>(() => new BackendChannel(e, replyAck: true));
    }
}
