using VirtioGpuHost.GuestMemory;

namespace VirtioGpuHost.Device.Contexts;

/// <summary>
/// A context as the device keeps it (CTX_CREATE .. CTX_DESTROY): its type (capset), the
/// resources attached to it, and its implementation if its type has one.
/// </summary>
internal sealed class GpuContext(GpuDevice device, uint id, uint capsetId, string debugName) : IGpuContextHost
{
    public uint ContextId { get; } = id;
    public uint CapsetId { get; } = capsetId;
    public string DebugName { get; } = debugName;
    public string ConnectionName => device.Name;
    public GuestErrorLog Errors => device.Errors;
    public IGuestMemory Memory => device.CurrentMemory;

    /// <summary>Attached resources by id.</summary>
    public Dictionary<uint, GpuResource> Resources { get; } = new();

    /// <summary>Null when the context type has no implementation (SUBMIT_3D is refused).</summary>
    public IGpuContext? Impl { get; set; }

    public bool Destroyed { get; set; }

    public GpuResource? AttachedResource(uint resourceId) => Resources.GetValueOrDefault(resourceId);

    public void SignalFence(byte? ringIdx, ulong fenceId)
    {
        if (Destroyed) return;
        device.Fences.Signal(new FenceTimeline(ContextId, ringIdx), fenceId);
    }
}
