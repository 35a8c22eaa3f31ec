using VirtioGpuHost.GuestMemory;

namespace VirtioGpuHost.UnitTests.Memory;

public class GuestRegionTests
{
    [Fact]
    public void Constructor_ZeroSize_Throws()
    {
        var block = NativeBlock.Allocate(0x1000);
        try { Assert.Throws<ArgumentException>(() => new GuestRegion(new GuestAddress(0), 0, 0, 0, block)); }
        finally { block.Release(); }
    }

    [Fact]
    public void Constructor_BlockSmallerThanRegion_Throws()
    {
        var block = NativeBlock.Allocate(0x1000);
        try { Assert.Throws<ArgumentException>(() => new GuestRegion(new GuestAddress(0), 0x1001, 0, 0, block)); }
        finally { block.Release(); }
    }

    [Theory]
    [InlineData(0xFFFF_FFFF_FFFF_F001UL, 0x1000UL)] // guest range wraps
    [InlineData(0x1000UL, 0xFFFF_FFFF_FFFF_F001UL)] // front-end range wraps
    public void Constructor_RangeWrapsAround_Throws(ulong gpa, ulong user)
    {
        var block = NativeBlock.Allocate(0x1000);
        try { Assert.Throws<ArgumentException>(() => new GuestRegion(new GuestAddress(gpa), 0x1000, user, 0, block)); }
        finally { block.Release(); }
    }

    [Fact]
    public void Contains_ChecksBothAddressSpacesWithExclusiveEnd()
    {
        var block = NativeBlock.Allocate(0x1000);
        try
        {
            var r = new GuestRegion(new GuestAddress(0x10000), 0x1000, 0x7000_0000, 0x200, block);
            Assert.Equal(0x11000UL, r.GuestEnd);
            Assert.True(r.ContainsGuest(0x10000));
            Assert.True(r.ContainsGuest(0x10FFF));
            Assert.False(r.ContainsGuest(0x11000));
            Assert.False(r.ContainsGuest(0xFFFF));
            Assert.True(r.ContainsUser(0x7000_0FFF));
            Assert.False(r.ContainsUser(0x7000_1000));
            Assert.False(r.ContainsUser(0x6FFF_FFFF));
            Assert.Equal(0x200UL, r.MmapOffset);
        }
        finally { block.Release(); }
    }
}

public class GuestAddressTests
{
    [Theory]
    [InlineData(0x1000UL, 0x10UL, true, 0x1010UL)]
    [InlineData(ulong.MaxValue - 1, 1UL, true, ulong.MaxValue)]
    [InlineData(ulong.MaxValue, 1UL, false, 0UL)]
    [InlineData(2UL, ulong.MaxValue, false, 1UL)]
    public void TryAdd_DetectsOverflow(ulong start, ulong offset, bool ok, ulong result)
    {
        Assert.Equal(ok, new GuestAddress(start).TryAdd(offset, out var r));
        Assert.Equal(result, r.Value);
    }

    [Fact]
    public void ToString_IsHex() => Assert.Equal("0xdead0", new GuestAddress(0xDEAD0).ToString());
}
