using System.Buffers.Binary;
using VirtioGpuHost.Device.Contexts;
using VirtioGpuHost.Device.Wire;

namespace VirtioGpuHost.Device.Capsets;

/// <summary>
/// VIRTIO_GPU_CAPSET_CROSS_DOMAIN (5): struct CrossDomainCapabilities (16 bytes: version,
/// supported_channels, supports_dmabuf, supports_external_gpu_memory), as rutabaga answers it:
/// capset_max_version 0, capset_max_size 16, version 1 (commands up to WRITE), channels =
/// bit 1 &lt;&lt; type (Wayland = type 1, so 0x2). No dma-buf, no external GPU memory: blobs are memfds.
/// The context implementation is plugged in by whoever implements the cross-domain protocol.
/// </summary>
public sealed class CrossDomainCapset(Func<IGpuContextHost, IGpuContext?>? contextFactory = null) : ICapset
{
    public const uint ProtocolVersion = 1;
    public const uint ChannelWayland = 1;
    public const int Size = 16;

    public uint Id => VirtioGpuCapsetId.CrossDomain;
    public uint MaxVersion => 0;
    public uint MaxSize => Size;

    public byte[] Data(uint version)
    {
        var b = new byte[Size];
        BinaryPrimitives.WriteUInt32LittleEndian(b, ProtocolVersion);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(4), 1u << (int)ChannelWayland);
        // supports_dmabuf @8 and supports_external_gpu_memory @12 stay 0.
        return b;
    }

    public IGpuContext? CreateContext(IGpuContextHost host) => contextFactory?.Invoke(host);
}
