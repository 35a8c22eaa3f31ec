namespace VirtioGpuHost.Device.Wire;

/// <summary>virtio-gpu feature bits (virtio 1.x §5.7.3).</summary>
public static class VirtioGpuFeatures
{
    public const ulong Virgl = 1UL << 0;
    public const ulong Edid = 1UL << 1;
    public const ulong ResourceUuid = 1UL << 2;
    public const ulong ResourceBlob = 1UL << 3;
    public const ulong ContextInit = 1UL << 4;
    public const ulong BlobAlignment = 1UL << 5;
}

/// <summary>Limits of the virtio-gpu device model.</summary>
public static class VirtioGpuLimits
{
    /// <summary>VIRTIO_GPU_MAX_SCANOUTS.</summary>
    public const int MaxScanouts = 16;
    /// <summary>Largest ATTACH_BACKING scatter list (QEMU's cap).</summary>
    public const int MaxBackingEntries = 16384;
    /// <summary>Cursor images are 64x64 on the display socket.</summary>
    public const int CursorSize = 64;
    /// <summary>Largest width or height of a 2D resource.</summary>
    public const uint MaxResourceDimension = 16384;
    /// <summary>Fence rings per context (ring_idx 0..63 with FLAG_INFO_RING_IDX).</summary>
    public const int MaxRings = 64;
}
