using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using VirtioGpuHost.GuestMemory;

namespace VirtioGpuHost.Virtio;

/// <summary>
/// The device side of one split virtqueue (virtio 1.x §2.7). Configure it (size, ring
/// addresses, features), <see cref="Bind"/> it to the current guest memory snapshot, then
/// pop chains and push used entries. It never owns guest memory: after the memory table
/// changes, call <see cref="Bind"/> again. Not thread-safe: one event loop drives it.
/// </summary>
public sealed class SplitQueue
{
    public const int MaxQueueSize = 32768;

    // Defensive caps (rust-vmm virtio-queue uses the same idea): a chain can never make
    // us walk more than this many descriptors or describe more than 4 GiB.
    private const int MaxIndirectEntries = 65536;
    private const ulong MaxChainBytes = uint.MaxValue;

    private MemorySlice _desc, _avail, _used;
    private GuestMemoryMap? _memory;
    private ushort _signalledUsed;
    private bool _signalledUsedValid;

    public SplitQueue(int index) { Index = index; }

    public int Index { get; }

    /// <summary>Queue size (SET_VRING_NUM); a power of two up to 32768.</summary>
    public ushort Size { get; private set; }

    public GuestAddress DescriptorTable { get; private set; }
    public GuestAddress AvailRing { get; private set; }
    public GuestAddress UsedRing { get; private set; }

    /// <summary>The next avail index to process (SET/GET_VRING_BASE).</summary>
    public ushort NextAvail { get; set; }

    /// <summary>The used index we will publish next (read back from used->idx on bind).</summary>
    public ushort NextUsed { get; private set; }

    public bool EventIdx { get; set; }
    public bool IndirectDescriptors { get; set; }
    public bool NotifyOnEmpty { get; set; }

    /// <summary>Set when the queue failed; it is not processed again until reconfigured.</summary>
    public QueueError Error { get; private set; }

    public bool IsBound => _memory is not null;

    /// <summary>Chains popped and not yet returned through <see cref="AddUsed"/>.</summary>
    public int InFlight { get; private set; }

    public static bool IsValidSize(uint size) => size is > 0 and <= MaxQueueSize && (size & (size - 1)) == 0;

    public void SetSize(ushort size)
    {
        if (!IsValidSize(size)) throw new ArgumentOutOfRangeException(nameof(size), $"queue size {size} is not a power of two in 1..{MaxQueueSize}");
        Size = size;
        Unbind();
    }

    /// <summary>Sets the guest-physical ring addresses (checked for alignment: desc 16, avail 2, used 4).</summary>
    public void SetAddresses(GuestAddress desc, GuestAddress avail, GuestAddress used)
    {
        if (desc.Value % 16 != 0 || avail.Value % 2 != 0 || used.Value % 4 != 0)
            throw new ArgumentException($"misaligned ring addresses desc {desc} avail {avail} used {used}");
        DescriptorTable = desc;
        AvailRing = avail;
        UsedRing = used;
        Unbind();
    }

    /// <summary>Sizes of the three ring areas (with the EVENT_IDX trailers).</summary>
    public (ulong Desc, ulong Avail, ulong Used) RingSizes =>
        ((ulong)Size * 16, 6 + 2 * (ulong)Size, 6 + 8 * (ulong)Size);

    /// <summary>
    /// Resolves the rings in <paramref name="memory"/> (each must be contiguous in one region)
    /// and reads the current used index. Returns false and sets <see cref="Error"/> otherwise.
    /// </summary>
    public bool Bind(GuestMemoryMap memory)
    {
        Unbind();
        if (Size == 0) { Error = QueueError.NotReady; return false; }
        var (d, a, u) = RingSizes;
        if (!memory.TryGetContiguous(DescriptorTable, d, out _desc) ||
            !memory.TryGetContiguous(AvailRing, a, out _avail) ||
            !memory.TryGetContiguous(UsedRing, u, out _used))
        {
            Error = QueueError.RingNotInGuestMemory;
            return false;
        }
        _memory = memory;
        NextUsed = VolatileRead16(_used.Span, 2);
        Error = QueueError.None;
        return true;
    }

    public void Unbind()
    {
        _memory = null;
        _desc = _avail = _used = default;
        _signalledUsedValid = false;
    }

