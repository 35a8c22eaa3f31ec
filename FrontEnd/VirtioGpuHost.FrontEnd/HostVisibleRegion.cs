using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using VirtioGpuHost.Interop;
using VirtioGpuHost.VhostUser.Wire;

namespace VirtioGpuHost.FrontEnd;

/// <summary>What a guest access to a host-visible range that nothing is mapped at does.</summary>
public enum UnmappedAccess
{
    /// <summary>The access faults, like an unbacked BAR page (the pages are PROT_NONE; the access API reports <see cref="HostVisibleAccess.Faulted"/> and touches nothing).</summary>
    Fault,

    /// <summary>Reads return 0 and writes are dropped: what QEMU 11.1 measurably does (its empty container region).</summary>
    Zero,
}

/// <summary>The outcome of a guest access through <see cref="HostVisibleRegion"/>.</summary>
public enum HostVisibleAccess
{
    /// <summary>Every byte lay in a mapping and was read or written.</summary>
    Mapped,

    /// <summary>Part of the range is not mapped (Zero mode): those bytes read as 0, writes to them were dropped; mapped parts were accessed.</summary>
    Zero,

    /// <summary>A write hit a read-only mapping: those bytes were dropped (other parts were written).</summary>
    ReadOnly,

    /// <summary>Part of the range is not mapped (Fault mode), or its backing file shrank: nothing was accessed (a guest would take a fault).</summary>
    Faulted,

    /// <summary>The range is not inside the region (or the region is gone).</summary>
    OutOfRange,
}

/// <summary>One mapping in the host-visible region.</summary>
public readonly record struct HostVisibleMapping(ulong Offset, ulong Length, ulong FdOffset, bool Writable)
{
    public ulong End => Offset + Length;
    public override string ToString() => $"0x{Offset:x} +0x{Length:x} ({(Writable ? "rw" : "ro")}, fd offset 0x{FdOffset:x})";
}

/// <summary>
/// The VMM's host-visible shared memory region (virtio-gpu shmid 1) as the reference front-end
/// keeps it: address space reserved once (no memory committed), into which the back-end's
/// SHMEM_MAP requests map its fds with MAP_FIXED, and from which SHMEM_UNMAP takes them out
/// again (back to the unmapped state of <see cref="UnmappedAccess"/>).
/// </summary>
/// <remarks>
/// Every request is validated before anything is mapped (shmid, fd, length, page alignment,
/// range inside the region without overflow, no overlap, file large enough); a refusal names
/// the field, closes the fd, and leaves the other mappings alone. Guest code running in this
/// process reaches the region only through <see cref="Read"/>, <see cref="Write"/> and
/// <see cref="TryGetSpan"/>, which look at the mapping table first (and at the backing file's
/// size, so that a back-end shrinking its memfd cannot cause SIGBUS): an access can never fault.
/// Thread-safe: the back-end channel thread maps while guest code reads and writes.
/// </remarks>
public sealed class HostVisibleRegion : IDisposable
{
    /// <summary>VIRTIO_GPU_SHM_ID_HOST_VISIBLE.</summary>
    public const byte ShmId = 1;

    /// <summary>The largest region the front-end accepts from GET_SHMEM_CONFIG.</summary>
    public const ulong MaxSize = 64UL << 30;

    private readonly object _lock = new();
    private readonly SortedList<ulong, Entry> _mappings = new(); // by offset
    private readonly AddressReservation _reservation;
    private readonly ILogger _log;
    private readonly UnmappedPages _unmappedPages;

    public HostVisibleRegion(ulong size, UnmappedAccess unmapped, ILogger? logger = null)
    {
        if (size == 0 || size % AddressReservation.PageSize != 0 || size > MaxSize)
            throw new ArgumentOutOfRangeException(nameof(size), $"region size 0x{size:x} must be a non-zero page multiple up to 0x{MaxSize:x}");
        Size = size;
        UnmappedAccess = unmapped;
        _log = logger ?? NullLogger.Instance;
        // Fault: PROT_NONE everywhere nothing is mapped. Zero: read-only zero pages (QEMU's
        // empty container reads 0); never-mapped and unmapped ranges behave the same.
        _unmappedPages = unmapped == UnmappedAccess.Zero ? UnmappedPages.ReadOnlyZero : UnmappedPages.Inaccessible;
        _reservation = AddressReservation.Reserve(size, _unmappedPages);
    }

    public ulong Size { get; }
    public UnmappedAccess UnmappedAccess { get; }

