using System.Buffers.Binary;
using System.Runtime.InteropServices;
using CsCheck;
using VirtioGpuHost.FrontEnd;
using VirtioGpuHost.GuestMemory;
using VirtioGpuHost.Virtio;

namespace VirtioGpuHost.UnitTests.Virtio;

/// <summary>
/// Random (mostly hostile) descriptor tables and avail rings thrown at SplitQueue.TryPop, checked
/// against an independent walk of the spec's rules over a copy of guest RAM; plus ShouldNotify
/// against virtq_need_event and DescriptorChain.Read/Write against a flat byte model.
/// </summary>
public class SplitQueuePropertyTests
{
    // Guest RAM is [RamBase, RamEnd): address 0 and everything past RamEnd are holes.
    private const ulong RamBase = 0x10000, RamSize = 0x10000, RamEnd = RamBase + RamSize;
    private const ulong DescAt = RamBase, AvailAt = RamBase + 0x1000, UsedAt = RamBase + 0x2000;
    private const ulong IndirectArea = RamBase + 0x3000; // 16 random descriptors that INDIRECT pointers aim at
    private const ulong DataStart = RamBase + 0x4000, DataEnd = RamBase + 0x8000;
    private const int MaxTable = 16;

    public sealed record Scenario(int SizeLog, bool Indirect, bool EventIdx, ushort NextAvail, int PendingRaw, bool HostilePending, ushort[] Ring, VirtqDescriptor[] Table, VirtqDescriptor[] IndirectTable)
    {
        public ushort Size => (ushort)(1 << SizeLog);

        /// <summary>Usually a legal number of new entries (0..size); sometimes anything.</summary>
        public int Pending => HostilePending ? PendingRaw : PendingRaw % (Size + 1);

        public override string ToString() =>
            $"size {Size} indirect {Indirect} eventIdx {EventIdx} nextAvail {NextAvail} pending {Pending}\n" +
            $" ring [{string.Join(", ", Ring.Take(Size))}]\n" +
            $" table {Describe(Table.Take(Size))}\n indirect area {Describe(IndirectTable)}";

        private static string Describe(IEnumerable<VirtqDescriptor> ds) =>
            string.Join(" ", ds.Select((d, i) => $"#{i}[0x{d.Address:x}+{d.Length} f{d.Flags} n{d.Next}]"));
    }

    private static VirtqDescriptor Desc(ulong address, uint length, ushort flags, ushort next) =>
        new() { Address = address, Length = length, Flags = flags, Next = next };

    private static readonly Gen<ushort> GenIndex = Gen.Frequency((12, Gen.UShort[0, MaxTable - 1]), (1, Gen.UShort[0, MaxTable + 2]), (1, Gen.UShort));

    /// <summary>A plausible buffer descriptor: small, in the data area, readable or writable, maybe chained.</summary>
    private static readonly Gen<VirtqDescriptor> GenBufferDescriptor = Gen.Select(
        Gen.ULong[DataStart, DataEnd - 64], Gen.UInt[0, 64], Gen.OneOfConst<ushort>(0, 1, 2, 3), GenIndex, Desc);

    /// <summary>An INDIRECT pointer into the indirect area, usually well formed, sometimes with NEXT/WRITE or a bad length.</summary>
    private static readonly Gen<VirtqDescriptor> GenIndirectDescriptor = Gen.Select(
        Gen.Int[0, MaxTable - 1],
        Gen.Frequency((8, Gen.Int[1, MaxTable].Select(k => (uint)k * 16)), (1, Gen.UInt[0, 16 * MaxTable + 16])),
        Gen.Frequency((6, Gen.Const<ushort>(4)), (1, Gen.Const<ushort>(5)), (1, Gen.Const<ushort>(6))),
        GenIndex,
        (k, len, flags, next) => Desc(IndirectArea + 16UL * (ulong)k, len, flags, next));

    /// <summary>Anything at all, biased toward the edges of guest RAM.</summary>
    private static readonly Gen<VirtqDescriptor> GenWildDescriptor = Gen.Select(
        Gen.Frequency(
            (2, Gen.ULong[DataStart, DataEnd]),
            (1, Gen.ULong[RamEnd - 64, RamEnd + 64]),
            (1, Gen.ULong[RamBase - 64, RamBase + 64]),
            (1, Gen.ULong[0, 0x1000]),
            (1, Gen.ULong[ulong.MaxValue - 64, ulong.MaxValue]),
            (1, Gen.ULong)),
        Gen.Frequency((4, Gen.UInt[0, 64]), (1, Gen.UInt[0, 0x20000]), (1, Gen.UInt)),
        Gen.Frequency((4, Gen.UShort[0, 7]), (1, Gen.UShort)),
        GenIndex,
        Desc);

