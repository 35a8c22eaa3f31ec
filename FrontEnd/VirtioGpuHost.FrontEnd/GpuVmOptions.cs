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

    public MemoryTableMode MemoryMode { get; init; } = MemoryTableMode.Auto;

    /// <summary>Send SET_BACKEND_REQ_FD when BACKEND_REQ is offered.</summary>
    public bool BackendChannel { get; init; } = true;

    public DisplayServerOptions Display { get; init; } = new();

    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(10);
}
