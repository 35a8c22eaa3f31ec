using System.Buffers.Binary;
using System.Runtime.InteropServices;
using VirtioGpuHost.GuestMemory;
using VirtioGpuHost.TestKit;
using VirtioGpuHost.Virtio;

namespace VirtioGpuHost.Fuzz.Targets;

/// <summary>
/// The descriptor-chain walker: <see cref="SplitQueue"/> (TryPop, indirect tables, EVENT_IDX,
/// AddUsed, ShouldNotify) and <see cref="DescriptorChain"/> Read/Write over fake guest RAM whose
/// rings and buffers are the input bytes.
/// </summary>
/// <remarks>
/// Input: <c>[u8 config][u16 next avail][guest bytes]</c>. config bits 0-2: queue size 1 &lt;&lt; n,
/// bit 3 INDIRECT_DESC, bit 4 EVENT_IDX, bit 5 NOTIFY_ON_EMPTY. The guest bytes are copied into
/// 64 KiB of guest RAM at guest address 0x10000 starting at the descriptor table (then the avail
/// ring, the used ring one page later, then buffers); the rest of RAM is zero. The queue pops
/// until empty or failed (at most 4 x size + 4 chains), reads every chain and completes it.
/// Expected exceptions: none. A malformed ring must come back as a QueueError; the checks below
/// (segments inside RAM, lengths adding up, Read/Write never failing on a chain the walker
/// accepted, used index advancing by the chains completed) throw <see cref="FuzzInvariantException"/>.
/// </remarks>
public sealed class ChainWalkerTarget : IFuzzTarget
{
    public const ulong GuestBase = 0x10000;
    public const ulong RamSize = 64 << 10;

    public string Name => "chain-walker";
    public string Description => "split virtqueue rings and descriptor chains (direct, indirect, EVENT_IDX) in fake guest RAM";
    public int MaxInputLength => 3 + (int)RamSize;

    /// <summary>Chains popped and completed by all runs so far (tests check the seeds reach the walker).</summary>
    public static long ChainsCompleted { get; private set; }

    public void Run(ReadOnlySpan<byte> input)
    {
        if (input.Length < 3) return;
        byte config = input[0];
        ushort size = (ushort)(1 << (config & 7));
        using var rig = SplitQueueRig.Create(size, indirect: (config & 8) != 0, eventIdx: (config & 16) != 0, ramSize: RamSize, guestBase: GuestBase);
        var q = rig.Queue;
        q.NotifyOnEmpty = (config & 32) != 0;
        var guest = input[3..];
        ulong room = GuestBase + RamSize - rig.Driver.Descriptors.Value;
        rig.WriteGuest(rig.Driver.Descriptors, guest[..(int)Math.Min((ulong)guest.Length, room)]);
        q.NextAvail = BinaryPrimitives.ReadUInt16LittleEndian(input[1..]);
        if (!q.Bind(rig.Memory)) throw new FuzzInvariantException("the rig's rings did not bind");

        ushort usedBefore = q.NextUsed;
        int completed = 0;
        var buffer = new byte[4096];
        for (int i = 0; i < 4 * size + 4; i++)
        {
            if (!q.TryPop(out var chain, out var error))
            {
                if (error != QueueError.None && (q.Error != error || q.IsBound))
                    throw new FuzzInvariantException($"TryPop reported {error} but the queue is {q}");
                break;
            }
            if (chain is null) throw new FuzzInvariantException("TryPop returned true without a chain");
            Check(rig.Memory, chain);
            ulong offset = 0;
            while (offset < chain.ReadableLength && offset < 1 << 20)
            {
                int n = chain.Read(rig.Memory, offset, buffer);
                if (n <= 0) throw new FuzzInvariantException($"{chain}: Read at {offset} returned {n}");
                offset += (ulong)n;
            }
            int written = chain.Write(rig.Memory, buffer.AsSpan(0, (int)Math.Min(chain.WritableLength, 64)));
            if (written < 0) throw new FuzzInvariantException($"{chain}: Write failed on segments the walker accepted");
            q.AddUsed(chain.Head, (uint)written);
            completed++;
            ChainsCompleted++;
            q.ShouldNotify();
        }
        q.EnableNotificationAndRecheck();
        if (q.Error == QueueError.None && (ushort)(q.NextUsed - usedBefore) != completed)
            throw new FuzzInvariantException($"{completed} chains completed but used index moved {usedBefore} -> {q.NextUsed}");
    }