    private static readonly Gen<VirtqDescriptor> GenDescriptor = Gen.Frequency(
        (10, GenBufferDescriptor), (3, GenIndirectDescriptor), (2, GenWildDescriptor));

    private static readonly Gen<Scenario> GenScenario = Gen.Select(
        Gen.Frequency((1, Gen.Int[0, 2]), (3, Gen.Int[3, 4])),
        Gen.Frequency((3, Gen.Const(true)), (1, Gen.Const(false))),
        Gen.Bool,
        Gen.Frequency((3, Gen.UShort[0, 20]), (1, Gen.UShort[65520, 65535]), (1, Gen.UShort)),
        Gen.Int[0, 65535],
        Gen.Frequency((12, Gen.Const(false)), (1, Gen.Const(true))),
        Gen.Frequency((20, Gen.UShort[0, 7]), (10, Gen.UShort[0, MaxTable - 1]), (1, Gen.UShort)).Array[MaxTable],
        Gen.Select(GenDescriptor.Array[MaxTable], GenDescriptor.Array[MaxTable]),
        (s, ind, ev, na, p, hp, ring, tables) => new Scenario(s, ind, ev, na, p, hp, ring, tables.Item1, tables.Item2));

    [Fact(Timeout = 300_000)]
    public async Task TryPop_RandomRings_MatchesSpecWalkAndNeverLeavesGuestRam()
    {
        await Task.Run(() => GenScenario.Sample(RunScenario, iter: 3000, print: s => s.ToString()), TestContext.Current.CancellationToken);
    }

    private static void RunScenario(Scenario s)
    {
        ushort size = s.Size;
        using var ram = GuestRam.CreateLocal(RamSize, RamBase);
        WriteRam(ram, s, size);
        var q = new SplitQueue(0) { IndirectDescriptors = s.Indirect, EventIdx = s.EventIdx, NextAvail = s.NextAvail };
        q.SetSize(size);
        q.SetAddresses(new GuestAddress(DescAt), new GuestAddress(AvailAt), new GuestAddress(UsedAt));
        Assert.True(q.Bind(ram.Memory));

        // Each successful pop consumes one of at most `size` pending entries, so the loop must end by then.
        for (int pops = 0; ; pops++)
        {
            Assert.True(pops <= size, $"popped {pops} chains from a ring of {size}");
            byte[] before = ram.Span(new GuestAddress(RamBase), (int)RamSize).ToArray();
            var expected = Model(before, size, s.Indirect, q.NextAvail);
            ushort nextAvailBefore = q.NextAvail;

            bool ok = q.TryPop(out var chain, out var error);

            byte[] after = ram.Span(new GuestAddress(RamBase), (int)RamSize).ToArray();
            switch (expected)
            {
                case Outcome.Empty:
                    Assert.False(ok);
                    Assert.Equal(QueueError.None, error);
                    Assert.Equal(before, after);
                    return;
                case Outcome.Failed f:
                    Assert.False(ok);
                    Assert.Null(chain);
                    Assert.Equal(f.Error, error);
                    Assert.Equal(f.Error, q.Error);
                    Assert.Equal(nextAvailBefore, q.NextAvail);
                    Assert.Equal(before, after);
                    Assert.False(q.TryPop(out _, out var again)); // stays failed
                    Assert.Equal(f.Error, again);
                    return;
                case Outcome.Popped p:
                    Assert.True(ok, $"expected a chain, got {error}");
                    Assert.NotNull(chain);
                    Assert.Equal(p.Head, chain!.Head);
                    Assert.Equal(p.Readable, chain.Readable);
                    Assert.Equal(p.Writable, chain.Writable);
                    foreach (var seg in chain.Readable.Concat(chain.Writable))
                    {
                        Assert.True(seg.Length > 0);
                        Assert.True(InRam(seg.Address.Value, seg.Length), $"segment {seg} is outside guest RAM");
                    }
                    Assert.Equal(chain.Readable.Aggregate(0UL, (t, x) => t + x.Length), chain.ReadableLength);
                    Assert.Equal(chain.Writable.Aggregate(0UL, (t, x) => t + x.Length), chain.WritableLength);
                    Assert.Equal((ushort)(nextAvailBefore + 1), q.NextAvail);
                    // The only byte TryPop may write is avail_event (with EVENT_IDX).
                    int availEvent = (int)(UsedAt - RamBase) + 4 + 8 * size;
                    if (s.EventIdx)
                    {
                        Assert.Equal(q.NextAvail, BinaryPrimitives.ReadUInt16LittleEndian(after.AsSpan(availEvent)));
                        after[availEvent] = before[availEvent];
                        after[availEvent + 1] = before[availEvent + 1];
                    }
                    Assert.Equal(before, after);
                    break;
            }
        }
    }

