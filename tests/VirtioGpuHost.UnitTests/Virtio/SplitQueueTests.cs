using VirtioGpuHost.FrontEnd;
using VirtioGpuHost.GuestMemory;
using VirtioGpuHost.TestKit;
using VirtioGpuHost.Virtio;

namespace VirtioGpuHost.UnitTests.Virtio;

/// <summary>
/// SplitQueue against rings in real (native) guest memory written by the reference driver or
/// byte by byte: configuration and binding, direct chains and every way a chain can be malformed.
/// Indirect tables are in SplitQueueTests.Indirect.cs, used ring and notifications in
/// SplitQueueTests.Notify.cs.
/// </summary>
public partial class SplitQueueTests
{
    private const ushort Next = VirtqDescriptor.FlagNext;
    private const ushort Write = VirtqDescriptor.FlagWrite;
    private const ushort Indirect = VirtqDescriptor.FlagIndirect;

    // ---- configuration and Bind ----

    [Theory]
    [InlineData(1u, true)]
    [InlineData(2u, true)]
    [InlineData(256u, true)]
    [InlineData(32768u, true)]
    [InlineData(0u, false)]
    [InlineData(3u, false)]
    [InlineData(48u, false)]
    [InlineData(65536u, false)]
    [InlineData(uint.MaxValue, false)]
    public void IsValidSize_PowerOfTwoUpTo32768_OnlyThoseAccepted(uint size, bool valid) =>
        Assert.Equal(valid, SplitQueue.IsValidSize(size));

    [Theory]
    [InlineData((ushort)0)]
    [InlineData((ushort)6)]
    [InlineData((ushort)40000)]
    public void SetSize_InvalidSize_Throws(ushort size)
    {
        var q = new SplitQueue(0);
        Assert.Throws<ArgumentOutOfRangeException>(() => q.SetSize(size));
        Assert.Equal(0, q.Size);
    }

    [Theory]
    [InlineData(0x1008UL, 0x2000UL, 0x3000UL)] // desc needs 16
    [InlineData(0x1000UL, 0x2001UL, 0x3000UL)] // avail needs 2
    [InlineData(0x1000UL, 0x2000UL, 0x3002UL)] // used needs 4
    public void SetAddresses_Misaligned_Throws(ulong desc, ulong avail, ulong used)
    {
        var q = new SplitQueue(0);
        Assert.Throws<ArgumentException>(() => q.SetAddresses(new GuestAddress(desc), new GuestAddress(avail), new GuestAddress(used)));
        Assert.Equal(default, q.DescriptorTable);
    }

    [Fact]
    public void RingSizes_IncludeEventIdxTrailers()
    {
        var q = new SplitQueue(0);
        q.SetSize(256);
        Assert.Equal((4096UL, 518UL, 2054UL), q.RingSizes);
    }

    [Fact]
    public void Bind_RingsInGuestMemory_ReadsUsedIndexIntoNextUsed()
    {
        using var rig = SplitQueueRig.Create();
        rig.SetUsedIndex(1234);

        Assert.True(rig.Queue.Bind(rig.Memory));

        Assert.True(rig.Queue.IsBound);
        Assert.Equal(QueueError.None, rig.Queue.Error);
        Assert.Equal(1234, rig.Queue.NextUsed);
    }

    [Fact]
    public void Bind_SizeNotSet_FailsWithNotReady()
    {
        using var ram = GuestRam.CreateLocal(1 << 16);
        var q = new SplitQueue(0);

        Assert.False(q.Bind(ram.Memory));

        Assert.Equal(QueueError.NotReady, q.Error);
        Assert.False(q.IsBound);
    }

