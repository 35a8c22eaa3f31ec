using VirtioGpuHost.Device.HostVisible;
using VirtioGpuHost.Device.Wire;
using VirtioGpuHost.GuestMemory;

namespace VirtioGpuHost.Device.Blobs;

/// <summary>Where a blob's bytes live (RESOURCE_CREATE_BLOB's blob_mem; HOST3D_GUEST is refused).</summary>
public enum BlobMemory : uint
{
    /// <summary>Guest pages named by a scatter list fixed at creation.</summary>
    Guest = VirtioGpuResourceCreateBlob.MemGuest,
    /// <summary>Host memory (a memfd) that the guest reaches through MAP_BLOB.</summary>
    Host3D = VirtioGpuResourceCreateBlob.MemHost3D,
}

/// <summary>
/// A blob resource: bytes with no format or size of their own (SET_SCANOUT_BLOB gives them a
/// layout), used in place instead of copied. GUEST blobs keep guest addresses, never host
/// pointers, and resolve them in the current memory snapshot (like <see cref="Resource2D"/>);
/// HOST3D blobs own a zero-filled memfd (mappable into the guest through the host-visible region).
/// </summary>
public sealed class BlobResource : GpuResource
{
    private (IGuestMemory Memory, BlobPlacement? Placement)? _located;
    private (IGuestMemory Memory, BackingView? View)? _resolved;
    private bool _disposed;

    private BlobResource(uint id, BlobMemory kind, uint flags, ulong blobId, ulong size, uint ctxId) : base(id)
    {
        Kind = kind;
        Flags = flags;
        BlobId = blobId;
        Size = size;
        CreatedInContext = ctxId;
    }

    public static BlobResource Guest(uint id, uint flags, ulong size, VirtioGpuMemEntry[] entries) =>
        new(id, BlobMemory.Guest, flags, 0, size, 0) { Entries = entries };

    public static BlobResource Host(uint id, uint flags, ulong blobId, ulong size, uint ctxId, MemoryBlock memory) =>
        new(id, BlobMemory.Host3D, flags, blobId, size, ctxId) { HostMemory = memory };

    public BlobMemory Kind { get; }
    public uint Flags { get; }
    public ulong BlobId { get; }

    /// <summary>Size the guest asked for (HOST3D memory is this rounded up to pages).</summary>
    public ulong Size { get; }

    /// <summary>The context named in hdr.ctx_id at creation (HOST3D), 0 for GUEST blobs.</summary>
    public uint CreatedInContext { get; }

    /// <summary>GUEST: the scatter list (fixed for the blob's life).</summary>
    public VirtioGpuMemEntry[]? Entries { get; private init; }

    /// <summary>HOST3D: the memory (with an fd, so MAP_BLOB can hand it to the VMM).</summary>
    public MemoryBlock? HostMemory { get; private init; }

    public bool Mappable => (Flags & VirtioGpuResourceCreateBlob.FlagUseMappable) != 0;

    /// <summary>The blob's range in the host-visible region while mapped (or being mapped).</summary>
    internal BlobMapping? Mapping { get; set; }

    /// <summary>Where the blob is mapped in the host-visible region (confirmed by the VMM), or null.</summary>
    public (ulong Offset, ulong Length)? MappedRange => Mapping is { Mapped: true } m ? (m.Offset, m.Length) : null;

    /// <summary>
    /// Where bytes [0, Size) lie in one piece: the HOST3D memory, or the one guest RAM region that
    /// holds a GUEST blob whose entries follow each other in guest-physical space. Null when the
    /// blob is scattered (or no longer in guest RAM). Cached per memory snapshot.
    /// </summary>
    internal BlobPlacement? Locate(IGuestMemory memory)
    {
        if (HostMemory is not null) return new BlobPlacement(HostMemory, 0, null);
        if (_located is { } l && ReferenceEquals(l.Memory, memory)) return l.Placement;
        var placement = LocateGuest(memory);
        _located = (memory, placement);
        return placement;
    }

    private BlobPlacement? LocateGuest(IGuestMemory memory)
    {
        if (memory is not GuestMemoryMap map || Entries is null) return null;
        ulong start = 0, next = 0, covered = 0;
        foreach (var e in Entries)
        {
            if (e.Length == 0) continue;
            if (covered == 0) start = next = e.Address;
            else if (e.Address != next) return null; // a gap: scattered
            next = e.Address + e.Length;
            covered += e.Length;
            if (covered >= Size) break;
        }
        if (covered < Size) return null;
        var region = map.FindRegion(start);
        if (region is null) return null;
        ulong offset = start - region.GuestStart.Value;
        if (Size > region.Size - offset) return null;
        return new BlobPlacement(region.Block, offset, region);
    }

    /// <summary>GUEST: the scatter list resolved in <paramref name="memory"/> (null if part of it is not guest RAM), cached per snapshot.</summary>
    internal BackingView? ResolveScattered(IGuestMemory memory)
    {
        if (Entries is null) return null;
        if (_resolved is { } r && ReferenceEquals(r.Memory, memory)) return r.View;
        var view = BackingView.Resolve(memory, Entries);
        _resolved = (memory, view);
        return view;
    }

    public override void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        HostMemory?.Release();
        _located = null;
        _resolved = null;
    }

    public override string ToString() => $"blob {Id} ({Kind}, {Size} bytes)";
}

/// <summary>A blob's bytes in one piece: <see cref="Block"/> from <see cref="Offset"/> (Region: the guest region, for GUEST blobs).</summary>
internal readonly record struct BlobPlacement(MemoryBlock Block, ulong Offset, GuestRegion? Region);