    private static void WriteRam(GuestRam ram, Scenario s, ushort size)
    {
        var desc = ram.Span(new GuestAddress(DescAt), 16 * size);
        for (int i = 0; i < size; i++) MemoryMarshal.Write(desc.Slice(16 * i, 16), in s.Table[i]);
        var itable = ram.Span(new GuestAddress(IndirectArea), 16 * MaxTable);
        for (int i = 0; i < MaxTable; i++) MemoryMarshal.Write(itable.Slice(16 * i, 16), in s.IndirectTable[i]);
        var avail = ram.Span(new GuestAddress(AvailAt), 6 + 2 * size);
        BinaryPrimitives.WriteUInt16LittleEndian(avail[2..], (ushort)(s.NextAvail + s.Pending));
        for (int i = 0; i < size; i++) BinaryPrimitives.WriteUInt16LittleEndian(avail[(4 + 2 * i)..], s.Ring[i]);
    }

    private static bool InRam(ulong address, ulong length) => address >= RamBase && address <= RamEnd && length <= RamEnd - address;

    private abstract record Outcome
    {
        public sealed record Empty : Outcome;
        public sealed record Failed(QueueError Error) : Outcome;
        public sealed record Popped(ushort Head, BufferSegment[] Readable, BufferSegment[] Writable) : Outcome;
    }

    /// <summary>The split-ring rules (virtio 1.x §2.7), walked over a copy of guest RAM.</summary>
    private static Outcome Model(byte[] ram, ushort size, bool indirectNegotiated, ushort nextAvail)
    {
        ushort U16(ulong gpa) => BinaryPrimitives.ReadUInt16LittleEndian(ram.AsSpan((int)(gpa - RamBase)));
        ushort availIdx = U16(AvailAt + 2);
        int pending = (ushort)(availIdx - nextAvail);
        if (pending == 0) return new Outcome.Empty();
        if (pending > size) return new Outcome.Failed(QueueError.AvailIndexTooFarAhead);
        ushort head = U16(AvailAt + 4 + 2UL * (ulong)(nextAvail % size));
        if (head >= size) return new Outcome.Failed(QueueError.HeadOutOfRange);

        var readable = new List<BufferSegment>();
        var writable = new List<BufferSegment>();
        ulong table = DescAt;
        int entries = size, visits = 0, index = head;
        bool inIndirect = false;
        while (true)
        {
            if (++visits > entries) return new Outcome.Failed(QueueError.ChainTooLong);
            var d = MemoryMarshal.Read<VirtqDescriptor>(ram.AsSpan((int)(table - RamBase) + 16 * index, 16));
            bool next = (d.Flags & 1) != 0, write = (d.Flags & 2) != 0, indirect = (d.Flags & 4) != 0;
            if (indirect)
            {
                if (!indirectNegotiated) return new Outcome.Failed(QueueError.IndirectNotNegotiated);
                if (inIndirect) return new Outcome.Failed(QueueError.NestedIndirect);
                if (next) return new Outcome.Failed(QueueError.IndirectWithNext);
                if (d.Length == 0 || d.Length % 16 != 0 || !InRam(d.Address, d.Length)) return new Outcome.Failed(QueueError.IndirectTableInvalid);
                table = d.Address;
                entries = (int)(d.Length / 16);
                inIndirect = true;
                visits = 0;
                index = 0;
                continue;
            }
            if (d.Length > 0)
            {
                if (!InRam(d.Address, d.Length)) return new Outcome.Failed(QueueError.BufferNotInGuestMemory);
                var seg = new BufferSegment(new GuestAddress(d.Address), d.Length);
                if (write) writable.Add(seg);
                else if (writable.Count > 0) return new Outcome.Failed(QueueError.ReadableAfterWritable);
                else readable.Add(seg);
            }
            if (!next) return new Outcome.Popped(head, [.. readable], [.. writable]);
            index = d.Next;
            if (index >= entries) return new Outcome.Failed(QueueError.NextOutOfRange);
        }
    }

