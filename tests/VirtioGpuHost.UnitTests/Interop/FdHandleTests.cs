using Tmds.Linux;
using VirtioGpuHost.Interop;

namespace VirtioGpuHost.UnitTests.Interop;

public class FdHandleTests
{
    [Fact]
    public void Dispose_ClosesTheFd()
    {
        var (r, w) = Fds.Pipe();
        using var _r = r;

        w.Dispose();

        Assert.True(w.IsClosed);
        Assert.True(Fds.AllWritersClosed(r));
        Assert.Equal("fd(closed)", w.ToString());
    }

    [Fact]
    public void Dispose_NotOwned_LeavesTheFdOpen()
    {
        var (r, w) = Fds.Pipe();
        using var _r = r;
        using var _w = w;
        var borrowed = new FdHandle(w.Number, ownsHandle: false);

        borrowed.Dispose();

        Assert.False(Fds.AllWritersClosed(r));
        Assert.Equal(1, Fds.Write(w, [5]));
    }

    [Fact]
    public void Invalid_NegativeNumber_IsInvalidAndDisposesQuietly()
    {
        var h = new FdHandle(-1);
        Assert.True(h.IsInvalid);
        h.Dispose();
    }

    [Fact]
    public void Number_And_ToString_NameTheFd()
    {
        var (r, w) = Fds.Pipe();
        using var _r = r;
        using var _w = w;
        Assert.True(r.Number >= 0);
        Assert.Equal($"fd {r.Number}", r.ToString());
    }

    [Fact]
    public void Duplicate_IndependentCopyOfTheSameFile()
    {
        var (r, w) = Fds.Pipe();
        using var _r = r;
        var dup = w.Duplicate();

        Assert.NotEqual(w.Number, dup.Number);
        Assert.True(Fds.IsCloseOnExec(dup));
        w.Dispose();
        Assert.False(Fds.AllWritersClosed(r)); // the duplicate still holds the pipe open
        Fds.Write(dup, [0x5C]);
        var buf = new byte[1];
        Assert.Equal(1, Fds.Read(r, buf));
        Assert.Equal(0x5C, buf[0]);

        dup.Dispose();
        Assert.True(Fds.AllWritersClosed(r));
    }

    [Fact]
    public void Duplicate_Disposed_Throws()
    {
        var (r, w) = Fds.Pipe();
        r.Dispose();
        w.Dispose();
        Assert.Throws<ObjectDisposedException>(() => w.Duplicate());
    }

    [Fact]
    public void SetNonBlocking_TogglesONonblock()
    {
        var (a, b) = UnixSocket.CreatePair();
        using var _a = a;
        using var _b = b;
        Assert.False(Fds.IsNonBlocking(a));

        a.SetNonBlocking(true);
        Assert.True(Fds.IsNonBlocking(a));
        Assert.Equal(IoStatus.WouldBlock, UnixSocket.Receive(a, new byte[1], null, out _));

        a.SetNonBlocking(false);
        Assert.False(Fds.IsNonBlocking(a));
    }

    [Fact]
    public void SetNonBlocking_Disposed_ThrowsObjectDisposedInsteadOfTouchingAReusedNumber()
    {
        var (r, w) = Fds.Pipe();
        using var _r = r;
        w.Dispose();
        Assert.Throws<ObjectDisposedException>(() => w.SetNonBlocking(false));
    }

    [Fact]
    public void Adopt_OpenFd_TakesOwnershipAndSetsCloseOnExec()
    {
        var (rawR, rawW) = Fds.RawPipe();
        using var r = FdHandle.Adopt(rawR);
        Assert.False(Fds.IsCloseOnExec(rawW));

        var w = FdHandle.Adopt(rawW);

        Assert.Equal(rawW, w.Number);
        Assert.True(Fds.IsCloseOnExec(w));
        r.SetNonBlocking(true);
        w.Dispose();
        Assert.True(Fds.AllWritersClosed(r));
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(int.MaxValue)]
    public void Adopt_NotAnOpenFd_Throws(int fd)
    {
        var e = Assert.Throws<ArgumentException>(() => FdHandle.Adopt(fd));
        Assert.Equal("fd", e.ParamName);
    }

    [Fact]
    public void Syscall_FailureCarriesCallAndErrno()
    {
        var e = new SyscallException("frob", LibC.EBADF);
        Assert.Equal("frob", e.Call);
        Assert.Equal(Errno.EBADF, e.Errno);
        Assert.StartsWith("frob failed: errno 9 ", e.Message);
    }
}
