using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using VirtioGpuHost.GuestMemory;
using VirtioGpuHost.Virtio;

namespace VirtioGpuHost.FrontEnd;

/// <summary>A buffer piece for a chain: guest address and length.</summary>
public readonly record struct GuestBuffer(GuestAddress Address, uint Length);

/// <summary>
/// The driver's side of one split virtqueue in guest RAM (what the Linux virtio_ring does):
/// descriptor allocation, chains (optionally through an indirect table), the avail ring,
/// and reading the used ring. Also exposes raw writes so tests can build malformed rings.
/// Thread-safe: one lock around ring updates.
/// </summary>
public sealed class DriverQueue
{
    private readonly GuestRam _ram;
    private readonly Stack<ushort> _freeDescriptors = new();
    private readonly Dictionary<ushort, (ushort[] Descriptors, GuestBuffer? Indirect)> _chains = new();
    private readonly object _lock = new();
    private ushort _availIdx;
    private ushort _lastUsed;

    public DriverQueue(GuestRam ram, int index, ushort size)
    {
        if (!SplitQueue.IsValidSize(size)) throw new ArgumentOutOfRangeException(nameof(size));
        _ram = ram;
        Index = index;
        Size = size;
        ulong descBytes = 16UL * size, availBytes = 6 + 2UL * size, usedBytes = 6 + 8UL * size;
        ulong usedOffset = (descBytes + availBytes + 4095) & ~4095UL;
        var area = ram.Allocator.Allocate(usedOffset + usedBytes);
        ram.Span(area, (int)(usedOffset + usedBytes)).Clear();
        Descriptors = area;
        Avail = new GuestAddress(area.Value + descBytes);
        Used = new GuestAddress(area.Value + usedOffset);
        for (int i = size - 1; i >= 0; i--) _freeDescriptors.Push((ushort)i);
    }

    public int Index { get; }
    public ushort Size { get; }
    public GuestAddress Descriptors { get; }
    public GuestAddress Avail { get; }
    public GuestAddress Used { get; }

    /// <summary>avail->idx as published so far (the back-end's SET_VRING_BASE starts from 0).</summary>
    public ushort AvailIndex => _availIdx;

    public int FreeDescriptors { get { lock (_lock) return _freeDescriptors.Count; } }

    /// <summary>
    /// Adds a chain (readable buffers first, then writable) and publishes it in the avail
    /// ring. With <paramref name="indirect"/> the buffers go into an indirect table.
    /// Returns the head index.
    /// </summary>
    public ushort Add(IReadOnlyList<GuestBuffer> readable, IReadOnlyList<GuestBuffer> writable, bool indirect = false)
    {
        int n = readable.Count + writable.Count;
        if (n == 0) throw new ArgumentException("a chain needs at least one buffer");
        lock (_lock)
        {
            ushort head;
            if (indirect)
            {
                var table = _ram.Allocator.Allocate((ulong)n * 16);
                var t = _ram.Span(table, n * 16);
                for (int i = 0; i < n; i++)
                {
                    var b = i < readable.Count ? readable[i] : writable[i - readable.Count];
                    var d = new VirtqDescriptor
                    {
                        Address = b.Address.Value,
                        Length = b.Length,
                        Flags = (ushort)((i < n - 1 ? VirtqDescriptor.FlagNext : 0) | (i >= readable.Count ? VirtqDescriptor.FlagWrite : 0)),
                        Next = (ushort)(i + 1 < n ? i + 1 : 0),
                    };
                    MemoryMarshal.Write(t.Slice(i * 16, 16), in d);
                }
                head = TakeDescriptor();
                WriteDescriptor(head, new VirtqDescriptor { Address = table.Value, Length = (uint)(n * 16), Flags = VirtqDescriptor.FlagIndirect });
                _chains[head] = ([head], new GuestBuffer(table, (uint)(n * 16)));
            }
            else
            {
                if (_freeDescriptors.Count < n) throw new InvalidOperationException($"queue {Index}: {n} descriptors needed, {_freeDescriptors.Count} free");
                var ids = new ushort[n];
                for (int i = 0; i < n; i++) ids[i] = TakeDescriptor();
                for (int i = 0; i < n; i++)
                {
                    var b = i < readable.Count ? readable[i] : writable[i - readable.Count];
                    WriteDescriptor(ids[i], new VirtqDescriptor
                    {
                        Address = b.Address.Value,
                        Length = b.Length,
                        Flags = (ushort)((i < n - 1 ? VirtqDescriptor.FlagNext : 0) | (i >= readable.Count ? VirtqDescriptor.FlagWrite : 0)),
                        Next = i < n - 1 ? ids[i + 1] : (ushort)0,
                    });
                }
                head = ids[0];
                _chains[head] = (ids, null);
            }
            PublishHead(head);
            return head;
        }
    }

