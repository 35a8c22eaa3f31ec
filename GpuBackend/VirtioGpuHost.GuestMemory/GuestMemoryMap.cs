namespace VirtioGpuHost.GuestMemory;

/// <summary>
/// An immutable snapshot of guest RAM: the regions of one memory table. SET_MEM_TABLE,
/// ADD_MEM_REG and REM_MEM_REG build a new snapshot and publish it; the old one keeps its
/// regions mapped until its last holder disposes it (reference counted).
/// </summary>
public sealed partial class GuestMemoryMap : IGuestMemory, IDisposable
{
    private readonly GuestRegion[] _regions; // sorted by guest address, non-overlapping
    private int _refs = 1;

    private GuestMemoryMap(GuestRegion[] regions)
    {
        _regions = regions;
        int added = 0;
        try
        {
            for (; added < regions.Length; added++) regions[added].Block.AddRef();
        }
        catch
        {
            for (int i = 0; i < added; i++) regions[i].Block.Release();
            throw;
        }
    }

    /// <summary>No guest RAM at all (before the first memory table).</summary>
    public static GuestMemoryMap Empty() => new([]);

    public IReadOnlyList<GuestRegion> Regions => _regions;

    public ulong TotalSize => _regions.Aggregate(0UL, (s, r) => s + r.Size);

    /// <summary>
    /// A snapshot of exactly <paramref name="regions"/>. Regions that overlap in guest-physical
    /// or front-end virtual space are refused (ArgumentException): they would let one guest
    /// address mean two host addresses.
    /// </summary>
    public static GuestMemoryMap Create(IEnumerable<GuestRegion> regions)
    {
        var sorted = regions.OrderBy(r => r.GuestStart.Value).ToArray();
        for (int i = 1; i < sorted.Length; i++)
        {
            if (sorted[i].GuestStart.Value < sorted[i - 1].GuestEnd)
                throw new ArgumentException($"memory regions overlap: {sorted[i - 1]} and {sorted[i]}");
        }
        var byUser = sorted.OrderBy(r => r.UserAddress).ToArray();
        for (int i = 1; i < byUser.Length; i++)
        {
            if (byUser[i].UserAddress < byUser[i - 1].UserAddress + byUser[i - 1].Size)
                throw new ArgumentException($"memory regions overlap in front-end addresses: {byUser[i - 1]} and {byUser[i]}");
        }
        return new GuestMemoryMap(sorted);
    }

    /// <summary>This snapshot plus one region.</summary>
    public GuestMemoryMap With(GuestRegion region) => Create(_regions.Append(region));

    /// <summary>This snapshot without regions matching <paramref name="match"/>; the count removed comes back.</summary>
    public GuestMemoryMap Without(Func<GuestRegion, bool> match, out int removed)
    {
        var keep = _regions.Where(r => !match(r)).ToArray();
        removed = _regions.Length - keep.Length;
        return new GuestMemoryMap(keep);
    }

    /// <summary>Takes another reference to this snapshot (a lease); dispose it when done.</summary>
    public GuestMemoryMap Acquire()
    {
        // Never revive a disposed snapshot: its blocks are already released.
        int n = Volatile.Read(ref _refs);
        while (true)
        {
            if (n <= 0) throw new ObjectDisposedException(nameof(GuestMemoryMap));
            int seen = Interlocked.CompareExchange(ref _refs, n + 1, n);
            if (seen == n) return this;
            n = seen;
        }
    }

    public void Dispose()
    {
        int n = Interlocked.Decrement(ref _refs);
        if (n == 0)
        {
            foreach (var r in _regions) r.Block.Release();
        }
    }

    /// <summary>The region holding guest-physical address <paramref name="gpa"/>, or null.</summary>
    public GuestRegion? FindRegion(ulong gpa)
    {
        int lo = 0, hi = _regions.Length - 1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >>> 1;
            var r = _regions[mid];
            if (gpa < r.GuestStart.Value) hi = mid - 1;
            else if (gpa - r.GuestStart.Value >= r.Size) lo = mid + 1;
            else return r;
        }
        return null;
    }

    /// <summary>
    /// Translates a front-end virtual address range (SET_VRING_ADDR uses these) to a guest
    /// address. The whole range must lie in one region.
    /// </summary>
    public bool TryTranslateUserAddress(ulong userAddress, ulong length, out GuestAddress address)
    {
        foreach (var r in _regions)
        {
            if (!r.ContainsUser(userAddress)) continue;
            ulong offset = userAddress - r.UserAddress;
            if (length > r.Size - offset) break;
            address = new GuestAddress(r.GuestStart.Value + offset);
            return true;
        }
        address = default;
        return false;
    }

    /// <summary>
    /// A slice for [address, address+length) when the whole range lies in one region (rings,
    /// which must be contiguous in the front-end's memory).
    /// </summary>
    public bool TryGetContiguous(GuestAddress address, ulong length, out MemorySlice slice)
    {
        var r = FindRegion(address.Value);
        slice = default;
        if (r is null || length > int.MaxValue) return false;
        ulong offset = address.Value - r.GuestStart.Value;
        if (length > r.Size - offset) return false;
        slice = new MemorySlice(r.Block.Address + (nint)offset, (int)length);
        return true;
    }

    public override string ToString() => _regions.Length == 0 ? "no guest memory" : string.Join("; ", _regions.Select(r => r.ToString()));
}
