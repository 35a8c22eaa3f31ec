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

    private MappedBlock(MappedMemory mapping, FdHandle? fd, ulong fdOffset) : base(mapping.Address, mapping.Length)
    {
        _mapping = mapping;
        _fd = fd;
        _fdOffset = fdOffset;
    }

    public override FdHandle? Fd => _fd;
    public override ulong FdOffset => _fdOffset;

    /// <summary>Maps [offset, offset+length) of <paramref name="fd"/>; the block takes ownership of the fd.</summary>
    public static MappedBlock Map(FdHandle fd, ulong offset, ulong length)
    {
        ulong fileSize = MemFd.GetSize(fd);
        if (offset > fileSize || length > fileSize - offset)
            throw new ArgumentException($"range [0x{offset:x}, +0x{length:x}) lies beyond the end of the file (0x{fileSize:x} bytes)");
        return new MappedBlock(MappedMemory.Map(fd, offset, length), fd, offset);
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
            var block = new MappedBlock(MappedMemory.Map(fd, 0, length), keepFd ? fd : null, 0);
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