    /// <summary>Marks the queue failed (for errors found while executing a chain).</summary>
    public void Fail(QueueError error)
    {
        Error = error;
        Unbind();
    }

    /// <summary>Resets everything to the power-on state (device reset, RESET_OWNER).</summary>
    public void Reset()
    {
        Unbind();
        Size = 0;
        DescriptorTable = AvailRing = UsedRing = default;
        NextAvail = NextUsed = 0;
        EventIdx = IndirectDescriptors = NotifyOnEmpty = false;
        Error = QueueError.None;
        InFlight = 0;
    }

    /// <summary>avail->idx as the driver last published it.</summary>
    public ushort ReadAvailIndex() => VolatileRead16(_avail.Span, 2);

    public bool HasAvailable() => IsBound && Error == QueueError.None && ReadAvailIndex() != NextAvail;

    /// <summary>
    /// Pops the next chain. Returns false with error None when the queue is empty; returns
    /// false with an error (and the queue failed) when the ring or chain is malformed.
    /// </summary>
    public bool TryPop(out DescriptorChain? chain, out QueueError error)
    {
        chain = null;
        error = Error;
        if (error != QueueError.None) return false;
        if (_memory is null) { error = QueueError.NotReady; return false; }

        ushort availIdx = ReadAvailIndex();
        ushort pending = (ushort)(availIdx - NextAvail);
        if (pending == 0) return false;
        if (pending > Size) return FailPop(QueueError.AvailIndexTooFarAhead, out error);

        // avail->ring[] is read only after avail->idx (the Volatile read orders it).
        ushort head = ReadU16(_avail.Span, 4 + 2 * (NextAvail % Size));
        if (head >= Size) return FailPop(QueueError.HeadOutOfRange, out error);

        var e = Walk(head, out chain);
        if (e != QueueError.None) return FailPop(e, out error);
        NextAvail++;
        InFlight++;
        if (EventIdx) WriteAvailEvent(NextAvail);
        return true;
    }

    private bool FailPop(QueueError e, out QueueError error)
    {
        error = e;
        Fail(e);
        return false;
    }

    private QueueError Walk(ushort head, out DescriptorChain? chain)
    {
        chain = null;
        var readable = new List<BufferSegment>(2);
        var writable = new List<BufferSegment>(1);
        ulong readBytes = 0, writeBytes = 0;
        var mem = _memory!;

        int index = head;
        int ttl = Size; // a direct chain visits each descriptor at most once
        byte[]? indirect = null;
        int indirectCount = 0;
        while (true)
        {
            if (--ttl < 0) return QueueError.ChainTooLong;
            VirtqDescriptor d = indirect is null
                ? MemoryMarshal.Read<VirtqDescriptor>(_desc.Span.Slice(index * VirtqDescriptor.Size, VirtqDescriptor.Size))
                : MemoryMarshal.Read<VirtqDescriptor>(indirect.AsSpan(index * VirtqDescriptor.Size, VirtqDescriptor.Size));

            if (d.IsIndirect)
            {
                if (!IndirectDescriptors) return QueueError.IndirectNotNegotiated;
                if (indirect is not null) return QueueError.NestedIndirect;
                if (d.HasNext) return QueueError.IndirectWithNext;
                if (d.Length == 0 || d.Length % VirtqDescriptor.Size != 0 || d.Length / VirtqDescriptor.Size > MaxIndirectEntries)
                    return QueueError.IndirectTableInvalid;
                indirectCount = (int)(d.Length / VirtqDescriptor.Size);
                indirect = new byte[d.Length];
                if (!mem.TryRead(new GuestAddress(d.Address), indirect)) return QueueError.IndirectTableInvalid;
                index = 0;
                ttl = indirectCount;
                continue;
            }

            if (d.Length > 0)
            {
                if (!IsMapped(mem, d.Address, d.Length)) return QueueError.BufferNotInGuestMemory;
                var seg = new BufferSegment(new GuestAddress(d.Address), d.Length);
                if (d.IsWrite)
                {
                    writeBytes += d.Length;
                    writable.Add(seg);
                }
                else
                {
                    if (writable.Count > 0) return QueueError.ReadableAfterWritable;
                    readBytes += d.Length;
                    readable.Add(seg);
                }
                if (readBytes > MaxChainBytes || writeBytes > MaxChainBytes) return QueueError.BufferTooLarge;
            }

            if (!d.HasNext) break;
            index = d.Next;
            if (index >= (indirect is null ? Size : indirectCount)) return QueueError.NextOutOfRange;
        }
        chain = new DescriptorChain(head, readable.ToArray(), writable.ToArray(), readBytes, writeBytes);
        return QueueError.None;
    }

