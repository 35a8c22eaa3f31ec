using VirtioGpuHost.GuestMemory;
using VirtioGpuHost.Interop;

namespace VirtioGpuHost.UnitTests.Memory;

public class MappedBlockTests
{
    [Fact]
    public void CreateMemFd_ZeroFilledAndShareableByFd()
    {
        var block = MappedBlock.CreateMemFd("vgh-test", 0x3000);
        try
        {
            Assert.Equal(0x3000UL, block.Length);
            Assert.NotNull(block.Fd);
            Assert.Equal(0x3000UL, MemFd.GetSize(block.Fd!));
            Assert.All(block.AsSpan(0, 0x3000).ToArray(), b => Assert.Equal(0, b));
        }
        finally { block.Release(); }
    }

    [Fact]
    public void Map_SameFileTwice_SharesBytes()
    {
        var first = MappedBlock.CreateMemFd("vgh-test", 0x3000);
        var second = MappedBlock.Map(first.Fd!.Duplicate(), 0x1000, 0x2000);
        try
        {
            new byte[] { 1, 2, 3 }.CopyTo(first.AsSpan(0x1800, 3));
            Assert.Equal(new byte[] { 1, 2, 3 }, second.AsSpan(0x800, 3).ToArray());
            Assert.Equal(0x1000UL, second.FdOffset);
            Assert.Equal(0x2000UL, second.Length);
        }
        finally { second.Release(); first.Release(); }
    }

    [Fact]
    public void Map_UnalignedOffset_AddressesTheRightByte()
    {
        var first = MappedBlock.CreateMemFd("vgh-test", 0x3000);
        var second = MappedBlock.Map(first.Fd!.Duplicate(), 0x1234, 0x100);
        try
        {
            first.AsSpan(0x1234, 4).Fill(0x99);
            Assert.Equal(new byte[] { 0x99, 0x99, 0x99, 0x99, 0 }, second.AsSpan(0, 5).ToArray());
            Assert.Equal(0x1234UL, second.FdOffset);
        }
        finally { second.Release(); first.Release(); }
    }

    [Theory]
    [InlineData(0UL, 0x2001UL)]                  // one byte past the end
    [InlineData(0x2000UL, 1UL)]                  // starts at the end
    [InlineData(0x3000UL, 0x1000UL)]             // starts past the end
    [InlineData(0x1000UL, ulong.MaxValue)]       // offset + length overflows
    [InlineData(ulong.MaxValue, 2UL)]
    public void Map_RangeBeyondFileSize_ThrowsAndDoesNotTakeTheFd(ulong offset, ulong length)
    {
        using var fd = MemFd.Create("vgh-test", 0x2000);

        Assert.Throws<ArgumentException>(() => MappedBlock.Map(fd, offset, length));

        Assert.False(fd.IsClosed);
        Assert.Equal(0x2000UL, MemFd.GetSize(fd));
    }

    [Fact]
    public void Map_ExactlyTheWholeFile_Succeeds()
    {
        var fd = MemFd.Create("vgh-test", 0x2000);
        var block = MappedBlock.Map(fd, 0, 0x2000);
        block.AsSpan(0x1FFF, 1)[0] = 7;
        Assert.Equal(7, block.AsSpan(0x1FFF, 1)[0]);
        block.Release();
    }

    [Fact]
    public void Release_Last_ClosesTheFd()
    {
        var fd = MemFd.Create("vgh-test", 0x1000);
        var block = MappedBlock.Map(fd, 0, 0x1000);
        block.AddRef();

        block.Release();
        Assert.False(fd.IsClosed);
        block.Release();

        Assert.True(fd.IsClosed);
    }

    [Fact]
    public void Release_MapHoldingTheBlock_ClosesFdOnlyWhenMapIsDisposed()
    {
        var block = MappedBlock.CreateMemFd("vgh-test", 0x1000);
        var map = GuestMemoryMap.Create([new GuestRegion(new GuestAddress(0), 0x1000, (ulong)block.Address, 0, block)]);
        block.Release();
        Assert.False(block.Fd!.IsClosed);

        map.Dispose();

        Assert.True(block.Fd!.IsClosed);
    }
}