    // ---- ShouldNotify against virtq_need_event ----

    public sealed record NotifyStep(int Published, ushort UsedEventDelta, bool Call);

    [Fact]
    public void ShouldNotify_RandomUsedEvents_MatchesVirtqNeedEvent()
    {
        var gen = Gen.Select(
            Gen.UShort,
            Gen.Select(Gen.Int[0, 5], Gen.Frequency((4, Gen.UShort[0, 8]), (1, Gen.UShort)), Gen.Frequency((3, Gen.Const(true)), (1, Gen.Const(false))),
                (n, e, c) => new NotifyStep(n, e, c)).Array[1, 30]);
        gen.Sample((startUsed, steps) =>
        {
            using var ram = GuestRam.CreateLocal(1 << 16);
            var driver = new DriverQueue(ram, 0, 8);
            var q = new SplitQueue(0) { EventIdx = true };
            q.SetSize(8);
            q.SetAddresses(driver.Descriptors, driver.Avail, driver.Used);
            BinaryPrimitives.WriteUInt16LittleEndian(ram.Span(new GuestAddress(driver.Used.Value + 2), 2), startUsed);
            Assert.True(q.Bind(ram.Memory));

            ushort used = startUsed;
            ushort? lastSignalled = null;
            foreach (var step in steps)
            {
                for (int i = 0; i < step.Published; i++) q.AddUsed((ushort)(i % 8), 0);
                used = (ushort)(used + step.Published);
                // used_event somewhere at or a little before the new used index (wrapping).
                ushort usedEvent = (ushort)(used - step.UsedEventDelta);
                driver.SetUsedEvent(usedEvent);
                if (!step.Call) continue;

                bool expected = lastSignalled is not ushort old || (ushort)(used - usedEvent - 1) < (ushort)(used - old);
                Assert.Equal(expected, q.ShouldNotify());
                lastSignalled = used;
            }
        }, iter: 500);
    }

    // ---- DescriptorChain.Read/Write against a flat byte model ----

    [Fact]
    public void DescriptorChain_RandomSplitsAndOffsets_ReadsAndWritesLikeOneFlatBuffer()
    {
        var gen = Gen.Select(
            Gen.Int[1, 20].Array[1, 6],   // readable segment lengths
            Gen.Int[1, 20].Array[0, 6],   // writable segment lengths
            Gen.Int[0, 130],              // read offset
            Gen.Int[0, 130],              // read length
            Gen.Int[0, 130]);             // write length
        gen.Sample((rLens, wLens, offset, readLen, writeLen) =>
        {
            using var rig = TestKit.SplitQueueRig.Create(size: 16);
            var flat = new byte[rLens.Sum()];
            for (int i = 0; i < flat.Length; i++) flat[i] = (byte)(i * 7 + 1);
            var readable = new List<GuestBuffer>();
            int at = 0;
            foreach (int len in rLens) { readable.Add(rig.Buffer(flat.AsSpan(at, len))); at += len; }
            var writable = wLens.Select(len => rig.Buffer((uint)len, 0xCC)).ToList();
            rig.Driver.Add(readable, writable);
            var chain = rig.Pop();

            var dst = new byte[readLen];
            int n = chain.Read(rig.Memory, (ulong)offset, dst);
            int expectRead = Math.Max(0, Math.Min(readLen, flat.Length - offset));
            Assert.Equal(expectRead, n);
            Assert.Equal(flat.AsSpan(Math.Min(offset, flat.Length), expectRead).ToArray(), dst[..n]);

            var src = Enumerable.Range(0, writeLen).Select(i => (byte)(200 + i)).ToArray();
            int w = chain.Write(rig.Memory, src);
            Assert.Equal(Math.Min(writeLen, wLens.Sum()), w);
            var back = writable.SelectMany(b => rig.ReadGuest(b.Address, (int)b.Length)).ToArray();
            Assert.Equal(src[..w], back[..w]);
            Assert.All(back[w..], b => Assert.Equal(0xCC, b));
        }, iter: 300);
    }
}
