namespace VirtioGpuHost.Device.Wire;

/// <summary>
/// virtio_gpu_formats (virtio 1.x §5.7.6.8): names give the byte order in memory, so
/// B8G8R8X8 is stored B, G, R, X (a little-endian 0xXXRRGGBB u32, Linux XRGB8888).
/// </summary>
public enum VirtioGpuFormat : uint
{
    B8G8R8A8Unorm = 1,
    B8G8R8X8Unorm = 2,
    A8R8G8B8Unorm = 3,
    X8R8G8B8Unorm = 4,
    R8G8B8A8Unorm = 67,
    X8B8G8R8Unorm = 68,
    A8B8G8R8Unorm = 121,
    R8G8B8X8Unorm = 134,
}
