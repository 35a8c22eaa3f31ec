using Tmds.Linux;
using static Tmds.Linux.LibC;

namespace VirtioGpuHost.Interop;

/// <summary>What an unmapped range of an <see cref="AddressReservation"/> holds.</summary>
public enum UnmappedPages
{
    /// <summary>PROT_NONE: any access faults (like an unbacked BAR page).</summary>
    Inaccessible,

    /// <summary>Read-only anonymous zero pages: reads return 0 (QEMU 11.1's empty container); writes fault.</summary>
    ReadOnlyZero,
}

/// <summary>
/// A range of address space reserved with mmap(PROT_NONE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_NORESERVE)
/// (no memory is committed), into which files are mapped with MAP_FIXED and later replaced by
/// inaccessible or zero pages again. MAP_FIXED replaces pages atomically, so the reservation never
/// has a hole another mmap could take. A VMM's host-visible shared memory window.
/// </summary>
/// <remarks>
/// Every offset and length must be page aligned and inside the reservation (checked, with
/// overflow). Which pages are backed is the caller's bookkeeping: <see cref="AsSpan"/> gives
/// raw access and faults where nothing readable is mapped.
/// </remarks>
public sealed unsafe class AddressReservation : IDisposable
{
    private nint _address;

    private AddressReservation(nint address, ulong length)
    {
        _address = address;
        Length = length;
    }

    public static ulong PageSize => MappedMemory.PageSize;

    /// <summary>Start of the reservation (page aligned).</summary>
    public nint Address => _address != 0 ? _address : throw new ObjectDisposedException(nameof(AddressReservation));

    public ulong Length { get; }

    public bool IsDisposed => _address == 0;

    /// <summary>Reserves <paramref name="length"/> bytes (a page multiple) of inaccessible address space.</summary>
    public static AddressReservation Reserve(ulong length, UnmappedPages initial = UnmappedPages.Inaccessible)
    {
        if (length == 0 || length % PageSize != 0) throw new ArgumentException($"length 0x{length:x} is not a non-zero page multiple", nameof(length));
        if (length > (ulong)long.MaxValue) throw new ArgumentOutOfRangeException(nameof(length));
        void* p = mmap(null, (size_t)length, ProtFor(initial), MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == (void*)-1) throw Errno.Fail("mmap(reserve)");
        return new AddressReservation((nint)p, length);
    }

    /// <summary>
    /// Maps [<paramref name="fdOffset"/>, +<paramref name="length"/>) of <paramref name="fd"/>
    /// MAP_SHARED|MAP_FIXED at <paramref name="offset"/> of the reservation, read-only or read-write.
    /// The caller checks that the file is large enough (an access past its end is SIGBUS).
    /// </summary>
    public void MapFile(ulong offset, ulong length, FdHandle fd, ulong fdOffset, bool writable)
    {
        CheckRange(offset, length);
        if (fdOffset % PageSize != 0 || fdOffset > (ulong)long.MaxValue) throw new ArgumentException($"fd offset 0x{fdOffset:x} is not page aligned", nameof(fdOffset));
        bool added = false;
        try
        {
            fd.DangerousAddRef(ref added);
            void* want = (void*)(Address + (nint)offset);
            void* p = mmap(want, (size_t)length, PROT_READ | (writable ? PROT_WRITE : 0), MAP_SHARED | MAP_FIXED, fd.Number, (off_t)(long)fdOffset);
            if (p == (void*)-1)
            {
                var e = Errno.Fail("mmap(MAP_FIXED, shared)");
                // A failed MAP_FIXED may have unmapped the old pages: put the reservation back.
                Reset(offset, length, UnmappedPages.Inaccessible);
                throw e;
            }
            if (p != want)
            {
                // Cannot happen with MAP_FIXED; never leave a stray mapping behind.
                _ = munmap(p, (size_t)length);
                Reset(offset, length, UnmappedPages.Inaccessible);
                throw new IOException("mmap(MAP_FIXED) returned another address");
            }
        }
        finally { if (added) fd.DangerousRelease(); }
    }

    /// <summary>Replaces [offset, +length) with fresh anonymous pages (inaccessible or read-only zeros); any file mapping there is dropped.</summary>
    public void Reset(ulong offset, ulong length, UnmappedPages pages)
    {
        CheckRange(offset, length);
        void* want = (void*)(Address + (nint)offset);
        void* p = mmap(want, (size_t)length, ProtFor(pages), MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
        if (p == (void*)-1) throw Errno.Fail("mmap(MAP_FIXED, anonymous)");
    }

    /// <summary>Raw access (no protection check: the caller knows the range is backed).</summary>
    public Span<byte> AsSpan(ulong offset, int length)
    {
        if (length < 0 || offset > Length || (ulong)length > Length - offset) throw new ArgumentOutOfRangeException(nameof(offset));
        return new Span<byte>((byte*)Address + offset, length);
    }

    private void CheckRange(ulong offset, ulong length)
    {
        if (length == 0) throw new ArgumentException("length is 0", nameof(length));
        if (offset % PageSize != 0 || length % PageSize != 0)
            throw new ArgumentException($"range 0x{offset:x}+0x{length:x} is not page aligned");
        if (offset > Length || length > Length - offset)
            throw new ArgumentOutOfRangeException(nameof(offset), $"range 0x{offset:x}+0x{length:x} lies outside the 0x{Length:x}-byte reservation");
        _ = Address; // throws once disposed
    }

    private static int ProtFor(UnmappedPages pages) => pages == UnmappedPages.ReadOnlyZero ? PROT_READ : PROT_NONE;

    /// <summary>Unmaps the whole reservation (and every file mapped into it).</summary>
    public void Dispose()
    {
        var p = Interlocked.Exchange(ref _address, 0);
        if (p != 0) _ = munmap((void*)p, (size_t)Length);
    }
}
