using Tmds.Linux;
using static Tmds.Linux.LibC;

namespace VirtioGpuHost.Interop;

/// <summary>
/// An mmap'ed range of a file (guest RAM, a memfd). Unmapped once, on Dispose; the owner
/// (a refcounted memory block above) decides when no reader is left.
/// </summary>
public sealed unsafe class MappedMemory : IDisposable
{
    private nint _address;

    private MappedMemory(nint address, ulong length, nint mapBase, ulong mapLength)
    {
        _address = address;
        Length = length;
        _mapBase = mapBase;
        _mapLength = mapLength;
    }

    private SigbusGuard.Registration? _guard;

    /// <summary>True when a SIGBUS in this mapping (the file was truncated under us) is turned into zero pages.</summary>
    public bool Guarded => _guard is not null;

    /// <summary>True once this mapping faulted past the end of its file: its pages are now anonymous zeros.</summary>
    public bool Faulted => _guard is { } g && g.Faults > 0;

    private readonly nint _mapBase;
    private readonly ulong _mapLength;

    /// <summary>Start of the requested range (not necessarily page aligned).</summary>
    public nint Address => _address != 0 ? _address : throw new ObjectDisposedException(nameof(MappedMemory));

    public ulong Length { get; }

    public static ulong PageSize { get; } = (ulong)Environment.SystemPageSize;

    /// <summary>
    /// Maps [offset, offset+length) of <paramref name="fd"/> MAP_SHARED. An unaligned offset
    /// is handled by mapping from the page below (old libvhost-user front-ends send those).
    /// The file must be at least offset+length bytes, so that no access can hit SIGBUS at
    /// mapping time. With <paramref name="guard"/>, a file shrunk later by its owner cannot crash
    /// us either: the mapping is registered with <see cref="SigbusGuard"/> (when available; see
    /// <see cref="Guarded"/>), see docs/reliability.md.
    /// </summary>
    public static MappedMemory Map(FdHandle fd, ulong offset, ulong length, bool writable = true, bool guard = false)
    {
        if (length == 0) throw new ArgumentException("cannot map 0 bytes", nameof(length));
        ulong pageOffset = offset % PageSize;
        ulong mapOffset = offset - pageOffset;
        ulong mapLength = checked(length + pageOffset);
        bool added = false;
        try
        {
            fd.DangerousAddRef(ref added);
            void* p = mmap(null, (size_t)mapLength, PROT_READ | (writable ? PROT_WRITE : 0), MAP_SHARED, fd.Number, (off_t)(long)mapOffset);
            if (p == (void*)-1) throw Errno.Fail("mmap");
            var mapping = new MappedMemory((nint)p + (nint)pageOffset, length, (nint)p, mapLength);
            if (guard) mapping._guard = SigbusGuard.TryRegister((nint)p, mapLength);
            return mapping;
        }
        finally { if (added) fd.DangerousRelease(); }
    }

    /// <summary>Private anonymous memory (used where no fd is needed).</summary>
    public static MappedMemory Anonymous(ulong length)
    {
        void* p = mmap(null, (size_t)length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == (void*)-1) throw Errno.Fail("mmap(anonymous)");
        return new MappedMemory((nint)p, length, (nint)p, length);
    }

    public Span<byte> AsSpan(ulong offset, int length)
    {
        if (offset > Length || (ulong)length > Length - offset) throw new ArgumentOutOfRangeException(nameof(offset));
        return new Span<byte>((byte*)Address + offset, length);
    }

    public void Dispose()
    {
        var p = Interlocked.Exchange(ref _address, 0);
        if (p == 0) return;
        _guard?.Dispose(); // first: the handler must never remap a range that is unmapped (and maybe reused)
        _ = munmap((void*)_mapBase, (size_t)_mapLength);
    }
}
