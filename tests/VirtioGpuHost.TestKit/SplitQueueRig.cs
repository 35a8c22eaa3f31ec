using System.Buffers.Binary;
using VirtioGpuHost.FrontEnd;
using VirtioGpuHost.GuestMemory;
using VirtioGpuHost.Virtio;

namespace VirtioGpuHost.TestKit;

/// <summary>
/// One split virtqueue with nothing else around it: local guest RAM, the reference driver's
/// side of the ring (<see cref="Driver"/>) and the device's <see cref="SplitQueue"/>, bound.
/// Raw helpers read and write ring bytes directly so tests can build hostile rings and check
/// exactly what the device wrote.
/// </summary>
public sealed class SplitQueueRig : IDisposable
{
    private SplitQueueRig(ulong ramSize, ulong guestBase, ushort size, bool indirect, bool eventIdx)
    {
        Ram = GuestRam.CreateLocal(ramSize, guestBase);
        Driver = new DriverQueue(Ram, 0, size);
        Queue = new SplitQueue(0) { IndirectDescriptors = indirect, EventIdx = eventIdx };
        Queue.SetSize(size);
        Queue.SetAddresses(Driver.Descriptors, Driver.Avail, Driver.Used);
    }

    /// <summary>A bound queue of <paramref name="size"/> entries over fresh zeroed guest RAM.</summary>
    public static SplitQueueRig Create(ushort size = 8, bool indirect = false, bool eventIdx = false, ulong ramSize = 1UL << 20, ulong guestBase = 0)
    {
        var rig = new SplitQueueRig(ramSize, guestBase, size, indirect, eventIdx);
        if (!rig.Queue.Bind(rig.Ram.Memory))
        {
            rig.Dispose();
            throw new InvalidOperationException("the rig's rings do not lie in its own guest RAM");
        }
        return rig;
    }

    public GuestRam Ram { get; }
    public DriverQueue Driver { get; }
    public SplitQueue Queue { get; }
    public GuestMemoryMap Memory => Ram.Memory;
    public ushort Size => Driver.Size;

    /// <summary>A fresh guest buffer of <paramref name="length"/> bytes, every byte set to <paramref name="fill"/>.</summary>
    public GuestBuffer Buffer(uint length, byte fill = 0)
    {
        var a = Ram.Allocator.Allocate(Math.Max(length, 1));
        Ram.Span(a, (int)length).Fill(fill);
        return new GuestBuffer(a, length);
    }

    /// <summary>A fresh guest buffer holding <paramref name="content"/>.</summary>
    public GuestBuffer Buffer(ReadOnlySpan<byte> content)
    {
        var b = Buffer((uint)content.Length);
        content.CopyTo(Ram.Span(b.Address, content.Length));
        return b;
    }

    public byte[] ReadGuest(GuestAddress address, int length) => Ram.Span(address, length).ToArray();

    public void WriteGuest(GuestAddress address, ReadOnlySpan<byte> bytes) => bytes.CopyTo(Ram.Span(address, bytes.Length));

    /// <summary>Raw: descriptor table entry <paramref name="index"/>.</summary>
    public void WriteDescriptor(ushort index, ulong address, uint length, ushort flags = 0, ushort next = 0) =>
        Driver.WriteDescriptor(index, new VirtqDescriptor { Address = address, Length = length, Flags = flags, Next = next });

    /// <summary>Raw: an indirect table of <paramref name="entries"/> in fresh guest memory; returns its address.</summary>
    public GuestAddress WriteIndirectTable(params VirtqDescriptor[] entries)
    {
        var a = Ram.Allocator.Allocate((ulong)Math.Max(entries.Length, 1) * VirtqDescriptor.Size);
        var span = Ram.Span(a, entries.Length * VirtqDescriptor.Size);
        for (int i = 0; i < entries.Length; i++)
            System.Runtime.InteropServices.MemoryMarshal.Write(span.Slice(i * VirtqDescriptor.Size, VirtqDescriptor.Size), in entries[i]);
        return a;
    }

    /// <summary>Raw: avail->ring[<paramref name="slot"/> % size] = <paramref name="head"/> (avail->idx untouched).</summary>
    public void WriteAvailRing(int slot, ushort head) =>
        BinaryPrimitives.WriteUInt16LittleEndian(Ram.Span(new GuestAddress(Driver.Avail.Value + 4 + 2UL * (ulong)(slot % Size)), 2), head);

    /// <summary>used->idx as the device last stored it.</summary>
    public ushort UsedIndex => BinaryPrimitives.ReadUInt16LittleEndian(Ram.Span(new GuestAddress(Driver.Used.Value + 2), 2));

    /// <summary>Raw: used->idx (as if the ring had been in use before a bind).</summary>
    public void SetUsedIndex(ushort idx) =>
        BinaryPrimitives.WriteUInt16LittleEndian(Ram.Span(new GuestAddress(Driver.Used.Value + 2), 2), idx);

    /// <summary>used->flags.</summary>
    public ushort UsedFlags => BinaryPrimitives.ReadUInt16LittleEndian(Ram.Span(Driver.Used, 2));

    /// <summary>The whole 32-bit id and len of used->ring[<paramref name="slot"/>] (no narrowing).</summary>
    public (uint Id, uint Length) UsedElement(int slot)
    {
        var e = Ram.Span(new GuestAddress(Driver.Used.Value + 4 + 8UL * (ulong)(slot % Size)), 8);
        return (BinaryPrimitives.ReadUInt32LittleEndian(e), BinaryPrimitives.ReadUInt32LittleEndian(e[4..]));
    }

    /// <summary>The bytes of the used ring's element array (to check nothing else was written).</summary>
    public Span<byte> UsedElements => Ram.Span(new GuestAddress(Driver.Used.Value + 4), 8 * Size);

    /// <summary>avail_event (the used ring's EVENT_IDX trailer) as the device last wrote it.</summary>
    public ushort AvailEvent => Driver.ReadAvailEvent();

    /// <summary>Pops one chain and fails the test unless it succeeds.</summary>
    public DescriptorChain Pop()
    {
        bool ok = Queue.TryPop(out var chain, out var error);
        Xunit.Assert.True(ok, $"TryPop failed: {error}");
        Xunit.Assert.Equal(QueueError.None, error);
        Xunit.Assert.NotNull(chain);
        return chain!;
    }

    /// <summary>Pops and returns the error; fails the test if a chain came back.</summary>
    public QueueError PopError()
    {
        bool ok = Queue.TryPop(out var chain, out var error);
        Xunit.Assert.False(ok, $"TryPop unexpectedly returned {chain}");
        Xunit.Assert.Null(chain);
        return error;
    }

    public void Dispose() => Ram.Dispose();
}