    /// <summary>Where the region lies in this process (what a VMM would map into the guest's BAR).</summary>
    public nint Address => _reservation.Address;

    /// <summary>The current mappings, by offset.</summary>
    public IReadOnlyList<HostVisibleMapping> Mappings
    {
        get { lock (_lock) return _mappings.Values.Select(e => e.Mapping).ToArray(); }
    }

    // Counters.
    public long MapsDone => Interlocked.Read(ref _mapsDone);
    public long MapsRefused => Interlocked.Read(ref _mapsRefused);
    public long UnmapsDone => Interlocked.Read(ref _unmapsDone);
    public long UnmapsRefused => Interlocked.Read(ref _unmapsRefused);
    /// <summary>Guest accesses that hit an unmapped range (either mode) or a shrunk file.</summary>
    public long UnmappedAccesses => Interlocked.Read(ref _unmappedAccesses);
    /// <summary>Guest writes (or parts of them) dropped: unmapped in Zero mode, or read-only mappings.</summary>
    public long DroppedWrites => Interlocked.Read(ref _droppedWrites);

    private long _mapsDone, _mapsRefused, _unmapsDone, _unmapsRefused, _unmappedAccesses, _droppedWrites;

    // ---- the back-end's requests ----

    /// <summary>
    /// SHMEM_MAP: validates <paramref name="request"/> and maps <paramref name="fd"/> (which this
    /// call owns: kept while mapped, closed on refusal). On refusal <paramref name="error"/> names the field.
    /// </summary>
    public bool TryMap(ShmemMapRequest request, FdHandle fd, out string error)
    {
        bool kept = false;
        try
        {
            error = ValidateMap(request, fd) ?? "";
            if (error.Length == 0)
            {
                lock (_lock)
                {
                    error = CheckRangeAndOverlap(request.ShmOffset, request.Length) ?? "";
                    if (error.Length == 0)
                    {
                        bool writable = (request.Flags & ShmemMapRequest.FlagReadWrite) != 0;
                        try
                        {
                            _reservation.MapFile(request.ShmOffset, request.Length, fd, request.FdOffset, writable);
                            var mapping = new HostVisibleMapping(request.ShmOffset, request.Length, request.FdOffset, writable);
                            _mappings.Add(request.ShmOffset, new Entry(mapping, fd));
                            kept = true;
                        }
                        catch (Exception e) when (e is IOException or ArgumentException or ObjectDisposedException)
                        {
                            error = $"fd: mmap failed: {e.Message}";
                        }
                    }
                }
            }
            if (kept)
            {
                Interlocked.Increment(ref _mapsDone);
                return true;
            }
            Interlocked.Increment(ref _mapsRefused);
            _log.LogWarning("host-visible region: refused SHMEM_MAP {Request}: {Error}", Describe(request), error);
            return false;
        }
        finally
        {
            if (!kept) fd.Dispose();
        }
    }

    /// <summary>SHMEM_UNMAP: must name exactly one earlier mapping (offset and length).</summary>
    public bool TryUnmap(ShmemMapRequest request, out string error, out HostVisibleMapping removed)
    {
        removed = default;
        error = request.ShmId != ShmId ? $"shmid {request.ShmId}: no such region (only {ShmId})"
              : request.Length == 0 ? "len is 0"
              : "";
        if (error.Length == 0)
        {
            lock (_lock)
            {
                if (!_mappings.TryGetValue(request.ShmOffset, out var e) || e.Mapping.Length != request.Length)
                {
                    error = $"shm_offset 0x{request.ShmOffset:x} len 0x{request.Length:x}: no mapping with exactly this offset and length";
                }
                else
                {
                    try
                    {
                        _reservation.Reset(request.ShmOffset, request.Length, _unmappedPages);
                        _mappings.Remove(request.ShmOffset);
                        e.Fd.Dispose();
                        removed = e.Mapping;
                    }
                    catch (Exception ex) when (ex is IOException or ObjectDisposedException)
                    {
                        error = $"cannot unmap: {ex.Message}";
                    }
                }
            }
        }
        if (error.Length == 0)
        {
            Interlocked.Increment(ref _unmapsDone);
            return true;
        }
        Interlocked.Increment(ref _unmapsRefused);
        _log.LogWarning("host-visible region: refused SHMEM_UNMAP {Request}: {Error}", Describe(request), error);
        return false;
    }

