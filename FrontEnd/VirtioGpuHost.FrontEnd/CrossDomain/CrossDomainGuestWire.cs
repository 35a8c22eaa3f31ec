using System.Buffers.Binary;

namespace VirtioGpuHost.FrontEnd.CrossDomain;

/// <summary>
/// The guest's side of the cross-domain wire format (what sommelier's virtgpu_channel.cc and
/// wayland-proxy-virtwl encode), written independently of the host implementation so that
/// tests through the two catch a layout mistake on either side. 28 identifiers per SEND/RECEIVE.
/// </summary>
public static class CrossDomainGuestWire
{
    public const uint CapsetId = 5;
    public const byte CmdInit = 1, CmdGetImageRequirements = 2, CmdPoll = 3, CmdSend = 4, CmdReceive = 5, CmdRead = 6, CmdWrite = 7;
    public const byte QueryRing = 0, ChannelRing = 1;
    public const uint ChannelTypeWayland = 1;
    public const uint IdBlob = 1, IdSync = 2, IdReadPipe = 3, IdWritePipe = 4;
    public const int MaxIdentifiers = 28;
    public const int SendHeaderSize = 352;
    public const int ReadWriteHeaderSize = 24;
    public const int MaxSendData = 4096 - SendHeaderSize;
    public const uint DrmFormatR8 = 0x2020_3852; // 'R8  '
    public const uint DrmFormatXrgb8888 = 0x3432_5258; // 'XR24'
    public const uint ReadPipeIdBase = 0x8000_0000;

    private static void Header(Span<byte> b, byte cmd, int size)
    {
        b[0] = cmd;
        BinaryPrimitives.WriteUInt16LittleEndian(b[2..], checked((ushort)size));
    }

    /// <summary>The v1 INIT (20 bytes), as wayland-proxy-virtwl sends it.</summary>
    public static byte[] Init(uint queryRingResource, uint channelRingResource, uint channelType = ChannelTypeWayland)
    {
        var b = new byte[20];
        Header(b, CmdInit, b.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(8), queryRingResource);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(12), channelRingResource);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(16), channelType);
        return b;
    }

    /// <summary>The legacy INIT (16 bytes): one page serves as query and channel ring.</summary>
    public static byte[] InitLegacy(uint ringResource, uint channelType = ChannelTypeWayland)
    {
        var b = new byte[16];
        Header(b, CmdInit, b.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(8), ringResource);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(12), channelType);
        return b;
    }

    public static byte[] Poll()
    {
        var b = new byte[16];
        Header(b, CmdPoll, b.Length);
        return b;
    }

    public static byte[] GetImageRequirements(uint width, uint height, uint drmFormat, uint flags = (1 << 4) | 1)
    {
        var b = new byte[24];
        Header(b, CmdGetImageRequirements, b.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(8), width);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(12), height);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(16), drmFormat);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(20), flags);
        return b;
    }

    public static byte[] Send(ReadOnlySpan<(uint Id, uint Type)> identifiers, ReadOnlySpan<byte> data)
    {
        if (identifiers.Length > MaxIdentifiers) throw new ArgumentException($"at most {MaxIdentifiers} identifiers", nameof(identifiers));
        var b = new byte[SendHeaderSize + data.Length];
        Header(b, CmdSend, b.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(8), (uint)identifiers.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(12), (uint)data.Length);
        for (int i = 0; i < identifiers.Length; i++)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(16 + 4 * i), identifiers[i].Id);
            BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(128 + 4 * i), identifiers[i].Type);
        }
        data.CopyTo(b.AsSpan(SendHeaderSize));
        return b;
    }

    public static byte[] Write(uint identifier, ReadOnlySpan<byte> data, bool hangUp)
    {
        var b = new byte[ReadWriteHeaderSize + data.Length];
        Header(b, CmdWrite, b.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(8), identifier);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(12), hangUp ? 1u : 0u);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(16), (uint)data.Length);
        data.CopyTo(b.AsSpan(ReadWriteHeaderSize));
        return b;
    }

    /// <summary>The answer GET_IMAGE_REQUIREMENTS wrote at offset 0 of the query ring.</summary>
    public readonly record struct ImageRequirementsReply(uint Stride0, ulong Size, uint BlobId, uint MapInfo)
    {
        public static ImageRequirementsReply Parse(ReadOnlySpan<byte> ring) => new(
            BinaryPrimitives.ReadUInt32LittleEndian(ring),
            BinaryPrimitives.ReadUInt64LittleEndian(ring[40..]),
            BinaryPrimitives.ReadUInt32LittleEndian(ring[48..]),
            BinaryPrimitives.ReadUInt32LittleEndian(ring[52..]));
    }

    /// <summary>A channel-ring message: RECEIVE (identifiers + data) or READ (one identifier, data, hang_up).</summary>
    public sealed record ChannelMessage(byte Command, (uint Id, uint Type, uint Size)[] Identifiers, byte[] Data, uint ReadIdentifier, bool HangUp)
    {
        /// <summary>Parses offset 0 of the channel ring; null (with why) when it makes no sense.</summary>
        public static ChannelMessage? Parse(ReadOnlySpan<byte> ring, out string? error)
        {
            error = null;
            byte cmd = ring[0];
            if (cmd == CmdReceive)
            {
                uint n = BinaryPrimitives.ReadUInt32LittleEndian(ring[8..]), size = BinaryPrimitives.ReadUInt32LittleEndian(ring[12..]);
                if (n > MaxIdentifiers || size > (uint)(ring.Length - SendHeaderSize))
                {
                    error = $"RECEIVE with num_identifiers {n}, opaque_data_size {size}";
                    return null;
                }
                var ids = new (uint, uint, uint)[n];
                for (int i = 0; i < n; i++)
                {
                    ids[i] = (BinaryPrimitives.ReadUInt32LittleEndian(ring[(16 + 4 * i)..]),
                              BinaryPrimitives.ReadUInt32LittleEndian(ring[(128 + 4 * i)..]),
                              BinaryPrimitives.ReadUInt32LittleEndian(ring[(240 + 4 * i)..]));
                }
                return new ChannelMessage(cmd, ids, ring.Slice(SendHeaderSize, (int)size).ToArray(), 0, n == 0 && size == 0);
            }
            if (cmd == CmdRead)
            {
                uint id = BinaryPrimitives.ReadUInt32LittleEndian(ring[8..]), hang = BinaryPrimitives.ReadUInt32LittleEndian(ring[12..]);
                uint size = BinaryPrimitives.ReadUInt32LittleEndian(ring[16..]);
                if (size > (uint)(ring.Length - ReadWriteHeaderSize))
                {
                    error = $"READ with opaque_data_size {size}";
                    return null;
                }
                return new ChannelMessage(cmd, [], ring.Slice(ReadWriteHeaderSize, (int)size).ToArray(), id, hang != 0);
            }
            error = $"unknown channel-ring command {cmd}";
            return null;
        }
    }
}
