using System.Runtime.InteropServices;

namespace VirtioGpuHost.Virtio;

/// <summary>struct virtq_desc (virtio 1.x §2.7.5): 16 bytes, little-endian.</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
public struct VirtqDescriptor
{
    public const int Size = 16;
    public const ushort FlagNext = 1;
    public const ushort FlagWrite = 2;
    public const ushort FlagIndirect = 4;

    public ulong Address;
    public uint Length;
    public ushort Flags;
    public ushort Next;

    public readonly bool HasNext => (Flags & FlagNext) != 0;
    public readonly bool IsWrite => (Flags & FlagWrite) != 0;
    public readonly bool IsIndirect => (Flags & FlagIndirect) != 0;
}
