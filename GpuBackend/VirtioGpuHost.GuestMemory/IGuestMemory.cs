namespace VirtioGpuHost.GuestMemory;

/// <summary>
/// Bounds-checked access to guest-physical memory. Every method returns false instead of
/// throwing when any byte of the range lies outside guest RAM; ranges may span regions.
/// </summary>
public interface IGuestMemory
{
    bool TryRead(GuestAddress address, Span<byte> destination);
    bool TryWrite(GuestAddress address, ReadOnlySpan<byte> source);
    bool TryRead<T>(GuestAddress address, out T value) where T : unmanaged;
    bool TryWrite<T>(GuestAddress address, in T value) where T : unmanaged;

    /// <summary>
    /// Appends the host slices that make up [address, address+length) to <paramref name="slices"/>
    /// (one per region crossed, each at most int.MaxValue bytes). False, with nothing appended,
    /// when part of the range is not guest RAM.
    /// </summary>
    bool TryGetSlices(GuestAddress address, ulong length, List<MemorySlice> slices);
}
