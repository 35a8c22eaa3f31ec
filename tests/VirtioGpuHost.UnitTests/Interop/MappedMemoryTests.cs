using VirtioGpuHost.Interop;

namespace VirtioGpuHost.UnitTests.Interop;

public class MappedMemoryTests
{
    [Fact]
    public void Map_TwoMappingsOfOneFile_ShareBytes()
    {
        using var fd = MemFd.Create("vgh-test", 0x4000);
        using var a = MappedMemory.Map(fd, 0, 0x4000);
        using var b = MappedMemory.Map(fd, 0x2000, 0x2000);

        new byte[] { 1, 2, 3, 4 }.CopyTo(a.AsSpan(0x2010, 4));

        Assert.Equal(new byte[] { 1, 2, 3, 4 }, b.AsSpan(0x10, 4).ToArray());
        Assert.Equal(0x2000UL, b.Length);
    }

    [Theory]
    [InlineData(1UL)]
    [InlineData(0x123UL)]
    [InlineData(0x1FFFUL)]
    public void Map_UnalignedOffset_AddressIsThatFileOffset(ulong offset)
    {
        using var fd = MemFd.Create("vgh-test", 0x4000);
        using var whole = MappedMemory.Map(fd, 0, 0x4000);
        var all = whole.AsSpan(0, 0x4000);
        for (int i = 0; i < all.Length; i++) all[i] = (byte)(i * 13 + 5);

        using var part = MappedMemory.Map(fd, offset, 0x100);

        Assert.Equal(all.Slice((int)offset, 0x100).ToArray(), part.AsSpan(0, 0x100).ToArray());
        Assert.Equal(0x100UL, part.Length);
    }

    [Fact]
    public void Map_ZeroLength_Throws()
    {
        using var fd = MemFd.Create("vgh-test", 0x1000);
        Assert.Throws<ArgumentException>(() => MappedMemory.Map(fd, 0, 0));
    }

    [Fact]
    public void Map_NotMappableFd_ThrowsSyscallException()
    {
        var (r, w) = Fds.Pipe();
        using var _r = r;
        using var _w = w;
        var e = Assert.Throws<SyscallException>(() => MappedMemory.Map(r, 0, 0x1000));
        Assert.Equal("mmap", e.Call);
    }

    [Fact]
    public void Map_DisposedFd_ThrowsObjectDisposed()
    {
        var fd = MemFd.Create("vgh-test", 0x1000);
        fd.Dispose();
        Assert.Throws<ObjectDisposedException>(() => MappedMemory.Map(fd, 0, 0x1000));
    }

    [Fact]
    public void Map_ReadOnly_SeesWritesThroughAnotherMapping()
    {
        using var fd = MemFd.Create("vgh-test", 0x1000);
        using var rw = MappedMemory.Map(fd, 0, 0x1000);
        using var ro = MappedMemory.Map(fd, 0, 0x1000, writable: false);
        rw.AsSpan(7, 1)[0] = 0xC3;
        Assert.Equal(0xC3, ro.AsSpan(7, 1)[0]);
    }

    [Fact]
    public void Anonymous_IsZeroedAndWritable()
    {
        using var m = MappedMemory.Anonymous(3 * MappedMemory.PageSize);
        var s = m.AsSpan(0, (int)m.Length);
        Assert.All(s.ToArray(), b => Assert.Equal(0, b));
        s[^1] = 1;
        Assert.Equal(1, m.AsSpan(m.Length - 1, 1)[0]);
        Assert.Equal((ulong)Environment.SystemPageSize, MappedMemory.PageSize);
    }

    [Theory]
    [InlineData(0UL, 4097)]
    [InlineData(4096UL, 1)]
    [InlineData(4097UL, 0)]
    [InlineData(10UL, -1)]
    [InlineData(ulong.MaxValue, 1)]
    public void AsSpan_OutOfRange_Throws(ulong offset, int length)
    {
        using var m = MappedMemory.Anonymous(4096);
        Assert.Throws<ArgumentOutOfRangeException>(() => m.AsSpan(offset, length));
    }

    [Fact]
    public void AsSpan_WholeRangeAndEmptyAtEnd_Allowed()
    {
        using var m = MappedMemory.Anonymous(4096);
        Assert.Equal(4096, m.AsSpan(0, 4096).Length);
        Assert.Equal(0, m.AsSpan(4096, 0).Length);
    }

    [Fact]
    public void Dispose_ThenAddress_ThrowsAndSecondDisposeIsHarmless()
    {
        var m = MappedMemory.Anonymous(4096);
        m.Dispose();
        Assert.Throws<ObjectDisposedException>(() => m.Address);
        Assert.Throws<ObjectDisposedException>(() => m.AsSpan(0, 1).Length);
        m.Dispose();
    }
}
