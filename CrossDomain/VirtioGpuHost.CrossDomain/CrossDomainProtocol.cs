using System.Buffers.Binary;

namespace VirtioGpuHost.CrossDomain;

/// <summary>
/// The cross-domain wire format (rutabaga_gfx cross_domain_protocol.rs, commands 1-7 and
/// identifier types 1-4; see /work/shared/reference/protocols.md §4). Every command starts with
/// an 8-byte header: u8 cmd, u8 ring_idx, u16 cmd_size (header included), u32 pad.
/// </summary>
public static class CrossDomainProtocol
{
    public const byte CmdInit = 1;
    public const byte CmdGetImageRequirements = 2;
    public const byte CmdPoll = 3;
    public const byte CmdSend = 4;
    public const byte CmdReceive = 5;
    public const byte CmdRead = 6;
    public const byte CmdWrite = 7;

    /// <summary>Fence ring of GET_IMAGE_REQUIREMENTS (signalled at once).</summary>
    public const byte QueryRing = 0;
    /// <summary>Fence ring of POLL (held until the host has written an event).</summary>
    public const byte ChannelRing = 1;

    public const uint ChannelTypeWayland = 1;

    public const uint IdTypeVirtgpuBlob = 1;
    public const uint IdTypeVirtgpuSync = 2;
    public const uint IdTypeReadPipe = 3;
    public const uint IdTypeWritePipe = 4;

    /// <summary>Identifiers per SEND/RECEIVE (crosvm 03c5118df, sommelier, wayland-proxy-virtwl).</summary>
    public const int MaxIdentifiers = 28;

    public const int HeaderSize = 8;
    public const int InitLegacySize = 16;
    public const int InitV1Size = 20;
    public const int InitSize = 36;
    public const int GetImageRequirementsSize = 24;
    public const int PollSize = 16;
    /// <summary>SEND/RECEIVE without data: header, num_identifiers, opaque_data_size, 3 × 28 u32 arrays.</summary>
    public const int SendReceiveSize = 16 + 3 * 4 * MaxIdentifiers; // 352
    public const int ReadWriteSize = 24;
    public const int ImageRequirementsSize = 64;

    /// <summary>The host's buffers are one page: a RECEIVE carries at most this much Wayland data.</summary>
    public const int RingSize = 4096;
    public const int MaxReceiveData = RingSize - SendReceiveSize; // 3744
    public const int MaxReadData = RingSize - ReadWriteSize;

    /// <summary>Ordinary item ids count up from 2 (the first one handed out); read pipes from 0x80000001.</summary>
    public const uint FirstItemId = 2;
    public const uint ReadPipeIdBase = 0x8000_0000;

    // Offsets inside SEND/RECEIVE.
    public const int OffNumIdentifiers = 8;
    public const int OffOpaqueDataSize = 12;
    public const int OffIdentifiers = 16;
    public const int OffIdentifierTypes = 16 + 4 * MaxIdentifiers;  // 128
    public const int OffIdentifierSizes = 16 + 8 * MaxIdentifiers;  // 240

    public static void WriteHeader(Span<byte> b, byte cmd, ushort size, byte ringIdx = 0)
    {
        b[..HeaderSize].Clear();
        b[0] = cmd;
        b[1] = ringIdx;
        BinaryPrimitives.WriteUInt16LittleEndian(b[2..], size);
    }

    /// <summary>A RECEIVE (352 bytes + data) for the channel ring.</summary>
    public static byte[] BuildReceive(ReadOnlySpan<(uint Id, uint Type, uint Size)> identifiers, ReadOnlySpan<byte> data)
    {
        var b = new byte[SendReceiveSize + data.Length];
        WriteHeader(b, CmdReceive, (ushort)Math.Min(b.Length, ushort.MaxValue));
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(OffNumIdentifiers), (uint)identifiers.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(OffOpaqueDataSize), (uint)data.Length);
        for (int i = 0; i < identifiers.Length; i++)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(OffIdentifiers + 4 * i), identifiers[i].Id);
            BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(OffIdentifierTypes + 4 * i), identifiers[i].Type);
            BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(OffIdentifierSizes + 4 * i), identifiers[i].Size);
        }
        data.CopyTo(b.AsSpan(SendReceiveSize));
        return b;
    }

    /// <summary>A READ (24 bytes + data) for the channel ring.</summary>
    public static byte[] BuildRead(uint identifier, bool hangUp, ReadOnlySpan<byte> data)
    {
        var b = new byte[ReadWriteSize + data.Length];
        WriteHeader(b, CmdRead, (ushort)b.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(8), identifier);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(12), hangUp ? 1u : 0u);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(16), (uint)data.Length);
        data.CopyTo(b.AsSpan(ReadWriteSize));
        return b;
    }

    public static string CommandName(byte cmd) => cmd switch
    {
        CmdInit => "INIT",
        CmdGetImageRequirements => "GET_IMAGE_REQUIREMENTS",
        CmdPoll => "POLL",
        CmdSend => "SEND",
        CmdReceive => "RECEIVE",
        CmdRead => "READ",
        CmdWrite => "WRITE",
        _ => $"cmd {cmd}",
    };
}