    private ushort TakeDescriptor() =>
        _freeDescriptors.Count > 0 ? _freeDescriptors.Pop() : throw new InvalidOperationException($"queue {Index}: no free descriptors");

    /// <summary>Raw: writes descriptor <paramref name="i"/> of the table.</summary>
    public void WriteDescriptor(ushort i, VirtqDescriptor d) =>
        MemoryMarshal.Write(_ram.Span(new GuestAddress(Descriptors.Value + 16UL * i), 16), in d);

    /// <summary>Raw: puts <paramref name="head"/> in the avail ring and bumps avail->idx.</summary>
    public void PublishHead(ushort head)
    {
        lock (_lock)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(_ram.Span(new GuestAddress(Avail.Value + 4 + 2UL * (ulong)(_availIdx % Size)), 2), head);
            _availIdx++;
            SetAvailIndex(_availIdx);
        }
    }

    /// <summary>Raw: stores avail->idx (a release store, after the ring entry).</summary>
    public void SetAvailIndex(ushort idx)
    {
        var s = _ram.Span(new GuestAddress(Avail.Value + 2), 2);
        Volatile.Write(ref Unsafe.As<byte, ushort>(ref s[0]), idx);
    }

    /// <summary>Raw: avail->flags (bit 0 = VIRTQ_AVAIL_F_NO_INTERRUPT).</summary>
    public void SetAvailFlags(ushort flags) => BinaryPrimitives.WriteUInt16LittleEndian(_ram.Span(Avail, 2), flags);

    /// <summary>EVENT_IDX: used_event, the used index after which the driver wants an interrupt.</summary>
    public void SetUsedEvent(ushort idx) =>
        BinaryPrimitives.WriteUInt16LittleEndian(_ram.Span(new GuestAddress(Avail.Value + 4 + 2UL * Size), 2), idx);

    /// <summary>EVENT_IDX: avail_event as the device last wrote it.</summary>
    public ushort ReadAvailEvent() =>
        BinaryPrimitives.ReadUInt16LittleEndian(_ram.Span(new GuestAddress(Used.Value + 4 + 8UL * Size), 2));

    public ushort ReadUsedIndex()
    {
        var s = _ram.Span(new GuestAddress(Used.Value + 2), 2);
        return Volatile.Read(ref Unsafe.As<byte, ushort>(ref s[0]));
    }

    /// <summary>Takes the next used element, freeing its descriptors; false when none is new.</summary>
    public bool TryTakeUsed(out ushort head, out uint written)
    {
        lock (_lock)
        {
            head = 0;
            written = 0;
            if (ReadUsedIndex() == _lastUsed) return false;
            var e = _ram.Span(new GuestAddress(Used.Value + 4 + 8UL * (ulong)(_lastUsed % Size)), 8);
            head = (ushort)BinaryPrimitives.ReadUInt32LittleEndian(e);
            written = BinaryPrimitives.ReadUInt32LittleEndian(e[4..]);
            _lastUsed++;
            SetUsedEvent(_lastUsed); // interrupt me for the next one
            if (_chains.Remove(head, out var chain))
            {
                foreach (var d in chain.Descriptors) _freeDescriptors.Push(d);
                if (chain.Indirect is GuestBuffer t) _ram.Allocator.Free(t.Address, t.Length);
            }
            return true;
        }
    }

    /// <summary>
    /// What a driver does after a device reset: the ring starts over, zeroed, with avail and
    /// used indices 0, and every chain in flight is forgotten. (Only forgetting the chains would
    /// leave the old avail entries in place, and a device restarted at avail index 0 would
    /// replay them.)
    /// </summary>
    public void Reset()
    {
        lock (_lock)
        {
            ulong usedBytes = 6 + 8UL * Size;
            _ram.Span(Descriptors, (int)(Used.Value + usedBytes - Descriptors.Value)).Clear();
            _availIdx = 0;
            _lastUsed = 0;
            foreach (var chain in _chains.Values)
                if (chain.Indirect is GuestBuffer t) _ram.Allocator.Free(t.Address, t.Length);
            _chains.Clear();
            _freeDescriptors.Clear();
            for (int i = Size - 1; i >= 0; i--) _freeDescriptors.Push((ushort)i);
        }
    }
}
