using VirtioGpuHost.GuestMemory;

namespace VirtioGpuHost.Device.HostVisible;

/// <summary>
/// The VMM's host-visible shared memory region (virtio-gpu shmid 1, VIRTIO_GPU_SHM_ID_HOST_VISIBLE)
/// as the device sees it. MAP_BLOB asks the VMM to map a blob's memory at an offset of the
/// region (vhost-user: BACKEND_SHMEM_MAP on the back-end channel), UNMAP_BLOB to unmap it
/// (BACKEND_SHMEM_UNMAP). The device validates ranges, alignment and overlaps before asking;
/// the VMM may still refuse.
/// </summary>
public interface IHostVisibleRegion
{
    /// <summary>Size of the region in bytes (a power of two, reported by GET_SHMEM_CONFIG).</summary>
    ulong Size { get; }

    /// <summary>
    /// Maps <paramref name="length"/> bytes of <paramref name="memory"/> (which must have an
    /// <see cref="MemoryBlock.Fd"/>), starting <paramref name="offset"/> bytes into the block, at
    /// <paramref name="shmOffset"/> of the region. Completes on the caller's event loop with
    /// true once the VMM mapped it, false when it refused, timed out or the channel is gone.
    /// </summary>
    Task<bool> MapAsync(MemoryBlock memory, ulong offset, ulong shmOffset, ulong length, bool writable);

    /// <summary>Unmaps exactly one earlier mapping (same offset and length).</summary>
    Task<bool> UnmapAsync(ulong shmOffset, ulong length);
}
