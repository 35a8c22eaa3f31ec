using System.Runtime.CompilerServices;
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

// ---- blob, context, capset and UUID commands (virtio 1.2+ §5.7.6.8-11) ----

/// <summary>RESOURCE_CREATE_BLOB header (56 bytes), followed by nr_entries mem entries.</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
public struct VirtioGpuResourceCreateBlob
{
    public const uint MemGuest = 1;
    public const uint MemHost3D = 2;
    public const uint MemHost3DGuest = 3;

    public const uint FlagUseMappable = 1;
    public const uint FlagUseShareable = 2;
    public const uint FlagUseCrossDevice = 4;
    public const uint KnownFlags = FlagUseMappable | FlagUseShareable | FlagUseCrossDevice;

    public VirtioGpuCtrlHeader Header;
    public uint ResourceId;
    public uint BlobMem;
    public uint BlobFlags;
    public uint NrEntries;
    public ulong BlobId;
    public ulong Size;
}

/// <summary>SET_SCANOUT_BLOB (96 bytes).</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
public struct VirtioGpuSetScanoutBlob
{
    public VirtioGpuCtrlHeader Header;
    public VirtioGpuRect Rect;
    public uint ScanoutId;
    public uint ResourceId;
    public uint Width;
    public uint Height;
    public VirtioGpuFormat Format;
    public uint Padding;
    public FourU32 Strides;
    public FourU32 Offsets;
}

/// <summary>CTX_CREATE (96 bytes); the context id is hdr.ctx_id.</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
public struct VirtioGpuCtxCreate
{
    public const int MaxDebugName = 64;
    /// <summary>context_init bits 0-7: the capset id of the context type.</summary>
    public const uint CapsetIdMask = 0xFF;

    public VirtioGpuCtrlHeader Header;
    public uint NameLength;
    public uint ContextInit;
    public DebugNameBytes DebugName;
}

/// <summary>CTX_ATTACH_RESOURCE / CTX_DETACH_RESOURCE (32 bytes); the context id is hdr.ctx_id.</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
public struct VirtioGpuCtxResource
{
    public VirtioGpuCtrlHeader Header;
    public uint ResourceId;
    public uint Padding;
}

/// <summary>SUBMIT_3D header (32 bytes), followed by size bytes of the context's command stream.</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
public struct VirtioGpuSubmit3D
{
    public VirtioGpuCtrlHeader Header;
    public uint Size;
    public uint Padding;
}

/// <summary>RESOURCE_MAP_BLOB (40 bytes): offset is into the host-visible region.</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
public struct VirtioGpuResourceMapBlob
{
    public VirtioGpuCtrlHeader Header;
    public uint ResourceId;
    public uint Padding;
    public ulong Offset;
}

/// <summary>Body of OK_CAPSET_INFO (16 bytes after the header).</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
public struct VirtioGpuCapsetInfo
{
    public uint CapsetId;
    public uint CapsetMaxVersion;
    public uint CapsetMaxSize;
    public uint Padding;
}

/// <summary>map_info values of OK_MAP_INFO (only the cache nibble is sent).</summary>
public static class VirtioGpuMapInfo
{
    public const uint CacheMask = 0x0F;
    public const uint CacheNone = 0;
    public const uint CacheCached = 1;
    public const uint CacheUncached = 2;
    public const uint CacheWc = 3;
}

/// <summary>Capset ids (virtio 1.2+ §5.7.6.7 and rutabaga's list).</summary>
public static class VirtioGpuCapsetId
{
    public const uint Virgl = 1;
    public const uint Virgl2 = 2;
    public const uint Gfxstream = 3;
    public const uint Venus = 4;
    public const uint CrossDomain = 5;
}

/// <summary>Four u32 (SET_SCANOUT_BLOB's strides and offsets, one per plane).</summary>
[InlineArray(4)]
public struct FourU32
{
    private uint _element0;
}

/// <summary>CTX_CREATE's debug_name (64 bytes, not NUL-terminated when full).</summary>
[InlineArray(VirtioGpuCtxCreate.MaxDebugName)]
public struct DebugNameBytes
{
    private byte _element0;
}
