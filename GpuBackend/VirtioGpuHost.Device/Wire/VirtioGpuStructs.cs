using System.Runtime.InteropServices;

namespace VirtioGpuHost.Device.Wire;

// virtio-gpu wire structs (virtio 1.x §5.7.6, Linux include/uapi/linux/virtio_gpu.h).
// All little-endian, packed, with explicit padding; sizes are asserted by unit tests.

/// <summary>struct virtio_gpu_ctrl_hdr (24 bytes).</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
public struct VirtioGpuCtrlHeader
{
    public const int Size = 24;
    public const uint FlagFence = 1;
    public const uint FlagInfoRingIdx = 2;

    public VirtioGpuCtrlType Type;
    public uint Flags;
    public ulong FenceId;
    public uint CtxId;
    public byte RingIdx;
    public byte Padding0, Padding1, Padding2;

    public readonly bool HasFence => (Flags & FlagFence) != 0;
}

/// <summary>struct virtio_gpu_rect (16 bytes).</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
public record struct VirtioGpuRect(uint X, uint Y, uint Width, uint Height)
{
    public readonly bool IsEmpty => Width == 0 || Height == 0;

    /// <summary>True when the rect lies inside a width x height area (no overflow).</summary>
    public readonly bool FitsIn(uint width, uint height) =>
        X <= width && Y <= height && Width <= width - X && Height <= height - Y;

    /// <summary>The overlap of two rects (empty when they don't overlap).</summary>
    public readonly VirtioGpuRect Intersect(VirtioGpuRect o)
    {
        ulong x1 = Math.Max(X, o.X), y1 = Math.Max(Y, o.Y);
        ulong x2 = Math.Min((ulong)X + Width, (ulong)o.X + o.Width), y2 = Math.Min((ulong)Y + Height, (ulong)o.Y + o.Height);
        return x2 <= x1 || y2 <= y1 ? default : new VirtioGpuRect((uint)x1, (uint)y1, (uint)(x2 - x1), (uint)(y2 - y1));
    }

    public override readonly string ToString() => $"{Width}x{Height}+{X}+{Y}";
}

/// <summary>One scanout in virtio_gpu_resp_display_info (24 bytes).</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
public struct VirtioGpuDisplayOne
{
    public VirtioGpuRect Rect;
    public uint Enabled;
    public uint Flags;
}

/// <summary>RESOURCE_CREATE_2D (40 bytes).</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
public struct VirtioGpuResourceCreate2D
{
    public VirtioGpuCtrlHeader Header;
    public uint ResourceId;
    public VirtioGpuFormat Format;
    public uint Width;
    public uint Height;
}

/// <summary>RESOURCE_UNREF, RESOURCE_DETACH_BACKING, RESOURCE_ASSIGN_UUID (32 bytes).</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
public struct VirtioGpuResourceRef
{
    public VirtioGpuCtrlHeader Header;
    public uint ResourceId;
    public uint Padding;
}

/// <summary>SET_SCANOUT (48 bytes).</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
public struct VirtioGpuSetScanout
{
    public VirtioGpuCtrlHeader Header;
    public VirtioGpuRect Rect;
    public uint ScanoutId;
    public uint ResourceId;
}

/// <summary>RESOURCE_FLUSH (48 bytes).</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
public struct VirtioGpuResourceFlush
{
    public VirtioGpuCtrlHeader Header;
    public VirtioGpuRect Rect;
    public uint ResourceId;
    public uint Padding;
}

/// <summary>TRANSFER_TO_HOST_2D (56 bytes).</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
public struct VirtioGpuTransferToHost2D
{
    public VirtioGpuCtrlHeader Header;
    public VirtioGpuRect Rect;
    public ulong Offset;
    public uint ResourceId;
    public uint Padding;
}

/// <summary>RESOURCE_ATTACH_BACKING header (32 bytes), followed by nr_entries mem entries.</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
public struct VirtioGpuResourceAttachBacking
{
    public VirtioGpuCtrlHeader Header;
    public uint ResourceId;
    public uint NrEntries;
}

/// <summary>struct virtio_gpu_mem_entry (16 bytes).</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
public struct VirtioGpuMemEntry
{
    public ulong Address;
    public uint Length;
    public uint Padding;
}

/// <summary>GET_EDID (32 bytes).</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
public struct VirtioGpuGetEdid
{
    public VirtioGpuCtrlHeader Header;
    public uint Scanout;
    public uint Padding;
}

/// <summary>GET_CAPSET_INFO (32 bytes).</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
public struct VirtioGpuGetCapsetInfo
{
    public VirtioGpuCtrlHeader Header;
    public uint CapsetIndex;
    public uint Padding;
}

/// <summary>GET_CAPSET (32 bytes).</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
public struct VirtioGpuGetCapset
{
    public VirtioGpuCtrlHeader Header;
    public uint CapsetId;
    public uint CapsetVersion;
}

/// <summary>struct virtio_gpu_cursor_pos (16 bytes).</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
public struct VirtioGpuCursorPos
{
    public uint ScanoutId;
    public uint X;
    public uint Y;
    public uint Padding;
}

/// <summary>UPDATE_CURSOR / MOVE_CURSOR (56 bytes).</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
public struct VirtioGpuUpdateCursor
{
    public VirtioGpuCtrlHeader Header;
    public VirtioGpuCursorPos Pos;
    public uint ResourceId;
    public uint HotX;
    public uint HotY;
    public uint Padding;
}

/// <summary>struct virtio_gpu_config (16 bytes; 20 with BLOB_ALIGNMENT).</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
public struct VirtioGpuConfig
{
    public const uint EventDisplay = 1;
    public uint EventsRead;
    public uint EventsClear;
    public uint NumScanouts;
    public uint NumCapsets;
}

/// <summary>Sizes of responses with a payload.</summary>
public static class VirtioGpuResponseSizes
{
    public const int DisplayInfo = VirtioGpuCtrlHeader.Size + VirtioGpuLimits.MaxScanouts * 24; // 408
    public const int Edid = VirtioGpuCtrlHeader.Size + 8 + EdidBytes; // 1056
    public const int EdidBytes = 1024;
}
