using VirtioGpuHost.FrontEnd;
using VirtioGpuHost.GuestMemory;
using VirtioGpuHost.TestKit;
using VirtioGpuHost.Virtio;

namespace VirtioGpuHost.UnitTests.Virtio;

/// <summary>DescriptorChain.Read/Write over chains popped from a real ring.</summary>
public class DescriptorChainTests
{
    private static readonly byte[] Request = Enumerable.Range(1, 12).Select(i => (byte)i).ToArray(); // 1..12

    /// <summary>A chain whose readable part is Request split 3 + 5 + 4 and whose writable part is 4 + 4 bytes of 0xEE.</summary>
    private sealed record SplitChain(SplitQueueRig Rig, DescriptorChain Chain, GuestBuffer W1, GuestBuffer W2) : IDisposable
    {
        public GuestMemoryMap Memory => Rig.Memory;
        public void Dispose() => Rig.Dispose();
    }

    private static SplitChain PopSplitChain()
    {
        var rig = SplitQueueRig.Create();
        var r1 = rig.Buffer(Request.AsSpan(0, 3));
        var r2 = rig.Buffer(Request.AsSpan(3, 5));
        var r3 = rig.Buffer(Request.AsSpan(8, 4));
        var w1 = rig.Buffer(4, 0xEE);
        var w2 = rig.Buffer(4, 0xEE);
        rig.Driver.Add([r1, r2, r3], [w1, w2]);
        return new SplitChain(rig, rig.Pop(), w1, w2);
    }

    [Theory]
    [InlineData(0, 12)] // everything
    [InlineData(0, 3)]  // exactly the first segment
    [InlineData(2, 7)]  // starts in the first segment, ends in the third
    [InlineData(3, 5)]  // starts exactly at a segment boundary
    [InlineData(7, 2)]  // the last byte of segment 2 and the first of segment 3
    [InlineData(11, 1)] // the very last byte
    public void Read_OffsetAcrossSegments_CopiesTheRightBytes(int offset, int length)
    {
        using var s = PopSplitChain();
        var dst = new byte[length];

        int n = s.Chain.Read(s.Memory, (ulong)offset, dst);

        Assert.Equal(length, n);
        Assert.Equal(Request.AsSpan(offset, length).ToArray(), dst);
    }

    [Fact]
    public void Read_DestinationLongerThanRest_CopiesWhatIsLeft()
    {
        using var s = PopSplitChain();
        var dst = new byte[20];
        Array.Fill(dst, (byte)0xAA);

        int n = s.Chain.Read(s.Memory, 6, dst);

        Assert.Equal(6, n);
        Assert.Equal(Request[6..], dst[..6]);
        Assert.All(dst[6..], b => Assert.Equal(0xAA, b));
    }

    [Theory]
    [InlineData(12UL)]
    [InlineData(1000UL)]
    [InlineData(ulong.MaxValue)]
    public void Read_OffsetAtOrPastEnd_ReturnsZero(ulong offset)
    {
        using var s = PopSplitChain();
        Assert.Equal(0, s.Chain.Read(s.Memory, offset, new byte[4]));
    }

    [Fact]
    public void Read_EmptyDestination_ReturnsZero()
    {
        using var s = PopSplitChain();
        Assert.Equal(0, s.Chain.Read(s.Memory, 0, Span<byte>.Empty));
    }

    [Fact]
    public void Read_MemoryNoLongerHoldsTheBuffer_ReturnsMinusOne()
    {
        using var s = PopSplitChain();
        using var empty = GuestMemoryMap.Empty();
        Assert.Equal(-1, s.Chain.Read(empty, 0, new byte[4]));
    }

    [Fact]
    public void Read_NeverReadsWritableSegments()
    {
        using var rig = SplitQueueRig.Create();
        var r = rig.Buffer([1, 2]);
        var w = rig.Buffer(4, 0x55);
        rig.Driver.Add([r], [w]);
        var chain = rig.Pop();
        var dst = new byte[6];

        Assert.Equal(2, chain.Read(rig.Memory, 0, dst));
        Assert.Equal(new byte[] { 1, 2, 0, 0, 0, 0 }, dst);
    }

    [Fact]
    public void Write_FitsInFirstSegment_LeavesTheRestUntouched()
    {
        using var s = PopSplitChain();

        Assert.Equal(3, s.Chain.Write(s.Memory, [1, 2, 3]));

        Assert.Equal(new byte[] { 1, 2, 3, 0xEE }, s.Rig.ReadGuest(s.W1.Address, 4));
        Assert.Equal(new byte[] { 0xEE, 0xEE, 0xEE, 0xEE }, s.Rig.ReadGuest(s.W2.Address, 4));
    }