/// <summary>
/// The layout of an image (CrossDomainImageRequirements, 64 bytes on the query ring) the way
/// rutabaga's system gralloc computes it without minigbm: canonical linear planes (stride =
/// width × bytes per pixel, no padding), size rounded up to pages, map_info CACHED.
/// </summary>
public readonly record struct ImageRequirements(uint Width, uint Height, uint DrmFormat, uint[] Strides, uint[] Offsets, ulong Size)
{
    public const uint MapCacheCached = 1;
    public const uint MaxDimension = 32768;
    public const ulong MaxSize = 1UL << 31;

    private static uint Fourcc(string s) => (uint)(s[0] | s[1] << 8 | s[2] << 16 | s[3] << 24);

    /// <summary>(bytes per pixel, horizontal subsampling, vertical subsampling) per plane.</summary>
    private static (uint Bpp, uint Hs, uint Vs)[]? Planes(uint format)
    {
        if (format == Fourcc("R8  ")) return [(1, 1, 1)];
        if (format == Fourcc("RG16")) return [(2, 1, 1)];
        if (format == Fourcc("BG24")) return [(3, 1, 1)];
        foreach (var f in new[] { "XR24", "XB24", "AR24", "AB24", "XR30", "XB30", "AR30", "AB30" })
            if (format == Fourcc(f)) return [(4, 1, 1)];
        if (format == Fourcc("AB4H")) return [(8, 1, 1)];
        if (format == Fourcc("NV12")) return [(1, 1, 1), (2, 2, 2)];
        if (format == Fourcc("YV12")) return [(1, 1, 1), (1, 2, 2), (1, 2, 2)];
        return null;
    }

    public static string FormatName(uint format)
    {
        Span<char> c = stackalloc char[4];
        for (int i = 0; i < 4; i++)
        {
            char ch = (char)((format >> (8 * i)) & 0xFF);
            if (ch is < ' ' or > '~') return $"0x{format:x8}";
            c[i] = ch;
        }
        return $"fourcc({c.ToString()})";
    }

    /// <summary>The requirements, or why the request cannot be met.</summary>
    public static ImageRequirements? Compute(uint width, uint height, uint drmFormat, out string? error)
    {
        error = null;
        if (width == 0 || height == 0 || width > MaxDimension || height > MaxDimension)
        {
            error = $"size {width}x{height} must be 1..{MaxDimension} in each dimension";
            return null;
        }
        if (Planes(drmFormat) is not { } planes)
        {
            error = $"drm_format {FormatName(drmFormat)} is not supported";
            return null;
        }
        var strides = new uint[4];
        var offsets = new uint[4];
        ulong size = 0;
        for (int p = 0; p < planes.Length; p++)
        {
            var (bpp, hs, vs) = planes[p];
            ulong stride = (ulong)(width / hs) * bpp;
            strides[p] = (uint)stride;
            offsets[p] = (uint)size;
            size += stride * (height / vs);
        }
        size = (size + 4095) & ~4095UL;
        if (size > MaxSize)
        {
            error = $"{width}x{height} {FormatName(drmFormat)} needs {size} bytes, more than {MaxSize}";
            return null;
        }
        return new ImageRequirements(width, height, drmFormat, strides, offsets, size);
    }

    /// <summary>The 64-byte answer written at offset 0 of the query ring.</summary>
    public byte[] Encode(uint blobId)
    {
        var b = new byte[CrossDomainProtocol.ImageRequirementsSize];
        for (int i = 0; i < 4; i++)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(4 * i), Strides[i]);
            BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(16 + 4 * i), Offsets[i]);
        }
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(32), 0); // DRM_FORMAT_MOD_LINEAR
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(40), Size);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(48), blobId);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(52), MapCacheCached);
        BinaryPrimitives.WriteInt32LittleEndian(b.AsSpan(56), -1); // memory_idx: no Vulkan
        BinaryPrimitives.WriteInt32LittleEndian(b.AsSpan(60), -1); // physical_device_idx
        return b;
    }
}
