using Tmds.Linux;
using VirtioGpuHost.Interop;

namespace VirtioGpuHost.UnitTests.Interop;

public class MemFdTests
{
    [Theory]
    [InlineData(0UL)]
    [InlineData(1UL)]
    [InlineData(0x12345UL)]
    [InlineData(8UL << 30)] // sparse: nothing is allocated
    public void Create_SizeIsWhatFstatReports(ulong size)
    {
        using var fd = MemFd.Create("vgh-test", size);
        Assert.Equal(size, MemFd.GetSize(fd));
        Assert.True(Fds.IsCloseOnExec(fd));
    }

    [Fact]
    public void Create_NameShowsInProcFd()
    {
        using var fd = MemFd.Create("vgh-named", 16);
        var target = new FileInfo($"/proc/self/fd/{fd.Number}").LinkTarget;
        Assert.Equal("/memfd:vgh-named (deleted)", target);
    }

    [Fact]
    public void TrySealSize_ForbidsResizing()
    {
        using var fd = MemFd.Create("vgh-test", 4096);

        Assert.True(MemFd.TrySealSize(fd));

        Assert.Equal(-1, LibC.ftruncate(fd.Number, 8192));
        Assert.Equal(-1, LibC.ftruncate(fd.Number, 0));
        Assert.Equal(4096UL, MemFd.GetSize(fd));
    }

    [Fact]
    public void TrySealSize_FdWithoutSealingSupport_False()
    {
        var (r, w) = Fds.Pipe();
        using var _r = r;
        using var _w = w;
        Assert.False(MemFd.TrySealSize(w));
    }

    [Fact]
    public void GetSize_DisposedFd_Throws()
    {
        var fd = MemFd.Create("vgh-test", 16);
        fd.Dispose();
        Assert.Throws<ObjectDisposedException>(() => MemFd.GetSize(fd));
    }
}