    /// <summary>Drops every mapping (device reset: front-ends drop all mappings). Returns what was dropped.</summary>
    public IReadOnlyList<HostVisibleMapping> UnmapAll()
    {
        lock (_lock)
        {
            var dropped = new List<HostVisibleMapping>();
            foreach (var e in _mappings.Values.ToArray())
            {
                try { _reservation.Reset(e.Mapping.Offset, e.Mapping.Length, _unmappedPages); }
                catch (Exception ex) when (ex is IOException or ObjectDisposedException)
                {
                    _log.LogError("host-visible region: cannot unmap {Mapping}: {Error}", e.Mapping, ex.Message);
                    continue;
                }
                _mappings.Remove(e.Mapping.Offset);
                e.Fd.Dispose();
                dropped.Add(e.Mapping);
            }
            return dropped;
        }
    }

    /// <summary>Runs <paramref name="use"/> with the fd of the mapping at <paramref name="offset"/> (under the table's lock); false when none.</summary>
    internal bool WithMappingFd(ulong offset, Action<HostVisibleMapping, FdHandle> use)
    {
        lock (_lock)
        {
            if (!_mappings.TryGetValue(offset, out var e)) return false;
            use(e.Mapping, e.Fd);
            return true;
        }
    }

    private static string? ValidateMap(ShmemMapRequest r, FdHandle fd)
    {
        ulong page = AddressReservation.PageSize;
        if (r.ShmId != ShmId) return $"shmid {r.ShmId}: no such region (only {ShmId})";
        if (r.Length == 0) return "len is 0";
        if ((r.Flags & ~ShmemMapRequest.FlagReadWrite) != 0) return $"flags 0x{r.Flags:x} has bits other than bit 0 (read-write)";
        if (r.ShmOffset % page != 0) return $"shm_offset 0x{r.ShmOffset:x} is not page aligned";
        if (r.Length % page != 0) return $"len 0x{r.Length:x} is not a page multiple";
        if (r.FdOffset % page != 0) return $"fd_offset 0x{r.FdOffset:x} is not page aligned";
        if (r.FdOffset > long.MaxValue || r.Length > long.MaxValue - r.FdOffset) return $"fd_offset 0x{r.FdOffset:x} + len 0x{r.Length:x} overflows";
        ulong fileSize;
        try { fileSize = MemFd.GetSize(fd); }
        catch (IOException e) { return $"fd: cannot fstat it: {e.Message}"; }
        if (fileSize < r.FdOffset + r.Length)
            return $"fd: the file is 0x{fileSize:x} bytes, shorter than fd_offset 0x{r.FdOffset:x} + len 0x{r.Length:x}";
        return null;
    }

    private string? CheckRangeAndOverlap(ulong offset, ulong length)
    {
        if (offset > Size || length > Size - offset)
            return $"shm_offset 0x{offset:x} + len 0x{length:x} lies outside the 0x{Size:x}-byte region";
        ulong end = offset + length;
        // The mapping starting at or before offset, and the first one after it.
        int i = LastAtOrBefore(offset);
        if (i >= 0 && _mappings.Values[i].Mapping.End > offset)
            return $"shm_offset 0x{offset:x} + len 0x{length:x} overlaps the mapping {_mappings.Values[i].Mapping}";
        if (i + 1 < _mappings.Count && _mappings.Keys[i + 1] < end)
            return $"shm_offset 0x{offset:x} + len 0x{length:x} overlaps the mapping {_mappings.Values[i + 1].Mapping}";
        return null;
    }

