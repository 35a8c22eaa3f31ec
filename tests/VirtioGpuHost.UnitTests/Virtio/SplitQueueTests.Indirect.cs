using VirtioGpuHost.GuestMemory;
using VirtioGpuHost.TestKit;
using VirtioGpuHost.Virtio;

namespace VirtioGpuHost.UnitTests.Virtio;

/// <summary>Indirect descriptor tables (VIRTIO_F_INDIRECT_DESC, virtio 1.x §2.7.5.3).</summary>
public partial class SplitQueueTests
{
    private static VirtqDescriptor D(ulong address, uint length, ushort flags = 0, ushort next = 0) =>
        new() { Address = address, Length = length, Flags = flags, Next = next };

    [Fact]
    public void TryPop_IndirectTableFromDriver_ReturnsItsSegments()
    {
        using var rig = SplitQueueRig.Create(indirect: true);
        var r = rig.Buffer(24);
        var w1 = rig.Buffer(100);
        var w2 = rig.Buffer(4);
        ushort head = rig.Driver.Add([r], [w1, w2], indirect: true);

        var chain = rig.Pop();

        Assert.Equal(head, chain.Head);
        Assert.Equal([new BufferSegment(r.Address, 24)], chain.Readable);
        Assert.Equal([new BufferSegment(w1.Address, 100), new BufferSegment(w2.Address, 4)], chain.Writable);
        Assert.Equal(24UL, chain.ReadableLength);
        Assert.Equal(104UL, chain.WritableLength);
    }

    [Fact]
    public void TryPop_IndirectWithoutFeature_FailsWithIndirectNotNegotiated()
    {
        using var rig = SplitQueueRig.Create(indirect: false);
        rig.Driver.Add([rig.Buffer(24)], [rig.Buffer(24)], indirect: true);

        Assert.Equal(QueueError.IndirectNotNegotiated, rig.PopError());
        Assert.Equal(QueueError.IndirectNotNegotiated, rig.Queue.Error);
        Assert.Equal(QueueError.IndirectNotNegotiated, rig.PopError());
    }

    [Fact]
    public void TryPop_DirectDescriptorsThenIndirect_ConcatenatesBoth()
    {
        using var rig = SplitQueueRig.Create(indirect: true);
        var r1 = rig.Buffer(8);
        var r2 = rig.Buffer(8);
        var w = rig.Buffer(8);
        var table = rig.WriteIndirectTable(D(r2.Address.Value, 8, Next, 1), D(w.Address.Value, 8, Write));
        rig.WriteDescriptor(2, r1.Address.Value, 8, Next, 6);
        rig.WriteDescriptor(6, table.Value, 32, Indirect);
        rig.Driver.PublishHead(2);

        var chain = rig.Pop();

        Assert.Equal(2, chain.Head);
        Assert.Equal([new BufferSegment(r1.Address, 8), new BufferSegment(r2.Address, 8)], chain.Readable);
        Assert.Equal([new BufferSegment(w.Address, 8)], chain.Writable);
    }

    [Fact]
    public void TryPop_WriteFlagOnIndirectPointer_IsIgnored()
    {
        using var rig = SplitQueueRig.Create(indirect: true);
        var r = rig.Buffer(8);
        var table = rig.WriteIndirectTable(D(r.Address.Value, 8));
        rig.WriteDescriptor(0, table.Value, 16, Indirect | Write);
        rig.Driver.PublishHead(0);

        var chain = rig.Pop();

        Assert.Equal([new BufferSegment(r.Address, 8)], chain.Readable);
        Assert.Empty(chain.Writable);
    }

    [Fact]
    public void TryPop_IndirectTableLongerThanQueue_IsAccepted()
    {
        using var rig = SplitQueueRig.Create(size: 2, indirect: true);
        var b = rig.Buffer(64);
        var entries = Enumerable.Range(0, 20).Select(i => D(b.Address.Value + (ulong)i, 1, (ushort)(i < 19 ? Next : 0), (ushort)(i + 1))).ToArray();
        var table = rig.WriteIndirectTable(entries);
        rig.WriteDescriptor(0, table.Value, 20 * 16, Indirect);
        rig.Driver.PublishHead(0);

        Assert.Equal(20, rig.Pop().Readable.Count);
    }

