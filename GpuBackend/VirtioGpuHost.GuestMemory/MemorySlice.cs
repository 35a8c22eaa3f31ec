namespace VirtioGpuHost.GuestMemory;

/// <summary>
/// A contiguous piece of mapped guest (or host) memory. Valid while the memory snapshot it
/// came from is held; the connection's event loop holds it for the duration of a command.
/// </summary>
public readonly unsafe struct MemorySlice
{
    public MemorySlice(nint address, int length)
    {
        Address = address;
        Length = length;
    }

    public nint Address { get; }
    public int Length { get; }

    public Span<byte> Span => new((void*)Address, Length);

    public MemorySlice Slice(int offset, int length)
    {
        if ((uint)offset > (uint)Length || (uint)length > (uint)(Length - offset)) throw new ArgumentOutOfRangeException(nameof(offset));
        return new MemorySlice(Address + offset, length);
    }
}
