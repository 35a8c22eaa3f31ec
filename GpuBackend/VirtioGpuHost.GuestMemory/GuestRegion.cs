namespace VirtioGpuHost.GuestMemory;

/// <summary>
/// One guest RAM region (a vhost-user memory region): guest-physical start, size, the
/// front-end's virtual address for it, and the mapped memory.
/// </summary>
public sealed class GuestRegion
{
    public GuestRegion(GuestAddress guestStart, ulong size, ulong userAddress, ulong mmapOffset, MemoryBlock block)
    {
        if (size == 0) throw new ArgumentException("region size is 0", nameof(size));
        if (block.Length < size) throw new ArgumentException("block is smaller than the region", nameof(block));
        if (guestStart.Value + size < guestStart.Value) throw new ArgumentException("region wraps around the guest address space");
        if (userAddress + size < userAddress) throw new ArgumentException("region wraps around the front-end address space");
        GuestStart = guestStart;
        Size = size;
        UserAddress = userAddress;
        MmapOffset = mmapOffset;
        Block = block;
    }

    public GuestAddress GuestStart { get; }
    public ulong Size { get; }
    public ulong UserAddress { get; }
    public ulong MmapOffset { get; }
    public MemoryBlock Block { get; }

    public ulong GuestEnd => GuestStart.Value + Size; // exclusive

    public bool ContainsGuest(ulong gpa) => gpa >= GuestStart.Value && gpa - GuestStart.Value < Size;
    public bool ContainsUser(ulong uaddr) => uaddr >= UserAddress && uaddr - UserAddress < Size;

    public override string ToString() =>
        $"gpa 0x{GuestStart.Value:x}+0x{Size:x} uaddr 0x{UserAddress:x} offset 0x{MmapOffset:x}";
}