    public static TheoryData<string, ulong, ulong, ulong> RingsOutsideMemory => new()
    {
        // RAM is [0x10000, 0x20000); size 8 needs desc 128, avail 22, used 70 bytes.
        { "desc below RAM", 0x0, 0x11000, 0x12000 },
        { "avail beyond RAM", 0x10000, 0x30000, 0x12000 },
        { "used beyond RAM", 0x10000, 0x11000, 0x40000 },
        { "desc straddles the end", 0x1FF80 + 0x10, 0x11000, 0x12000 },
        { "avail trailer past the end", 0x10000, 0x20000 - 20, 0x12000 },
        { "used trailer past the end", 0x10000, 0x11000, 0x20000 - 68 },
    };

    [Theory]
    [MemberData(nameof(RingsOutsideMemory))]
    public void Bind_RingNotInGuestMemory_FailsAndStaysUnbound(string what, ulong desc, ulong avail, ulong used)
    {
        using var ram = GuestRam.CreateLocal(0x10000, guestBase: 0x10000);
        var q = new SplitQueue(0);
        q.SetSize(8);
        q.SetAddresses(new GuestAddress(desc), new GuestAddress(avail), new GuestAddress(used));

        Assert.False(q.Bind(ram.Memory), what);

        Assert.Equal(QueueError.RingNotInGuestMemory, q.Error);
        Assert.False(q.IsBound);
        Assert.False(q.TryPop(out _, out var error));
        Assert.Equal(QueueError.RingNotInGuestMemory, error);
    }

    [Fact]
    public void Bind_RingsEndingExactlyAtEndOfRam_Succeeds()
    {
        using var ram = GuestRam.CreateLocal(0x10000, guestBase: 0x10000);
        var q = new SplitQueue(0);
        q.SetSize(8);
        // desc 128 B, avail 22 B, used 70 B, each ending on the last byte of RAM (aligned down).
        q.SetAddresses(new GuestAddress(0x20000 - 128), new GuestAddress(0x20000 - 22), new GuestAddress(0x20000 - 72));

        Assert.True(q.Bind(ram.Memory));
    }

    [Fact]
    public void SetSizeOrSetAddresses_WhileBound_Unbinds()
    {
        using var rig = SplitQueueRig.Create();
        rig.Queue.SetSize(16);
        Assert.False(rig.Queue.IsBound);

        Assert.True(rig.Queue.Bind(rig.Memory));
        rig.Queue.SetAddresses(rig.Driver.Descriptors, rig.Driver.Avail, rig.Driver.Used);
        Assert.False(rig.Queue.IsBound);
    }

    [Fact]
    public void TryPop_NotBound_ReturnsNotReadyWithoutFailingQueue()
    {
        var q = new SplitQueue(3);
        Assert.False(q.TryPop(out var chain, out var error));
        Assert.Null(chain);
        Assert.Equal(QueueError.NotReady, error);
        Assert.Equal(QueueError.None, q.Error);
        Assert.False(q.HasAvailable());
    }

    // ---- direct chains ----

    [Fact]
    public void TryPop_EmptyQueue_ReturnsFalseWithNoError()
    {
        using var rig = SplitQueueRig.Create();

        Assert.False(rig.Queue.HasAvailable());
        Assert.Equal(QueueError.None, rig.PopError());
        Assert.Equal(QueueError.None, rig.Queue.Error);
        Assert.True(rig.Queue.IsBound);
        Assert.Equal(0, rig.Queue.NextAvail);
    }

    [Fact]
    public void TryPop_SingleReadableDescriptor_ReturnsItsSegment()
    {
        using var rig = SplitQueueRig.Create();
        var b = rig.Buffer(24);
        ushort head = rig.Driver.Add([b], []);

        Assert.True(rig.Queue.HasAvailable());
        var chain = rig.Pop();

        Assert.Equal(head, chain.Head);
        Assert.Equal([new BufferSegment(b.Address, 24)], chain.Readable);
        Assert.Empty(chain.Writable);
        Assert.Equal(24UL, chain.ReadableLength);
        Assert.Equal(0UL, chain.WritableLength);
        Assert.Equal(1, rig.Queue.NextAvail);
        Assert.Equal(1, rig.Queue.InFlight);
        Assert.False(rig.Queue.HasAvailable());
    }

