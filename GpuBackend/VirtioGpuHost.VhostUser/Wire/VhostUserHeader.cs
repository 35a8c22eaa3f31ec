using System.Buffers.Binary;
using System.Runtime.InteropServices;

namespace VirtioGpuHost.VhostUser.Wire;

/// <summary>
/// The 12-byte header shared by vhost-user messages and the vhost-user-gpu display socket:
/// u32 request, u32 flags, u32 size (host byte order).
/// </summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
public readonly record struct VhostUserHeader(uint Request, uint Flags, uint Size)
{
    public const int Length = 12;

    // vhost-user flags (vhost-user.rst "Header"); the display socket uses only Reply.
    public const uint VersionMask = 0x3;
    public const uint Version = 0x1;
    public const uint FlagReply = 0x4;
    public const uint FlagNeedReply = 0x8;

    public bool IsReply => (Flags & FlagReply) != 0;
    public bool NeedsReply => (Flags & FlagNeedReply) != 0;

    public static VhostUserHeader Read(ReadOnlySpan<byte> s) => new(
        BinaryPrimitives.ReadUInt32LittleEndian(s),
        BinaryPrimitives.ReadUInt32LittleEndian(s[4..]),
        BinaryPrimitives.ReadUInt32LittleEndian(s[8..]));

    public void Write(Span<byte> s)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(s, Request);
        BinaryPrimitives.WriteUInt32LittleEndian(s[4..], Flags);
        BinaryPrimitives.WriteUInt32LittleEndian(s[8..], Size);
    }
}