    [Fact]
    public void TryPop_IndirectTableEntriesFollowTheirOwnNextIndices()
    {
        using var rig = SplitQueueRig.Create(indirect: true);
        var b = rig.Buffer(64);
        var table = rig.WriteIndirectTable(
            D(b.Address.Value + 0, 1, Next, 2),
            D(0xDEAD_0000, 99), // never visited
            D(b.Address.Value + 2, 2, Write | Next, 3),
            D(b.Address.Value + 5, 3, Write));
        rig.WriteDescriptor(0, table.Value, 64, Indirect);
        rig.Driver.PublishHead(0);

        var chain = rig.Pop();

        Assert.Equal([new BufferSegment(b.Address, 1)], chain.Readable);
        Assert.Equal([new BufferSegment(new GuestAddress(b.Address.Value + 2), 2), new BufferSegment(new GuestAddress(b.Address.Value + 5), 3)], chain.Writable);
    }

    [Fact]
    public void TryPop_NestedIndirect_FailsWithNestedIndirect()
    {
        using var rig = SplitQueueRig.Create(indirect: true);
        var r = rig.Buffer(8);
        var inner = rig.WriteIndirectTable(D(r.Address.Value, 8));
        var outer = rig.WriteIndirectTable(D(inner.Value, 16, Indirect));
        rig.WriteDescriptor(0, outer.Value, 16, Indirect);
        rig.Driver.PublishHead(0);

        Assert.Equal(QueueError.NestedIndirect, rig.PopError());
    }

    [Fact]
    public void TryPop_IndirectWithNext_FailsWithIndirectWithNext()
    {
        using var rig = SplitQueueRig.Create(indirect: true);
        var r = rig.Buffer(8);
        var table = rig.WriteIndirectTable(D(r.Address.Value, 8));
        rig.WriteDescriptor(0, table.Value, 16, Indirect | Next, 1);
        rig.WriteDescriptor(1, r.Address.Value, 8, 0);
        rig.Driver.PublishHead(0);

        Assert.Equal(QueueError.IndirectWithNext, rig.PopError());
    }

    [Theory]
    [InlineData(0u)]
    [InlineData(8u)]
    [InlineData(17u)]
    [InlineData(24u)]
    [InlineData(31u)]
    public void TryPop_IndirectTableLengthNotAPositiveMultipleOf16_FailsWithIndirectTableInvalid(uint length)
    {
        using var rig = SplitQueueRig.Create(indirect: true);
        var r = rig.Buffer(8);
        var table = rig.WriteIndirectTable(D(r.Address.Value, 8), D(r.Address.Value, 8));
        rig.WriteDescriptor(0, table.Value, length, Indirect);
        rig.Driver.PublishHead(0);

        Assert.Equal(QueueError.IndirectTableInvalid, rig.PopError());
    }

    [Fact]
    public void TryPop_IndirectTableWithTooManyEntries_FailsWithIndirectTableInvalid()
    {
        using var rig = SplitQueueRig.Create(indirect: true);
        rig.WriteDescriptor(0, 0, 65537 * 16, Indirect);
        rig.Driver.PublishHead(0);

        Assert.Equal(QueueError.IndirectTableInvalid, rig.PopError());
    }

    [Theory]
    [InlineData(0x1000UL, 16u)]               // below RAM
    [InlineData(0x10FFF0UL, 32u)]             // last 16 bytes are past the end
    [InlineData(0xFFFF_FFFF_FFFF_FFF0UL, 32u)] // wraps past 2^64
    public void TryPop_IndirectTableOutsideGuestMemory_FailsWithIndirectTableInvalid(ulong address, uint length)
    {
        using var rig = SplitQueueRig.Create(indirect: true, guestBase: 0x10000);
        rig.WriteDescriptor(0, address, length, Indirect);
        rig.Driver.PublishHead(0);

        Assert.Equal(QueueError.IndirectTableInvalid, rig.PopError());
    }