    [Fact]
    public void TryPop_ReadableThenWritable_SplitsSegmentsInChainOrder()
    {
        using var rig = SplitQueueRig.Create();
        var r1 = rig.Buffer(24);
        var r2 = rig.Buffer(100);
        var w1 = rig.Buffer(24);
        var w2 = rig.Buffer(8);
        ushort head = rig.Driver.Add([r1, r2], [w1, w2]);

        var chain = rig.Pop();

        Assert.Equal(head, chain.Head);
        Assert.Equal([new BufferSegment(r1.Address, 24), new BufferSegment(r2.Address, 100)], chain.Readable);
        Assert.Equal([new BufferSegment(w1.Address, 24), new BufferSegment(w2.Address, 8)], chain.Writable);
        Assert.Equal(124UL, chain.ReadableLength);
        Assert.Equal(32UL, chain.WritableLength);
    }

    [Fact]
    public void TryPop_WritableOnly_HasNoReadableSegments()
    {
        using var rig = SplitQueueRig.Create();
        var w = rig.Buffer(64);
        rig.Driver.Add([], [w]);

        var chain = rig.Pop();

        Assert.Empty(chain.Readable);
        Assert.Equal([new BufferSegment(w.Address, 64)], chain.Writable);
    }

    [Fact]
    public void TryPop_SeveralChains_ComeOutInAvailOrder()
    {
        using var rig = SplitQueueRig.Create();
        var heads = new List<ushort>();
        for (int i = 0; i < 5; i++) heads.Add(rig.Driver.Add([rig.Buffer((uint)(i + 1))], []));

        var popped = new List<(ushort Head, ulong Length)>();
        while (rig.Queue.TryPop(out var c, out var e))
        {
            Assert.Equal(QueueError.None, e);
            popped.Add((c!.Head, c.ReadableLength));
        }

        Assert.Equal(heads.Select((h, i) => (h, (ulong)(i + 1))), popped);
        Assert.Equal(5, rig.Queue.NextAvail);
        Assert.Equal(5, rig.Queue.InFlight);
    }

    [Fact]
    public void TryPop_ZeroLengthDescriptor_IsSkipped()
    {
        using var rig = SplitQueueRig.Create();
        var b = rig.Buffer(16);
        rig.WriteDescriptor(0, b.Address.Value, 0, Next, 1);
        rig.WriteDescriptor(1, b.Address.Value, 16, Write);
        rig.Driver.PublishHead(0);

        var chain = rig.Pop();

        Assert.Empty(chain.Readable);
        Assert.Equal([new BufferSegment(b.Address, 16)], chain.Writable);
    }

    [Fact]
    public void TryPop_ChainOfExactlyQueueSize_Succeeds()
    {
        using var rig = SplitQueueRig.Create(size: 8);
        var b = rig.Buffer(8);
        for (ushort i = 0; i < 8; i++) rig.WriteDescriptor(i, b.Address.Value + i, 1, (ushort)(i < 7 ? Next : 0), (ushort)(i + 1));
        rig.Driver.PublishHead(0);

        var chain = rig.Pop();

        Assert.Equal(8, chain.Readable.Count);
        Assert.Equal(8UL, chain.ReadableLength);
    }

    [Fact]
    public void TryPop_HeadInTheMiddleOfTheTable_FollowsNextIndices()
    {
        using var rig = SplitQueueRig.Create(size: 8);
        var b = rig.Buffer(64);
        rig.WriteDescriptor(5, b.Address.Value, 10, Next, 2);
        rig.WriteDescriptor(2, b.Address.Value + 10, 20, Next, 7);
        rig.WriteDescriptor(7, b.Address.Value + 30, 30, Write);
        rig.Driver.PublishHead(5);

        var chain = rig.Pop();

        Assert.Equal(5, chain.Head);
        Assert.Equal([new BufferSegment(b.Address, 10), new BufferSegment(new GuestAddress(b.Address.Value + 10), 20)], chain.Readable);
        Assert.Equal([new BufferSegment(new GuestAddress(b.Address.Value + 30), 30)], chain.Writable);
    }

