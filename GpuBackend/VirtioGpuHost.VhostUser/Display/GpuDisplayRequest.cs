namespace VirtioGpuHost.VhostUser.Display;

/// <summary>vhost-user-gpu display socket requests (vhost-user-gpu.rst), sent by the back-end.</summary>
public enum GpuDisplayRequest : uint
{
    None = 0,
    GetProtocolFeatures = 1,
    SetProtocolFeatures = 2,
    GetDisplayInfo = 3,
    CursorPos = 4,
    CursorPosHide = 5,
    CursorUpdate = 6,
    Scanout = 7,
    Update = 8,
    DmabufScanout = 9,
    DmabufUpdate = 10,
    GetEdid = 11,
    DmabufScanout2 = 12,
}

/// <summary>Display-socket protocol feature bits (bit positions, not values: rust-vmm gets this wrong).</summary>
[Flags]
public enum GpuDisplayProtocolFeatures : ulong
{
    None = 0,
    Edid = 1UL << 0,
    Dmabuf2 = 1UL << 1,
}

/// <summary>Payload sizes on the display socket (vhost-user-gpu.rst, protocols.md §1.7).</summary>
public static class GpuDisplayWire
{
    public const int CursorPosSize = 12;
    public const int CursorSize = 64;
    public const int CursorUpdateSize = 20 + CursorSize * CursorSize * 4; // 16404
    public const int ScanoutSize = 12;
    public const int UpdateHeaderSize = 20;
    public const int EdidRequestSize = 4;
    /// <summary>virtio_gpu_resp_display_info: the reply to GET_DISPLAY_INFO.</summary>
    public const int DisplayInfoReplySize = 408;
    /// <summary>virtio_gpu_resp_edid: the reply to GET_EDID.</summary>
    public const int EdidReplySize = 1056;
    /// <summary>Largest reply we accept from the display side.</summary>
    public const int MaxReplySize = EdidReplySize;
}
