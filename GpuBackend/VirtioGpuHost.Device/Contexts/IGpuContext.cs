using VirtioGpuHost.Device.Wire;
using VirtioGpuHost.GuestMemory;

namespace VirtioGpuHost.Device.Contexts;

/// <summary>
/// The implementation of one context type (e.g. cross-domain), one instance per CTX_CREATE,
/// created by its capset (<see cref="Capsets.ICapset.CreateContext"/>). Runs on the device's
/// event loop; every input is untrusted guest data and must be validated here. Never throws:
/// errors are returned and become the command's error response.
/// </summary>
public interface IGpuContext : IDisposable
{
    /// <summary>Executes one SUBMIT_3D command stream; null on success.</summary>
    GpuContextError? Submit(ReadOnlySpan<byte> commands);

    /// <summary>
    /// A SUBMIT_3D with FLAG_FENCE succeeded: true when its fence is signalled already; false
    /// when the context signals it later with <see cref="IGpuContextHost.SignalFence"/> (the
    /// response is held until then; other commands go on). <paramref name="ringIdx"/> is null
    /// without FLAG_INFO_RING_IDX (the device's global timeline).
    /// </summary>
    bool CreateFence(byte? ringIdx, ulong fenceId);

    /// <summary>CTX_ATTACH_RESOURCE of an existing resource (blob or 2D).</summary>
    void ResourceAttached(GpuResource resource);

    /// <summary>CTX_DETACH_RESOURCE, or the resource went away (RESOURCE_UNREF, reset).</summary>
    void ResourceDetached(GpuResource resource);

    /// <summary>
    /// RESOURCE_CREATE_BLOB HOST3D in this context: the memory that <paramref name="blobId"/>
    /// names (with an fd; the device takes the reference and releases it with the blob), or
    /// <paramref name="memory"/> null to let the device allocate a zero-filled memfd. False
    /// (with an error) refuses the blob.
    /// </summary>
    bool TryProvideHostBlob(ulong blobId, ulong size, out MemoryBlock? memory, out GpuContextError? error);
}

/// <summary>A context's refusal: the response type and a line for the guest-error log.</summary>
public sealed record GpuContextError(VirtioGpuCtrlType Type, string Detail);

/// <summary>What a context may use of the device (on the device's event loop only).</summary>
public interface IGpuContextHost
{
    uint ContextId { get; }
    uint CapsetId { get; }
    string DebugName { get; }

    /// <summary>The connection's name, for log lines.</summary>
    string ConnectionName { get; }

    /// <summary>Rate-limited guest-error log of the connection.</summary>
    GuestErrorLog Errors { get; }

    /// <summary>The current guest memory snapshot (resolve addresses at each use; never keep host pointers).</summary>
    IGuestMemory Memory { get; }

    /// <summary>A resource attached to this context, or null.</summary>
    GpuResource? AttachedResource(uint resourceId);

    /// <summary>
    /// Signals fence <paramref name="fenceId"/> and every earlier one on the timeline
    /// (ringIdx null = global): their held responses go to the guest, in order.
    /// </summary>
    void SignalFence(byte? ringIdx, ulong fenceId);
}