    [Fact]
    public void TryPop_AvailIndexWrapsAround_PopsAcrossTheWrap()
    {
        using var rig = SplitQueueRig.Create(size: 4);
        var b = rig.Buffer(16);
        for (ushort i = 0; i < 4; i++) rig.WriteDescriptor(i, b.Address.Value + i, (uint)(i + 1));
        rig.Queue.NextAvail = 65534;
        rig.WriteAvailRing(65534, 3);
        rig.WriteAvailRing(65535, 1);
        rig.WriteAvailRing(0, 2);
        rig.Driver.SetAvailIndex(1); // three entries: 65534, 65535, 0

        var heads = new List<ushort>();
        while (rig.Queue.TryPop(out var c, out _)) heads.Add(c!.Head);

        Assert.Equal([3, 1, 2], heads);
        Assert.Equal(1, rig.Queue.NextAvail);
        Assert.Equal(QueueError.None, rig.Queue.Error);
    }

    [Fact]
    public void TryPop_BufferSpanningTwoAdjacentRegions_IsAccepted()
    {
        using var rig = SplitQueueRig.Create(ramSize: 0x10000);
        var extra = NativeBlock.Allocate(0x1000);
        using var map = GuestMemoryMap.Create([rig.Ram.Region, new GuestRegion(new GuestAddress(0x10000), 0x1000, (ulong)extra.Address, 0, extra)]);
        extra.Release();
        Assert.True(rig.Queue.Bind(map));
        rig.WriteDescriptor(0, 0xFF00, 0x200);
        rig.Driver.PublishHead(0);

        var chain = rig.Pop();

        Assert.Equal([new BufferSegment(new GuestAddress(0xFF00), 0x200)], chain.Readable);
        rig.Queue.Unbind();
    }

    // ---- malformed rings and chains ----

    [Fact]
    public void TryPop_AvailIndexMoreThanSizeAhead_FailsWithAvailIndexTooFarAhead()
    {
        using var rig = SplitQueueRig.Create(size: 8);
        rig.Driver.SetAvailIndex(9);

        Assert.Equal(QueueError.AvailIndexTooFarAhead, rig.PopError());
        Assert.Equal(QueueError.AvailIndexTooFarAhead, rig.Queue.Error);
        Assert.Equal(0, rig.Queue.NextAvail);
    }

    [Fact]
    public void TryPop_AvailIndexExactlySizeAhead_PopsAll()
    {
        using var rig = SplitQueueRig.Create(size: 4);
        var b = rig.Buffer(4);
        for (ushort i = 0; i < 4; i++)
        {
            rig.WriteDescriptor(i, b.Address.Value + i, 1);
            rig.Driver.PublishHead(i);
        }

        int n = 0;
        while (rig.Queue.TryPop(out _, out _)) n++;

        Assert.Equal(4, n);
        Assert.Equal(QueueError.None, rig.Queue.Error);
    }

    [Fact]
    public void TryPop_AvailIndexBehindNextAvail_FailsWithAvailIndexTooFarAhead()
    {
        using var rig = SplitQueueRig.Create(size: 8);
        rig.Queue.NextAvail = 10;
        rig.Driver.SetAvailIndex(5); // (5 - 10) mod 2^16 = 65531 pending

        Assert.Equal(QueueError.AvailIndexTooFarAhead, rig.PopError());
    }

