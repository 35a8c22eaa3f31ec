using VirtioGpuHost.Interop;

namespace VirtioGpuHost.UnitTests.Interop;

public class EventFdTests
{
    [Fact]
    public void Create_Default_NonBlockingAndCloseOnExec()
    {
        using var efd = EventFd.Create();
        Assert.True(Fds.IsNonBlocking(efd));
        Assert.True(Fds.IsCloseOnExec(efd));
    }

    [Fact]
    public void Create_Blocking_HasNoONonblock()
    {
        using var efd = EventFd.Create(nonBlocking: false);
        Assert.False(Fds.IsNonBlocking(efd));
    }

    [Fact]
    public void Signal_AddsOnePerCall()
    {
        using var efd = EventFd.Create();
        EventFd.Signal(efd);
        EventFd.Signal(efd);
        EventFd.Signal(efd);
        Assert.Equal(3, Fds.ReadEventFdCounter(efd));
    }

    [Fact]
    public void Drain_AfterSignals_TrueOnceThenFalse()
    {
        using var efd = EventFd.Create();
        EventFd.Signal(efd);
        EventFd.Signal(efd);

        Assert.True(EventFd.Drain(efd));
        Assert.False(EventFd.Drain(efd));
        Assert.Equal(-1, Fds.ReadEventFdCounter(efd));
    }

    [Fact]
    public void Drain_NothingPending_False()
    {
        using var efd = EventFd.Create();
        Assert.False(EventFd.Drain(efd));
    }

    [Fact]
    public void Signal_DisposedFd_IsIgnored()
    {
        var efd = EventFd.Create();
        efd.Dispose();
        EventFd.Signal(efd);
        Assert.True(efd.IsClosed);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(64)]   // exactly one read's worth
    public void Drain_PipeWithOneReadsWorth_EmptiesIt(int bytes)
    {
        var (r, w) = Fds.Pipe();
        using var _r = r;
        using var _w = w;
        Fds.Write(w, new byte[bytes]);

        Assert.True(EventFd.Drain(r));

        Assert.Equal(-1, Fds.Read(r, new byte[1]));
        Assert.False(EventFd.Drain(r));
    }

    [Fact]
    public void Drain_PipeWithMore_ReadsOnceAndLeavesTheRestForTheNextPoll()
    {
        // One read per readiness: an fd that is always readable must not trap the caller in a loop.
        var (r, w) = Fds.Pipe();
        using var _r = r;
        using var _w = w;
        Fds.Write(w, new byte[1000]);

        Assert.True(EventFd.Drain(r));

        Assert.True(Poller.WaitReadable(r, 0));
        int drains = 1;
        while (EventFd.Drain(r)) drains++;
        Assert.Equal((1000 + 63) / 64, drains);
    }

    [Fact]
    public void Drain_DevZero_ReturnsAfterOneReadAndIsNoNotificationFd()
    {
        using var file = File.OpenHandle("/dev/zero", FileMode.Open, FileAccess.Read);
        using var zero = new FdHandle((int)file.DangerousGetHandle(), ownsHandle: false);
        Assert.True(EventFd.Drain(zero)); // would never return if it read until empty
        Assert.False(EventFd.IsEventFdOrPipe(zero));
    }

    [Fact]
    public void IsEventFdOrPipe_EventFdAndPipe_True()
    {
        using var e = EventFd.Create();
        var (r, w) = Fds.Pipe();
        using var _r = r;
        using var _w = w;
        Assert.True(EventFd.IsEventFdOrPipe(e));
        Assert.True(EventFd.IsEventFdOrPipe(r));
        Assert.True(EventFd.IsEventFdOrPipe(w));
    }

    [Fact]
    public void Drain_DisposedFd_Throws()
    {
        var efd = EventFd.Create();
        efd.Dispose();
        Assert.Throws<ObjectDisposedException>(() => EventFd.Drain(efd));
    }
}