    private static void Check(GuestMemoryMap memory, DescriptorChain chain)
    {
        ulong r = 0, w = 0;
        var slices = new List<MemorySlice>();
        foreach (var s in chain.Readable) { r += s.Length; CheckSegment(memory, chain, s, slices); }
        foreach (var s in chain.Writable) { w += s.Length; CheckSegment(memory, chain, s, slices); }
        if (r != chain.ReadableLength || w != chain.WritableLength)
            throw new FuzzInvariantException($"{chain}: segment lengths add up to {r}/{w}");
        if (r > uint.MaxValue || w > uint.MaxValue) throw new FuzzInvariantException($"{chain}: more than 4 GiB");
    }

    private static void CheckSegment(GuestMemoryMap memory, DescriptorChain chain, BufferSegment s, List<MemorySlice> slices)
    {
        if (s.Length == 0) throw new FuzzInvariantException($"{chain}: zero-length segment kept");
        slices.Clear();
        if (!memory.TryGetSlices(s.Address, s.Length, slices))
            throw new FuzzInvariantException($"{chain}: segment {s} is not inside guest RAM");
    }

    // ---- seeds ----

    public IEnumerable<(string Name, byte[] Data)> Seeds()
    {
        yield return ("one-direct-chain", Seed(config: 3, indirectChain: false));
        yield return ("indirect-chain", Seed(config: 3 | 8, indirectChain: true));
        yield return ("event-idx", Seed(config: 4 | 16, indirectChain: false));
    }

    /// <summary>
    /// A ring with two chains (request + response; two readable + one writable), direct or through
    /// indirect tables, every buffer in the first page after the avail ring so the seed stays small.
    /// </summary>
    private static byte[] Seed(byte config, bool indirectChain)
    {
        ushort size = (ushort)(1 << (config & 7));
        using var rig = SplitQueueRig.Create(size, indirect: (config & 8) != 0, eventIdx: (config & 16) != 0, ramSize: RamSize, guestBase: GuestBase);
        ulong next = (rig.Driver.Avail.Value + 6 + 2UL * size + 15) & ~15UL;
        GuestAddress Place(ReadOnlySpan<byte> bytes)
        {
            var a = new GuestAddress(next);
            rig.WriteGuest(a, bytes);
            next = (next + (ulong)bytes.Length + 15) & ~15UL;
            return a;
        }
        var request = Place(MemoryMarshal.AsBytes<uint>([0x0101, 0, 0, 0, 0, 0, 1, 2, 64, 64]));
        var response = Place(new byte[24]);
        var a = Place(Enumerable.Repeat((byte)0xab, 16).ToArray());
        var b = Place(Enumerable.Repeat((byte)0xcd, 8).ToArray());
        var c = Place(new byte[32]);
        VirtqDescriptor D(GuestAddress at, uint len, ushort flags, ushort nextIndex) => new() { Address = at.Value, Length = len, Flags = flags, Next = nextIndex };
        VirtqDescriptor[] first = [D(request, 40, VirtqDescriptor.FlagNext, 1), D(response, 24, VirtqDescriptor.FlagWrite, 0)];
        VirtqDescriptor[] second = [D(a, 16, VirtqDescriptor.FlagNext, 1), D(b, 8, VirtqDescriptor.FlagNext, 2), D(c, 32, VirtqDescriptor.FlagWrite, 0)];
        ushort slot = 0;
        foreach (var chain in new[] { first, second })
        {
            ushort head = slot;
            if (indirectChain)
            {
                var table = Place(MemoryMarshal.AsBytes<VirtqDescriptor>(chain));
                rig.WriteDescriptor(slot++, table.Value, (uint)(chain.Length * VirtqDescriptor.Size), VirtqDescriptor.FlagIndirect);
            }
            else
            {
                foreach (var d in chain)
                    rig.WriteDescriptor(slot++, d.Address, d.Length, d.Flags, (ushort)(d.Next + head));
            }
            rig.WriteAvailRing(head == 0 ? 0 : 1, head);
        }
        BinaryPrimitives.WriteUInt16LittleEndian(rig.Ram.Span(new GuestAddress(rig.Driver.Avail.Value + 2), 2), 2);
        var guest = rig.ReadGuest(rig.Driver.Descriptors, (int)(next - rig.Driver.Descriptors.Value));
        return [config, 0, 0, .. guest];
    }
}
