using VirtioGpuHost.Interop;

namespace VirtioGpuHost.UnitTests.Interop;

public class PollerTests
{
    [Fact]
    public void Poll_NothingReady_ZeroAndReadyCleared()
    {
        using var efd = EventFd.Create();
        Span<PollEntry> e = [new PollEntry(efd, PollEvents.In) { Ready = PollEvents.In }];

        Assert.Equal(0, Poller.Poll(e, 0));

        Assert.Equal(PollEvents.None, e[0].Ready);
        Assert.False(e[0].Readable);
    }

    [Fact]
    public void Poll_SignalledEventFd_Readable()
    {
        using var efd = EventFd.Create();
        EventFd.Signal(efd);
        Span<PollEntry> e = [new PollEntry(efd, PollEvents.In)];

        Assert.Equal(1, Poller.Poll(e, 0));

        Assert.Equal(PollEvents.In, e[0].Ready);
        Assert.True(e[0].Readable);
    }

    [Fact]
    public void Poll_SeveralEntries_OnlyTheReadyOneIsMarked()
    {
        using var quiet = EventFd.Create();
        using var busy = EventFd.Create();
        EventFd.Signal(busy);
        Span<PollEntry> e = [new PollEntry(quiet, PollEvents.In), new PollEntry(busy, PollEvents.In)];

        Assert.Equal(1, Poller.Poll(e, 0));

        Assert.Equal(PollEvents.None, e[0].Ready);
        Assert.Equal(PollEvents.In, e[1].Ready);
    }

    [Fact]
    public void Poll_NullAndClosedEntries_AreSkipped()
    {
        using var busy = EventFd.Create();
        EventFd.Signal(busy);
        var closed = EventFd.Create();
        EventFd.Signal(closed);
        closed.Dispose();
        Span<PollEntry> e = [new PollEntry(null, PollEvents.In), new PollEntry(closed, PollEvents.In), new PollEntry(busy, PollEvents.In)];

        Assert.Equal(1, Poller.Poll(e, 0));

        Assert.Equal(PollEvents.None, e[0].Ready);
        Assert.Equal(PollEvents.None, e[1].Ready);
        Assert.True(e[2].Readable);
    }

    [Fact]
    public void Poll_PeerClosedSocket_HangUpCountsAsReadable()
    {
        var (a, b) = UnixSocket.CreatePair();
        using var _b = b;
        a.Dispose();
        Span<PollEntry> e = [new PollEntry(b, PollEvents.In)];

        Assert.Equal(1, Poller.Poll(e, 0));

        Assert.True((e[0].Ready & PollEvents.HangUp) != 0);
        Assert.True(e[0].Readable);
    }

    [Fact]
    public void Poll_WritableSocket_Writable()
    {
        var (a, b) = UnixSocket.CreatePair();
        using var _a = a;
        using var _b = b;
        Span<PollEntry> e = [new PollEntry(a, PollEvents.Out)];

        Assert.Equal(1, Poller.Poll(e, 0));

        Assert.Equal(PollEvents.Out, e[0].Ready);
        Assert.True(e[0].Writable);
        Assert.False(e[0].Readable);
    }

    [Fact]
    public void Poll_FdFromAnotherThread_WakesAnInfiniteWait()
    {
        using var efd = EventFd.Create();
        var signaller = new Thread(() => { Thread.Sleep(20); EventFd.Signal(efd); });
        signaller.Start();
        Span<PollEntry> e = [new PollEntry(efd, PollEvents.In)];

        Assert.Equal(1, Poller.Poll(e, -1));

        signaller.Join();
        Assert.True(e[0].Readable);
    }

    [Fact]
    public void WaitReadable_ReflectsPendingData()
    {
        var (r, w) = Fds.Pipe();
        using var _r = r;
        using var _w = w;
        Assert.False(Poller.WaitReadable(r, 0));
        Fds.Write(w, [1]);
        Assert.True(Poller.WaitReadable(r, 0));
    }
}
