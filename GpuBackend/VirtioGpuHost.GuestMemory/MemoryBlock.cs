using System.Runtime.InteropServices;
using VirtioGpuHost.Interop;

namespace VirtioGpuHost.GuestMemory;

/// <summary>
/// A range of native memory with a reference count: it is freed (unmapped) only when the
/// last holder releases it, so a reader that took a reference never touches unmapped pages.
/// </summary>
public abstract class MemoryBlock
{
    private int _refs = 1;

    protected MemoryBlock(nint address, ulong length)
    {
        Address = address;
        Length = length;
    }

    public nint Address { get; }
    public ulong Length { get; }

    /// <summary>The fd behind this memory, if it can be shared with another process.</summary>
    public virtual FdHandle? Fd => null;

    /// <summary>What keeps a truncation of the file behind this memory from crashing the process.</summary>
    public virtual ShrinkProtection Protection => ShrinkProtection.NotAFile;

    /// <summary>True once an access faulted past the end of a truncated file (the memory now reads zeros).</summary>
    public virtual bool Faulted => false;

    /// <summary>Offset of <see cref="Address"/> within <see cref="Fd"/>.</summary>
    public virtual ulong FdOffset => 0;

    /// <summary>
    /// True when only its owner holds the block: nobody else (a display sending from it, a
    /// compositor reading it) can observe a write to it.
    /// </summary>
    public bool IsExclusive => Volatile.Read(ref _refs) == 1;

    public MemoryBlock AddRef()
    {
        // Never revive a freed block: an increment from 0 would let a later Release free it twice.
        int n = Volatile.Read(ref _refs);
        while (true)
        {
            if (n <= 0) throw new ObjectDisposedException(GetType().Name);
            int seen = Interlocked.CompareExchange(ref _refs, n + 1, n);
            if (seen == n) return this;
            n = seen;
        }
    }

    public void Release()
    {
        int n = Interlocked.Decrement(ref _refs);
        if (n == 0) Free();
        else if (n < 0) throw new InvalidOperationException("memory block released too often");
    }

    protected abstract void Free();

    public unsafe Span<byte> AsSpan(ulong offset, int length)
    {
        if (offset > Length || (ulong)length > Length - offset) throw new ArgumentOutOfRangeException(nameof(offset));
        return new Span<byte>((byte*)Address + offset, length);
    }
}

/// <summary>Memory mapped from an fd (guest RAM regions, memfd-backed host buffers).</summary>
public sealed class MappedBlock : MemoryBlock
{
    private readonly MappedMemory _mapping;
    private readonly FdHandle? _fd;
    private readonly ulong _fdOffset;
    private readonly ShrinkProtection _protection;

    private MappedBlock(MappedMemory mapping, FdHandle? fd, ulong fdOffset, ShrinkProtection protection) : base(mapping.Address, mapping.Length)
    {
        _mapping = mapping;
        _fd = fd;
        _fdOffset = fdOffset;
        _protection = protection;
    }

    public override FdHandle? Fd => _fd;
    public override ulong FdOffset => _fdOffset;
    public override ShrinkProtection Protection => _protection;
    public override bool Faulted => _mapping.Faulted;

    /// <summary>
    /// Maps [offset, offset+length) of another process's <paramref name="fd"/> (guest RAM, a
    /// client's buffer); the block takes ownership of the fd. The owner must not be able to crash
    /// us by truncating the file: it is sealed against shrinking first where the kernel allows
    /// (<see cref="ShrinkProtection.Sealed"/>), else the mapping is registered with the SIGBUS
    /// guard (<see cref="ShrinkProtection.Guarded"/>); <see cref="ShrinkProtection.None"/> only
    /// when neither is possible (no guard library). The size is checked after sealing, so a
    /// sealed file is known to cover the range for good.
    /// </summary>
    public static MappedBlock Map(FdHandle fd, ulong offset, ulong length)
    {
        bool sealedShrink = MemFd.TrySealShrink(fd);
        ulong fileSize = MemFd.GetSize(fd);
        if (offset > fileSize || length > fileSize - offset)
            throw new ArgumentException($"range [0x{offset:x}, +0x{length:x}) lies beyond the end of the file (0x{fileSize:x} bytes)");
        var mapping = MappedMemory.Map(fd, offset, length, guard: !sealedShrink);
        var protection = sealedShrink ? ShrinkProtection.Sealed : mapping.Guarded ? ShrinkProtection.Guarded : ShrinkProtection.None;
        return new MappedBlock(mapping, fd, offset, protection);
    }

    /// <summary>
    /// A fresh memfd of <paramref name="length"/> bytes, mapped (zero-filled). Without
    /// <paramref name="keepFd"/> the fd is closed at once (the mapping keeps the memory): a guest
    /// that creates thousands of resources must not use up the process's fds.
    /// </summary>
    public static MappedBlock CreateMemFd(string name, ulong length, bool keepFd = true)
    {
        var fd = MemFd.Create(name, length);
        try
        {
            // Our own memfds travel to the VMM (SHMEM_MAP) and the display: sealed, so nobody can
            // shrink them under our mappings.
            if (!MemFd.TrySealSize(fd)) throw new IOException($"memfd {name}: cannot seal its size");
            var block = new MappedBlock(MappedMemory.Map(fd, 0, length), keepFd ? fd : null, 0, ShrinkProtection.Sealed);
            if (!keepFd) fd.Dispose();
            return block;
        }
        catch
        {
            fd.Dispose();
            throw;
        }
    }

    protected override void Free()
    {
        _mapping.Dispose();
        _fd?.Dispose();
    }
}

/// <summary>What keeps a truncation of the file behind a mapping from raising SIGBUS in this process.</summary>
public enum ShrinkProtection
{
    /// <summary>Not a file mapping (native memory): nothing can be truncated.</summary>
    NotAFile,

    /// <summary>The file has F_SEAL_SHRINK: the kernel refuses to shrink it (no fault is possible).</summary>
    Sealed,

    /// <summary>Unsealable; a SIGBUS in the mapping is turned into zero pages by the SIGBUS guard.</summary>
    Guarded,

    /// <summary>Unsealable and no guard: a truncation by the owner would crash the process.</summary>
    None,
}

/// <summary>Plain zeroed native memory (tests' fake guest RAM, scratch buffers).</summary>
public sealed unsafe class NativeBlock : MemoryBlock
{
    private NativeBlock(nint address, ulong length) : base(address, length) { }

    /// <param name="clear">Zero the memory (off for scratch that is overwritten at once).</param>
    public static NativeBlock Allocate(ulong length, bool clear = true)
    {
        if (length == 0) throw new ArgumentOutOfRangeException(nameof(length));
        void* p = NativeMemory.AlignedAlloc((nuint)length, 4096);
        if (clear) NativeMemory.Clear(p, (nuint)length);
        return new NativeBlock((nint)p, length);
    }

    protected override void Free() => NativeMemory.AlignedFree((void*)Address);
}
