namespace VirtioGpuHost.FrontEnd;

/// <summary>How the guest RAM reaches the back-end.</summary>
public enum MemoryTableMode
{
    /// <summary>ADD_MEM_REG when CONFIGURE_MEM_SLOTS is negotiated (as QEMU does), else SET_MEM_TABLE.</summary>
    Auto,
    SetMemTable,
    AddMemReg,
}

/// <summary>Settings of a reference-front-end VM.</summary>
public sealed class GpuVmOptions
{
    public ulong RamSize { get; init; } = 64UL << 20;

    /// <summary>Guest-physical base of the RAM region (QEMU puts RAM at 0).</summary>
    public ulong RamGuestBase { get; init; }

    /// <summary>QEMU uses 64 (2D) for the control queue and 16 for the cursor queue.</summary>
    public ushort ControlQueueSize { get; init; } = 64;
    public ushort CursorQueueSize { get; init; } = 16;

    public bool EventIdx { get; init; } = true;
    public bool IndirectDescriptors { get; init; } = true;

    /// <summary>Acknowledge VIRTIO_GPU_F_EDID when the back-end offers it.</summary>
    public bool Edid { get; init; } = true;

    /// <summary>
    /// Acknowledge RESOURCE_BLOB, CONTEXT_INIT, RESOURCE_UUID and VIRGL when the back-end offers
    /// them (what the Linux 6.1 guest acks on QEMU 11.1's generic device).
    /// </summary>
    public bool Blob { get; init; }

    public MemoryTableMode MemoryMode { get; init; } = MemoryTableMode.Auto;

    /// <summary>Send SET_BACKEND_REQ_FD when BACKEND_REQ is offered.</summary>
    public bool BackendChannel { get; init; } = true;

    public DisplayServerOptions Display { get; init; } = new();

    /// <summary>
    /// Host-visible shared memory (virtio-gpu shmid 1): 0 = none (SHMEM is not negotiated);
    /// otherwise SHMEM (protocol bit 22) is negotiated when the back-end offers it,
    /// GET_SHMEM_CONFIG is asked, and the back-end's region is accepted up to this size
    /// (and <see cref="HostVisibleRegion.MaxSize"/>). The size itself is the back-end's answer.
    /// </summary>
    public ulong HostVisibleSize { get; init; }

    /// <summary>What guest accesses to unmapped host-visible ranges do (QEMU 11.1: <see cref="UnmappedAccess.Zero"/>).</summary>
    public UnmappedAccess UnmappedAccess { get; init; } = UnmappedAccess.Fault;

    /// <summary>
    /// QEMU 11.1's behaviour: after each SHMEM_MAP, send ADD_MEM_REG of the mapping (guest address
    /// <see cref="HostVisibleGuestAddress"/> + offset, the back-end's own fd) and after each
    /// SHMEM_UNMAP, REM_MEM_REG. Off by default. Needs CONFIGURE_MEM_SLOTS.
    /// </summary>
    public bool HostVisibleMemoryFeedback { get; init; }

    /// <summary>Guest-physical address of the host-visible region (QEMU: BAR 4), for the feedback.</summary>
    public ulong HostVisibleGuestAddress { get; init; } = 0x80_0000_0000;

    /// <summary>Log lines of the VMM side (back-end channel, host-visible region); none when null.</summary>
    public Microsoft.Extensions.Logging.ILogger? Logger { get; init; }

    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(10);
}