    [Fact]
    public void TryPop_LoopInIndirectTable_FailsWithChainTooLong()
    {
        using var rig = SplitQueueRig.Create(indirect: true);
        var r = rig.Buffer(8);
        var table = rig.WriteIndirectTable(D(r.Address.Value, 8, Next, 1), D(r.Address.Value, 8, Next, 2), D(r.Address.Value, 8, Next, 1));
        rig.WriteDescriptor(0, table.Value, 48, Indirect);
        rig.Driver.PublishHead(0);

        Assert.Equal(QueueError.ChainTooLong, rig.PopError());
    }

    [Fact]
    public void TryPop_IndirectEntryNextOutOfTable_FailsWithNextOutOfRange()
    {
        // next = 2 is inside the queue (size 8) but outside the 2-entry table.
        using var rig = SplitQueueRig.Create(size: 8, indirect: true);
        var r = rig.Buffer(8);
        var table = rig.WriteIndirectTable(D(r.Address.Value, 8, Next, 1), D(r.Address.Value, 8, Next, 2));
        rig.WriteDescriptor(0, table.Value, 32, Indirect);
        rig.Driver.PublishHead(0);

        Assert.Equal(QueueError.NextOutOfRange, rig.PopError());
    }

    [Fact]
    public void TryPop_IndirectReadableAfterWritable_FailsWithReadableAfterWritable()
    {
        using var rig = SplitQueueRig.Create(indirect: true);
        var b = rig.Buffer(16);
        var table = rig.WriteIndirectTable(D(b.Address.Value, 8, Write | Next, 1), D(b.Address.Value + 8, 8));
        rig.WriteDescriptor(0, table.Value, 32, Indirect);
        rig.Driver.PublishHead(0);

        Assert.Equal(QueueError.ReadableAfterWritable, rig.PopError());
    }

    [Fact]
    public void TryPop_DirectWritableThenIndirectReadable_FailsWithReadableAfterWritable()
    {
        using var rig = SplitQueueRig.Create(indirect: true);
        var b = rig.Buffer(16);
        var table = rig.WriteIndirectTable(D(b.Address.Value + 8, 8));
        rig.WriteDescriptor(0, b.Address.Value, 8, Write | Next, 1);
        rig.WriteDescriptor(1, table.Value, 16, Indirect);
        rig.Driver.PublishHead(0);

        Assert.Equal(QueueError.ReadableAfterWritable, rig.PopError());
    }

    [Fact]
    public void TryPop_IndirectEntryBufferOutsideGuestMemory_FailsWithBufferNotInGuestMemory()
    {
        using var rig = SplitQueueRig.Create(indirect: true, guestBase: 0x10000);
        var table = rig.WriteIndirectTable(D(0x500, 8));
        rig.WriteDescriptor(0, table.Value, 16, Indirect);
        rig.Driver.PublishHead(0);

        Assert.Equal(QueueError.BufferNotInGuestMemory, rig.PopError());
    }

    [Fact]
    public void TryPop_IndirectTableSpanningTwoRegions_IsRead()
    {
        using var rig = SplitQueueRig.Create(ramSize: 0x10000, indirect: true);
        var extra = NativeBlock.Allocate(0x1000);
        using var map = GuestMemoryMap.Create([rig.Ram.Region, new GuestRegion(new GuestAddress(0x10000), 0x1000, (ulong)extra.Address, 0, extra)]);
        var b = rig.Buffer(16);
        // Entry 0 sits in the last 16 bytes of RAM, entry 1 in the first 16 bytes of the second region.
        var e0 = D(b.Address.Value, 4, Next, 1);
        var e1 = D(0x10100, 8, Write);
        System.Runtime.InteropServices.MemoryMarshal.Write(rig.Ram.Span(new GuestAddress(0xFFF0), 16), in e0);
        System.Runtime.InteropServices.MemoryMarshal.Write(extra.AsSpan(0, 16), in e1);
        extra.Release();
        Assert.True(rig.Queue.Bind(map));
        rig.WriteDescriptor(0, 0xFFF0, 32, Indirect);
        rig.Driver.PublishHead(0);

        var chain = rig.Pop();

        Assert.Equal([new BufferSegment(b.Address, 4)], chain.Readable);
        Assert.Equal([new BufferSegment(new GuestAddress(0x10100), 8)], chain.Writable);
        rig.Queue.Unbind();
    }
}