    private static bool IsMapped(GuestMemoryMap mem, ulong gpa, uint length)
    {
        ulong end = gpa + length;
        if (end < gpa) return false;
        while (gpa < end)
        {
            var r = mem.FindRegion(gpa);
            if (r is null) return false;
            gpa = Math.Min(end, r.GuestEnd);
        }
        return true;
    }

    /// <summary>Publishes one used element {head, written} and advances used->idx.</summary>
    public void AddUsed(ushort head, uint written)
    {
        if (_memory is null || Error != QueueError.None) return;
        var used = _used.Span;
        int slot = 4 + 8 * (NextUsed % Size);
        MemoryMarshal.Write(used.Slice(slot, 4), (uint)head); // id is a le32: write all four bytes
        MemoryMarshal.Write(used.Slice(slot + 4, 4), written);
        NextUsed++;
        VolatileWrite16(used, 2, NextUsed); // release: the element is visible before the index
        if (InFlight > 0) InFlight--;
    }

    /// <summary>
    /// Whether the driver wants an interrupt for what was published since the last one
    /// (virtio §2.7.7.2: used_event with EVENT_IDX, else the NO_INTERRUPT flag).
    /// </summary>
    public bool ShouldNotify()
    {
        if (_memory is null) return false;
        Interlocked.MemoryBarrier(); // used->idx store before the used_event / flags load
        ushort newIdx = NextUsed;
        if (NotifyOnEmpty && InFlight == 0 && ReadAvailIndex() == NextAvail) return MarkSignalled(newIdx);
        if (!EventIdx)
        {
            ushort flags = VolatileRead16(_avail.Span, 0);
            return (flags & 1) == 0 && MarkSignalled(newIdx);
        }
        ushort old = _signalledUsed;
        bool valid = _signalledUsedValid;
        _signalledUsed = newIdx;
        _signalledUsedValid = true;
        if (!valid) return true;
        ushort usedEvent = VolatileRead16(_avail.Span, 4 + 2 * Size);
        return (ushort)(newIdx - usedEvent - 1) < (ushort)(newIdx - old);
    }

    private bool MarkSignalled(ushort idx)
    {
        _signalledUsed = idx;
        _signalledUsedValid = true;
        return true;
    }

    /// <summary>EVENT_IDX: asks the driver to kick when avail->idx passes <paramref name="idx"/>.</summary>
    private void WriteAvailEvent(ushort idx)
    {
        VolatileWrite16(_used.Span, 4 + 8 * Size, idx);
    }

    /// <summary>
    /// Call after the queue looked empty: re-arms the EVENT_IDX kick and checks once more
    /// (the driver may have added a buffer between our last check and the re-arm).
    /// </summary>
    public bool EnableNotificationAndRecheck()
    {
        if (_memory is null || Error != QueueError.None) return false;
        if (EventIdx) WriteAvailEvent(NextAvail);
        Interlocked.MemoryBarrier();
        return ReadAvailIndex() != NextAvail;
    }

    private static ushort ReadU16(Span<byte> s, int offset) => MemoryMarshal.Read<ushort>(s.Slice(offset, 2));

    private static ushort VolatileRead16(Span<byte> s, int offset) =>
        Volatile.Read(ref Unsafe.As<byte, ushort>(ref s[offset]));

    private static void VolatileWrite16(Span<byte> s, int offset, ushort value)
    {
        _ = s[offset + 1];
        Volatile.Write(ref Unsafe.As<byte, ushort>(ref s[offset]), value);
    }

    public override string ToString() =>
        $"queue {Index}: size {Size}, desc {DescriptorTable} avail {AvailRing} used {UsedRing}, next avail {NextAvail} used {NextUsed}{(Error != QueueError.None ? $", failed: {Error}" : "")}";
}
