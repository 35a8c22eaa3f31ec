using VirtioGpuHost.Device.Blobs;

namespace VirtioGpuHost.Device.HostVisible;

/// <summary>
/// A blob's range in the host-visible region. Recorded before the VMM is asked (a reservation:
/// a second MAP_BLOB cannot overlap it while the first is in flight); <see cref="Mapped"/> once the
/// VMM confirmed. A record the device dropped (<see cref="Live"/> false) while the VMM was still
/// mapping is unmapped as soon as the map completes, if <see cref="UnmapWhenDone"/>.
/// </summary>
internal sealed class BlobMapping(BlobResource blob, IHostVisibleRegion region, ulong offset, ulong length)
{
    public BlobResource Blob { get; } = blob;
    public IHostVisibleRegion Region { get; } = region;
    public ulong Offset { get; } = offset;
    public ulong Length { get; } = length;
    public bool Mapped { get; set; }
    public bool Live { get; set; } = true;
    public bool UnmapWhenDone { get; set; }

    public bool Overlaps(ulong offset, ulong length) => offset < Offset + Length && Offset < offset + length;

    public override string ToString() => $"[0x{Offset:x}, +0x{Length:x})";
}
