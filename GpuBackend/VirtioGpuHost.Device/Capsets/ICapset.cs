using VirtioGpuHost.Device.Contexts;

namespace VirtioGpuHost.Device.Capsets;

/// <summary>
/// One capability set the device reports (GET_CAPSET_INFO / GET_CAPSET) and the context type
/// that goes with it: CTX_CREATE with context_init = <see cref="Id"/> creates a context of it.
/// </summary>
public interface ICapset
{
    /// <summary>The capset id (VIRTIO_GPU_CAPSET_*).</summary>
    uint Id { get; }

    /// <summary>Highest version GET_CAPSET accepts (capset_max_version).</summary>
    uint MaxVersion { get; }

    /// <summary>Size of the largest capset of any version (capset_max_size).</summary>
    uint MaxSize { get; }

    /// <summary>The capset bytes of <paramref name="version"/> (≤ <see cref="MaxVersion"/>; at most <see cref="MaxSize"/> bytes).</summary>
    byte[] Data(uint version);

    /// <summary>
    /// Creates the implementation of a new context of this type, or returns null when there is
    /// none: the context then exists (resources attach to it, HOST3D blobs name it) but its
    /// SUBMIT_3D is refused.
    /// </summary>
    IGpuContext? CreateContext(IGpuContextHost host);
}