    [Fact]
    public void Write_AcrossSegments_FillsThemInOrder()
    {
        using var s = PopSplitChain();

        Assert.Equal(6, s.Chain.Write(s.Memory, [1, 2, 3, 4, 5, 6]));

        Assert.Equal(new byte[] { 1, 2, 3, 4 }, s.Rig.ReadGuest(s.W1.Address, 4));
        Assert.Equal(new byte[] { 5, 6, 0xEE, 0xEE }, s.Rig.ReadGuest(s.W2.Address, 4));
    }

    [Fact]
    public void Write_SourceLongerThanWritableSpace_TruncatesAndReturnsBytesWritten()
    {
        using var s = PopSplitChain();
        var src = Enumerable.Range(100, 10).Select(i => (byte)i).ToArray();

        Assert.Equal(8, s.Chain.Write(s.Memory, src));

        Assert.Equal(src[..4], s.Rig.ReadGuest(s.W1.Address, 4));
        Assert.Equal(src[4..8], s.Rig.ReadGuest(s.W2.Address, 4));
        // Nothing past the second buffer: the next page still reads as allocated (zero).
        Assert.Equal(new byte[4], s.Rig.ReadGuest(new GuestAddress(s.W2.Address.Value + 4), 4));
    }

    [Fact]
    public void Write_NoWritableSegments_ReturnsZeroAndWritesNothing()
    {
        using var rig = SplitQueueRig.Create();
        var r = rig.Buffer([9, 9, 9]);
        rig.Driver.Add([r], []);
        var chain = rig.Pop();

        Assert.Equal(0, chain.Write(rig.Memory, [1, 2, 3]));
        Assert.Equal(new byte[] { 9, 9, 9 }, rig.ReadGuest(r.Address, 3));
    }

    [Fact]
    public void Write_MemoryNoLongerHoldsTheBuffer_ReturnsMinusOne()
    {
        using var s = PopSplitChain();
        using var empty = GuestMemoryMap.Empty();

        Assert.Equal(-1, s.Chain.Write(empty, [1, 2, 3]));
        Assert.Equal(new byte[] { 0xEE, 0xEE, 0xEE, 0xEE }, s.Rig.ReadGuest(s.W1.Address, 4));
    }

    [Fact]
    public void ReadAndWrite_SegmentSpanningTwoRegions_CrossTheBoundary()
    {
        using var rig = SplitQueueRig.Create(ramSize: 0x10000);
        var extra = NativeBlock.Allocate(0x1000);
        using var map = GuestMemoryMap.Create([rig.Ram.Region, new GuestRegion(new GuestAddress(0x10000), 0x1000, (ulong)extra.Address, 0, extra)]);
        extra.Release();
        Assert.True(rig.Queue.Bind(map));
        new byte[] { 0xA1, 0xA2 }.CopyTo(rig.Ram.Span(new GuestAddress(0xFFFE), 2));
        new byte[] { 0xB1, 0xB2 }.CopyTo(extra.AsSpan(0, 2));
        rig.WriteDescriptor(0, 0xFFFE, 4, VirtqDescriptor.FlagNext, 1);
        rig.WriteDescriptor(1, 0xFFFC, 6, VirtqDescriptor.FlagWrite);
        rig.Driver.PublishHead(0);
        var chain = rig.Pop();
        var dst = new byte[4];

        Assert.Equal(4, chain.Read(map, 0, dst));
        Assert.Equal(6, chain.Write(map, [1, 2, 3, 4, 5, 6]));

        Assert.Equal(new byte[] { 0xA1, 0xA2, 0xB1, 0xB2 }, dst);
        Assert.Equal(new byte[] { 1, 2, 3, 4 }, rig.Ram.Span(new GuestAddress(0xFFFC), 4).ToArray());
        Assert.Equal(new byte[] { 5, 6 }, extra.AsSpan(0, 2).ToArray());
        rig.Queue.Unbind();
    }

    [Fact]
    public void ToString_NamesHeadAndLengths()
    {
        using var s = PopSplitChain();
        Assert.Equal($"chain head {s.Chain.Head}: 3 readable (12 B), 2 writable (8 B)", s.Chain.ToString());
    }
}