    [Theory]
    [InlineData((ushort)8)]
    [InlineData((ushort)9)]
    [InlineData(ushort.MaxValue)]
    public void TryPop_HeadOutOfRange_FailsWithHeadOutOfRange(ushort head)
    {
        using var rig = SplitQueueRig.Create(size: 8);
        rig.Driver.PublishHead(head);

        Assert.Equal(QueueError.HeadOutOfRange, rig.PopError());
        Assert.Equal(QueueError.HeadOutOfRange, rig.Queue.Error);
        Assert.Equal(0, rig.Queue.NextAvail);
        Assert.Equal(0, rig.Queue.InFlight);
    }

    [Theory]
    [InlineData((ushort)8)]
    [InlineData((ushort)0xFFFF)]
    public void TryPop_NextIndexOutOfRange_FailsWithNextOutOfRange(ushort next)
    {
        using var rig = SplitQueueRig.Create(size: 8);
        var b = rig.Buffer(16);
        rig.WriteDescriptor(0, b.Address.Value, 16, Next, next);
        rig.Driver.PublishHead(0);

        Assert.Equal(QueueError.NextOutOfRange, rig.PopError());
    }

    [Fact]
    public void TryPop_DescriptorPointsToItself_FailsWithChainTooLong()
    {
        using var rig = SplitQueueRig.Create(size: 8);
        var b = rig.Buffer(16);
        rig.WriteDescriptor(3, b.Address.Value, 16, Next, 3);
        rig.Driver.PublishHead(3);

        Assert.Equal(QueueError.ChainTooLong, rig.PopError());
    }

    [Fact]
    public void TryPop_LoopThroughSeveralDescriptors_FailsWithChainTooLong()
    {
        using var rig = SplitQueueRig.Create(size: 8);
        var b = rig.Buffer(16);
        rig.WriteDescriptor(0, b.Address.Value, 4, Next, 1);
        rig.WriteDescriptor(1, b.Address.Value, 4, Next, 2);
        rig.WriteDescriptor(2, b.Address.Value, 4, Next, 1); // 0 → 1 → 2 → 1 → …
        rig.Driver.PublishHead(0);

        Assert.Equal(QueueError.ChainTooLong, rig.PopError());
    }

    [Fact]
    public void TryPop_LoopOfZeroLengthDescriptors_FailsWithChainTooLong()
    {
        using var rig = SplitQueueRig.Create(size: 4);
        rig.WriteDescriptor(0, 0, 0, Next, 1);
        rig.WriteDescriptor(1, 0, 0, Next, 0);
        rig.Driver.PublishHead(0);

        Assert.Equal(QueueError.ChainTooLong, rig.PopError());
    }

    [Fact]
    public void TryPop_ReadableAfterWritable_FailsWithReadableAfterWritable()
    {
        using var rig = SplitQueueRig.Create();
        var b = rig.Buffer(32);
        rig.WriteDescriptor(0, b.Address.Value, 16, Write | Next, 1);
        rig.WriteDescriptor(1, b.Address.Value + 16, 16, 0);
        rig.Driver.PublishHead(0);

        Assert.Equal(QueueError.ReadableAfterWritable, rig.PopError());
    }

    public static TheoryData<string, ulong, uint> BuffersOutsideRam => new()
    {
        // RAM is [0x10000, 0x110000).
        { "below RAM", 0x1000, 16 },
        { "just below RAM, ending in it", 0xFFF0, 0x20 },
        { "at the end of RAM", 0x110000, 1 },
        { "straddling the end", 0x10FFF0, 0x20 },
        { "far away", 0x1_0000_0000, 16 },
        { "wrapping past 2^64", 0xFFFF_FFFF_FFFF_FFF0, 0x20 },
        { "last byte of the address space", 0xFFFF_FFFF_FFFF_FFFF, 1 },
    };

    [Theory]
    [MemberData(nameof(BuffersOutsideRam))]
    public void TryPop_BufferOutsideGuestMemory_FailsWithBufferNotInGuestMemory(string what, ulong address, uint length)
    {
        using var rig = SplitQueueRig.Create(guestBase: 0x10000);
        rig.WriteDescriptor(0, address, length, 0);
        rig.Driver.PublishHead(0);

        Assert.True(rig.PopError() == QueueError.BufferNotInGuestMemory, what);
    }