    /// <summary>Index of the last mapping with Offset ≤ <paramref name="offset"/>, or -1.</summary>
    private int LastAtOrBefore(ulong offset)
    {
        var keys = _mappings.Keys;
        int lo = 0, hi = keys.Count - 1, found = -1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >>> 1;
            if (keys[mid] <= offset) { found = mid; lo = mid + 1; }
            else hi = mid - 1;
        }
        return found;
    }

    private static string Describe(ShmemMapRequest r) =>
        $"(shmid {r.ShmId}, fd_offset 0x{r.FdOffset:x}, shm_offset 0x{r.ShmOffset:x}, len 0x{r.Length:x}, flags 0x{r.Flags:x})";

    // ---- guest access ----

    /// <summary>Reads <paramref name="destination"/>.Length bytes at <paramref name="offset"/> as the guest would.</summary>
    public HostVisibleAccess Read(ulong offset, Span<byte> destination) => Access(offset, destination, default, write: false);

    /// <summary>Writes <paramref name="source"/> at <paramref name="offset"/> as the guest would.</summary>
    public HostVisibleAccess Write(ulong offset, ReadOnlySpan<byte> source) => Access(offset, default, source, write: true);

    /// <summary>
    /// The bytes at [offset, +length) when they lie in one mapping (and the backing file still
    /// covers them): direct access to the shared pages. The span is valid until the back-end
    /// unmaps the range; code that can race with an unmap must use <see cref="Read"/>/<see cref="Write"/>.
    /// A read-only mapping comes back as <see cref="HostVisibleAccess.ReadOnly"/> (the span may only be read).
    /// </summary>
    public HostVisibleAccess TryGetSpan(ulong offset, int length, out Span<byte> span)
    {
        span = default;
        if (length <= 0 || offset > Size || (ulong)length > Size - offset) return HostVisibleAccess.OutOfRange;
        lock (_lock)
        {
            if (_reservation.IsDisposed) return HostVisibleAccess.OutOfRange;
            int i = LastAtOrBefore(offset);
            if (i < 0 || _mappings.Values[i].Mapping.End < offset + (ulong)length || !_mappings.Values[i].Backed())
            {
                Interlocked.Increment(ref _unmappedAccesses);
                return UnmappedAccess == UnmappedAccess.Zero ? HostVisibleAccess.Zero : HostVisibleAccess.Faulted;
            }
            span = _reservation.AsSpan(offset, length);
            return _mappings.Values[i].Mapping.Writable ? HostVisibleAccess.Mapped : HostVisibleAccess.ReadOnly;
        }
    }

    private HostVisibleAccess Access(ulong offset, Span<byte> readInto, ReadOnlySpan<byte> writeFrom, bool write)
    {
        int length = write ? writeFrom.Length : readInto.Length;
        if (offset > Size || (ulong)length > Size - offset) return HostVisibleAccess.OutOfRange;
        if (length == 0) return HostVisibleAccess.Mapped;
        lock (_lock)
        {
            if (_reservation.IsDisposed) return HostVisibleAccess.OutOfRange;
            ulong end = offset + (ulong)length;
            // First pass: is every byte backed? (Fault mode touches nothing unless it is.)
            bool unmapped = false;
            for (ulong at = offset; at < end;)
            {
                var e = MappingAt(at, out ulong next);
                if (e is null || !e.Backed()) unmapped = true;
                at = Math.Min(next, end);
            }
            if (unmapped)
            {
                Interlocked.Increment(ref _unmappedAccesses);
                if (UnmappedAccess == UnmappedAccess.Fault) return HostVisibleAccess.Faulted;
            }
            var result = unmapped ? HostVisibleAccess.Zero : HostVisibleAccess.Mapped;
            for (ulong at = offset; at < end;)
            {
                var e = MappingAt(at, out ulong next);
                ulong pieceEnd = Math.Min(next, end);
                int from = (int)(at - offset), n = (int)(pieceEnd - at);
                if (e is null || !e.Backed())
                {
                    if (write) Interlocked.Increment(ref _droppedWrites);
                    else readInto.Slice(from, n).Clear();
                }
                else if (write && !e.Mapping.Writable)
                {
                    Interlocked.Increment(ref _droppedWrites);
                    if (result == HostVisibleAccess.Mapped) result = HostVisibleAccess.ReadOnly;
                }
                else if (write) writeFrom.Slice(from, n).CopyTo(_reservation.AsSpan(at, n));
                else _reservation.AsSpan(at, n).CopyTo(readInto.Slice(from, n));
                at = pieceEnd;
            }
            return result;
        }
    }

    /// <summary>The mapping containing <paramref name="at"/> (null if none); <paramref name="next"/> = where that state ends.</summary>
    private Entry? MappingAt(ulong at, out ulong next)
    {
        int i = LastAtOrBefore(at);
        if (i >= 0 && _mappings.Values[i].Mapping.End > at)
        {
            next = _mappings.Values[i].Mapping.End;
            return _mappings.Values[i];
        }
        next = i + 1 < _mappings.Count ? _mappings.Keys[i + 1] : Size;
        return null;
    }

    public void Dispose()
    {
        lock (_lock)
        {
            foreach (var e in _mappings.Values) e.Fd.Dispose();
            _mappings.Clear();
            _reservation.Dispose();
        }
    }

    private sealed class Entry(HostVisibleMapping mapping, FdHandle fd)
    {
        public HostVisibleMapping Mapping { get; } = mapping;
        public FdHandle Fd { get; } = fd;

        /// <summary>The file still covers the mapping (a shrunk file would make an access SIGBUS).</summary>
        public bool Backed()
        {
            try { return MemFd.GetSize(Fd) >= Mapping.FdOffset + Mapping.Length; }
            catch (IOException) { return false; }
        }
    }
}
