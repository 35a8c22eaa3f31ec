using VirtioGpuHost.GuestMemory;
using VirtioGpuHost.Interop;

namespace VirtioGpuHost.FrontEnd;

/// <summary>
/// Guest RAM as a VMM holds it: a memfd mapped into this process (shareable with the
/// back-end by fd), one region at guest-physical address <see cref="GuestBase"/>, with a
/// page allocator for rings, commands and framebuffers.
/// </summary>
public sealed class GuestRam : IDisposable
{
    public const ulong PageSize = 4096;

    private GuestRam(MemoryBlock block, GuestAddress guestBase, bool shareable)
    {
        Block = block;
        GuestBase = guestBase;
        Shareable = shareable;
        Region = new GuestRegion(guestBase, block.Length, (ulong)block.Address, 0, block);
        Memory = GuestMemoryMap.Create([Region]);
        block.Release(); // the map holds the block now
        Allocator = new GuestAllocator(guestBase.Value, block.Length);
    }

    /// <summary>memfd-backed RAM (what a real VMM passes to a vhost-user back-end).</summary>
    public static GuestRam CreateShared(ulong size, ulong guestBase = 0) =>
        new(MappedBlock.CreateMemFd("vgh-guest-ram", size), new GuestAddress(guestBase), true);

    /// <summary>Plain native memory (in-process device tests: no fd needed).</summary>
    public static GuestRam CreateLocal(ulong size, ulong guestBase = 0) =>
        new(NativeBlock.Allocate(size), new GuestAddress(guestBase), false);

    public MemoryBlock Block { get; }
    public GuestAddress GuestBase { get; }
    public bool Shareable { get; }
    public GuestRegion Region { get; }
    public GuestMemoryMap Memory { get; }
    public GuestAllocator Allocator { get; }
    public ulong Size => Block.Length;

    /// <summary>The fd to pass in SET_MEM_TABLE / ADD_MEM_REG.</summary>
    public FdHandle Fd => Block.Fd ?? throw new InvalidOperationException("local guest RAM has no fd");

    /// <summary>The front-end virtual address of a guest address (what SET_VRING_ADDR carries).</summary>
    public ulong UserAddress(GuestAddress a) => (ulong)Block.Address + (a.Value - GuestBase.Value);

    public Span<byte> Span(GuestAddress a, int length) => Block.AsSpan(a.Value - GuestBase.Value, length);

    public void Dispose() => Memory.Dispose();
}

/// <summary>First-fit page allocator over the guest address range.</summary>
public sealed class GuestAllocator
{
    private readonly SortedDictionary<ulong, ulong> _free = new(); // start → length
    private readonly object _lock = new();

    public GuestAllocator(ulong start, ulong length) { _free[start] = length; }

    /// <summary>Allocates <paramref name="length"/> bytes (rounded up to pages), aligned to <paramref name="align"/>.</summary>
    public GuestAddress Allocate(ulong length, ulong align = GuestRam.PageSize)
    {
        length = (length + GuestRam.PageSize - 1) & ~(GuestRam.PageSize - 1);
        lock (_lock)
        {
            foreach (var (start, len) in _free)
            {
                ulong aligned = (start + align - 1) / align * align;
                if (aligned - start + length > len) continue;
                _free.Remove(start);
                if (aligned > start) _free[start] = aligned - start;
                ulong end = aligned + length, freeEnd = start + len;
                if (freeEnd > end) _free[end] = freeEnd - end;
                return new GuestAddress(aligned);
            }
        }
        throw new OutOfMemoryException($"guest RAM exhausted allocating {length} bytes");
    }

    public void Free(GuestAddress address, ulong length)
    {
        length = (length + GuestRam.PageSize - 1) & ~(GuestRam.PageSize - 1);
        lock (_lock)
        {
            ulong start = address.Value;
            // Merge with the following and preceding free ranges.
            if (_free.Remove(start + length, out ulong next)) length += next;
            var prev = _free.LastOrDefault(kv => kv.Key < start);
            if (prev.Value != 0 && prev.Key + prev.Value == start)
            {
                _free[prev.Key] = prev.Value + length;
                return;
            }
            _free[start] = length;
        }
    }
}
