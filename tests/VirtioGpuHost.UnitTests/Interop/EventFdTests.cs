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
    [InlineData(1000)]
    public void Drain_Pipe_EmptiesItWhateverTheAmount(int bytes)
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
    public void Drain_DisposedFd_Throws()
    {
        var efd = EventFd.Create();
        efd.Dispose();
        Assert.Throws<ObjectDisposedException>(() => EventFd.Drain(efd));
    }
}
