using VirtioGpuHost.GuestMemory;
using VirtioGpuHost.VhostUser.Transport;
using VirtioGpuHost.VhostUser.Wire;

namespace VirtioGpuHost.VhostUser.Backend;

/// <summary>
/// What a device model provides to the vhost-user back-end handler. The handler owns the
/// protocol (features, memory table, rings, fds); the device owns what the rings carry.
/// All calls arrive on the connection's event loop thread.
/// </summary>
public interface IVhostUserDevice
{
    /// <summary>Number of virtqueues (GET_QUEUE_NUM).</summary>
    int QueueCount { get; }

    /// <summary>Largest queue size accepted in SET_VRING_NUM.</summary>
    int MaxQueueSize { get; }

    /// <summary>Virtio feature bits offered (device and transport bits, without bit 30).</summary>
    ulong Features { get; }

    /// <summary>Protocol features the device needs beyond the core set (for example Config, Shmem).</summary>
    VhostUserProtocolFeatures ProtocolFeatures { get; }

    /// <summary>Called once before any other call.</summary>
    void Attach(IVhostUserBackendServices services);

    /// <summary>SET_FEATURES: the features the driver accepted (only offered bits; bit 30 removed).</summary>
    void AcknowledgeFeatures(ulong features);

    /// <summary>GET_CONFIG: fill <paramref name="data"/> from config offset <paramref name="offset"/>; false = refuse.</summary>
    bool ReadConfig(uint offset, Span<byte> data);

    /// <summary>SET_CONFIG; false = refuse.</summary>
    bool WriteConfig(uint offset, ReadOnlySpan<byte> data, uint flags);

    /// <summary>The ring got its kick fd and is bound to guest memory.</summary>
    void QueueStarted(VirtqueueContext queue);

    /// <summary>The driver kicked (or the ring became enabled with work pending): process what is available.</summary>
    void QueueKicked(VirtqueueContext queue);

    /// <summary>GET_VRING_BASE: finish every in-flight request of this ring now; the ring is stopped after this call.</summary>
    void QueueStopping(VirtqueueContext queue);

    /// <summary>The memory table changed (rings have been re-bound already).</summary>
    void MemoryChanged(GuestMemoryMap memory);

    /// <summary>
    /// A request id the generic handler does not know (device-specific, such as GPU_SET_SOCKET).
    /// Return null when the request is not the device's; otherwise whether it succeeded.
    /// </summary>
    bool? HandleDeviceRequest(ReceivedMessage message);

    /// <summary>Device reset (RESET_DEVICE, RESET_OWNER, or the front-end went away): drop all device state.</summary>
    void Reset();

    /// <summary>GET_SHMEM_CONFIG: sizes of shared memory regions by shmid (empty when none).</summary>
    IReadOnlyDictionary<byte, ulong> SharedMemoryRegions { get; }

    /// <summary>
    /// The back-end channel appeared (SET_BACKEND_REQ_FD), was replaced, or is gone (null: it
    /// failed or closed; the connection goes on without one).
    /// </summary>
    void BackendChannelChanged(BackendChannel? channel) { }
}

/// <summary>What the back-end handler offers the device.</summary>
public interface IVhostUserBackendServices
{
    /// <summary>Name of the connection for log lines ("conn 3", or the VM's name).</summary>
    string ConnectionName { get; }

    EventLoop Loop { get; }

    /// <summary>The current guest memory snapshot.</summary>
    GuestMemoryMap Memory { get; }

    IReadOnlyList<VirtqueueContext> Queues { get; }

    /// <summary>The back-end channel (SET_BACKEND_REQ_FD), or null if the front-end gave none.</summary>
    BackendChannel? BackendChannel { get; }

    /// <summary>The negotiated protocol features.</summary>
    VhostUserProtocolFeatures NegotiatedProtocolFeatures { get; }
}