    [Fact]
    public void TryPop_WritableBufferOutsideGuestMemory_FailsWithBufferNotInGuestMemory()
    {
        using var rig = SplitQueueRig.Create(guestBase: 0x10000);
        var r = rig.Buffer(16);
        rig.WriteDescriptor(0, r.Address.Value, 16, Next, 1);
        rig.WriteDescriptor(1, 0x200000, 64, Write);
        rig.Driver.PublishHead(0);

        Assert.Equal(QueueError.BufferNotInGuestMemory, rig.PopError());
    }

    [Fact]
    public void TryPop_BufferOverGapBetweenRegions_FailsWithBufferNotInGuestMemory()
    {
        using var rig = SplitQueueRig.Create(ramSize: 0x10000);
        var extra = NativeBlock.Allocate(0x1000);
        using var map = GuestMemoryMap.Create([rig.Ram.Region, new GuestRegion(new GuestAddress(0x11000), 0x1000, (ulong)extra.Address, 0, extra)]);
        extra.Release();
        Assert.True(rig.Queue.Bind(map));
        rig.WriteDescriptor(0, 0xFF00, 0x1200); // runs through the hole [0x10000, 0x11000)
        rig.Driver.PublishHead(0);

        Assert.Equal(QueueError.BufferNotInGuestMemory, rig.PopError());
    }

    [Fact]
    public void TryPop_ChainDescribingMoreThan4GiB_FailsWithBufferTooLarge()
    {
        // A sparse 5 GiB memfd: nothing is touched except the ring pages.
        const ulong Gib = 1UL << 30;
        var block = MappedBlock.CreateMemFd("vgh-test-big", 5 * Gib);
        using var map = GuestMemoryMap.Create([new GuestRegion(new GuestAddress(0), 5 * Gib, (ulong)block.Address, 0, block)]);
        block.Release();
        var q = new SplitQueue(0);
        q.SetSize(4);
        q.SetAddresses(new GuestAddress(0), new GuestAddress(0x1000), new GuestAddress(0x2000));
        Assert.True(q.Bind(map));
        var desc = block.AsSpan(0, 64);
        for (int i = 0; i < 3; i++)
        {
            var d = new VirtqDescriptor { Address = 0x10000 + (ulong)i * 0x6000_0000, Length = 0x6000_0000, Flags = (ushort)(i < 2 ? Next : 0), Next = (ushort)(i + 1) };
            System.Runtime.InteropServices.MemoryMarshal.Write(desc.Slice(i * 16, 16), in d);
        }
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16LittleEndian(block.AsSpan(0x1000 + 2, 2), 1); // avail->idx = 1, ring[0] = 0

        Assert.False(q.TryPop(out var chain, out var error));

        Assert.Null(chain);
        Assert.Equal(QueueError.BufferTooLarge, error);
    }

    // ---- a failed queue stays failed ----

    [Fact]
    public void TryPop_AfterFailure_KeepsFailingEvenWhenRingIsRepaired()
    {
        using var rig = SplitQueueRig.Create(size: 8);
        var b = rig.Buffer(16);
        rig.WriteDescriptor(0, b.Address.Value, 16, Next, 8);
        rig.Driver.PublishHead(0);
        Assert.Equal(QueueError.NextOutOfRange, rig.PopError());

        rig.WriteDescriptor(0, b.Address.Value, 16, 0); // the driver "fixes" it
        Assert.Equal(QueueError.NextOutOfRange, rig.PopError());
        Assert.Equal(QueueError.NextOutOfRange, rig.PopError());

        Assert.False(rig.Queue.IsBound);
        Assert.False(rig.Queue.HasAvailable());
        Assert.False(rig.Queue.EnableNotificationAndRecheck());
        Assert.False(rig.Queue.ShouldNotify());
        Assert.Equal(0, rig.Queue.NextAvail);
    }

