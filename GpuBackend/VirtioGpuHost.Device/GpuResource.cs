namespace VirtioGpuHost.Device;

/// <summary>
/// What the guest's resource ids name: a 2D resource (<see cref="Resource2D"/>, a host copy
/// filled by transfers) or a blob (<see cref="Blobs.BlobResource"/>, guest pages or host memory
/// used in place). Both share one id space; RESOURCE_UNREF, RESOURCE_FLUSH, ASSIGN_UUID and
/// context attachment work on either.
/// </summary>
public abstract class GpuResource : IDisposable
{
    protected GpuResource(uint id) => Id = id;

    public uint Id { get; }

    /// <summary>What this resource is charged against the guest's host-memory budget.</summary>
    public ulong HostCharge { get; set; }

    /// <summary>The UUID RESOURCE_ASSIGN_UUID gave it (stable for its life), or null.</summary>
    public Guid? Uuid { get; internal set; }

    /// <summary>Ids of the contexts it is attached to (CTX_ATTACH_RESOURCE).</summary>
    internal HashSet<uint> Contexts { get; } = new();

    public abstract void Dispose();
}
