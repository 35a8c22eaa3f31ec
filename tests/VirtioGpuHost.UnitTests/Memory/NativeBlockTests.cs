using VirtioGpuHost.GuestMemory;

namespace VirtioGpuHost.UnitTests.Memory;

public class NativeBlockTests
{
    [Fact]
    public void Allocate_IsZeroedAndPageAligned()
    {
        var block = NativeBlock.Allocate(3 * 4096 + 5);
        try
        {
            Assert.Equal(3UL * 4096 + 5, block.Length);
            Assert.Equal(0, block.Address % 4096);
            Assert.Null(block.Fd);
            Assert.Equal(0UL, block.FdOffset);
            Assert.All(block.AsSpan(0, (int)block.Length).ToArray(), b => Assert.Equal(0, b));
        }
        finally { block.Release(); }
    }

    [Fact]
    public void Allocate_ZeroLength_Throws() => Assert.Throws<ArgumentOutOfRangeException>(() => NativeBlock.Allocate(0));

    [Theory]
    [InlineData(0UL, 100)]
    [InlineData(60UL, 40)]
    [InlineData(100UL, 0)]
    public void AsSpan_InRange_WritesLandInTheBlock(ulong offset, int length)
    {
        var block = NativeBlock.Allocate(100);
        try
        {
            block.AsSpan(offset, length).Fill(0x3C);
            var all = block.AsSpan(0, 100).ToArray();
            for (int i = 0; i < 100; i++) Assert.Equal((ulong)i >= offset && (ulong)i < offset + (ulong)length ? 0x3C : 0, all[i]);
        }
        finally { block.Release(); }
    }

    [Theory]
    [InlineData(0UL, 101)]
    [InlineData(101UL, 0)]
    [InlineData(50UL, 51)]
    [InlineData(0UL, -1)]
    [InlineData(ulong.MaxValue, 1)]
    public void AsSpan_OutOfRange_Throws(ulong offset, int length)
    {
        var block = NativeBlock.Allocate(100);
        try { Assert.Throws<ArgumentOutOfRangeException>(() => block.AsSpan(offset, length)); }
        finally { block.Release(); }
    }

    [Fact]
    public void Release_MoreThanAdded_Throws()
    {
        var block = NativeBlock.Allocate(64);
        block.AddRef();
        block.Release();
        block.Release(); // freed here
        Assert.Throws<InvalidOperationException>(() => block.Release());
    }

    [Fact]
    public void AddRef_AfterFree_Throws()
    {
        var block = NativeBlock.Allocate(64);
        block.Release();
        Assert.Throws<ObjectDisposedException>(() => block.AddRef());
    }
}