    [Fact]
    public void AddUsed_AfterFailure_WritesNothing()
    {
        using var rig = SplitQueueRig.Create(size: 8);
        var b = rig.Buffer(16);
        rig.Driver.Add([b], []);
        var chain = rig.Pop();
        rig.Driver.PublishHead(9);
        Assert.Equal(QueueError.HeadOutOfRange, rig.PopError());

        rig.Queue.AddUsed(chain.Head, 16);

        Assert.Equal(0, rig.UsedIndex);
        Assert.Equal((0u, 0u), rig.UsedElement(0));
    }

    [Fact]
    public void Bind_AfterFailure_ClearsErrorAndPopsAgain()
    {
        using var rig = SplitQueueRig.Create(size: 8);
        var b = rig.Buffer(16);
        rig.WriteDescriptor(0, b.Address.Value, 16, Next, 8);
        rig.Driver.PublishHead(0);
        Assert.Equal(QueueError.NextOutOfRange, rig.PopError());
        rig.WriteDescriptor(0, b.Address.Value, 16, 0);

        Assert.True(rig.Queue.Bind(rig.Memory));

        Assert.Equal(QueueError.None, rig.Queue.Error);
        Assert.Equal(0, rig.Pop().Head);
    }

    [Fact]
    public void Fail_ExecutionError_StopsTheQueue()
    {
        using var rig = SplitQueueRig.Create();
        rig.Driver.Add([rig.Buffer(8)], []);

        rig.Queue.Fail(QueueError.BufferTooLarge);

        Assert.Equal(QueueError.BufferTooLarge, rig.PopError());
        Assert.False(rig.Queue.IsBound);
    }

    [Fact]
    public void Reset_AfterFailure_ReturnsToPowerOnState()
    {
        using var rig = SplitQueueRig.Create(size: 8, indirect: true, eventIdx: true);
        rig.Queue.NotifyOnEmpty = true;
        rig.Driver.Add([rig.Buffer(8)], []);
        rig.Pop();
        rig.Driver.PublishHead(8);
        Assert.Equal(QueueError.HeadOutOfRange, rig.PopError());

        rig.Queue.Reset();

        Assert.Equal(QueueError.None, rig.Queue.Error);
        Assert.Equal(0, rig.Queue.Size);
        Assert.Equal(0, rig.Queue.NextAvail);
        Assert.Equal(0, rig.Queue.NextUsed);
        Assert.Equal(0, rig.Queue.InFlight);
        Assert.False(rig.Queue.EventIdx);
        Assert.False(rig.Queue.IndirectDescriptors);
        Assert.False(rig.Queue.NotifyOnEmpty);
        Assert.False(rig.Queue.IsBound);
        Assert.Equal(default, rig.Queue.DescriptorTable);
        Assert.False(rig.Queue.Bind(rig.Memory));
        Assert.Equal(QueueError.NotReady, rig.Queue.Error);
    }

    [Fact]
    public void Reset_ThenReconfigure_ProcessesTheRingAgain()
    {
        using var rig = SplitQueueRig.Create(size: 8);
        rig.Driver.PublishHead(8);
        Assert.Equal(QueueError.HeadOutOfRange, rig.PopError());

        rig.Queue.Reset();
        rig.Queue.SetSize(8);
        rig.Queue.SetAddresses(rig.Driver.Descriptors, rig.Driver.Avail, rig.Driver.Used);
        rig.Queue.NextAvail = 1; // skip the bad entry, as SET_VRING_BASE would
        Assert.True(rig.Queue.Bind(rig.Memory));
        var b = rig.Buffer(4);
        ushort head = rig.Driver.Add([b], []);

        Assert.Equal(head, rig.Pop().Head);
    }
}
