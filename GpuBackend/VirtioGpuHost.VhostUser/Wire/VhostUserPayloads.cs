using System.Buffers.Binary;

namespace VirtioGpuHost.VhostUser.Wire;

// Payload layouts (vhost-user.rst "Message types" / protocols.md §1.5). Each type has a
// fixed Size, a Read that assumes the caller checked the length, and a Write.

/// <summary>Vring state (8 bytes): u32 index, u32 num.</summary>
public readonly record struct VringState(uint Index, uint Num)
{
    public const int Size = 8;
    public static VringState Read(ReadOnlySpan<byte> s) => new(BinaryPrimitives.ReadUInt32LittleEndian(s), BinaryPrimitives.ReadUInt32LittleEndian(s[4..]));
    public void Write(Span<byte> s)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(s, Index);
        BinaryPrimitives.WriteUInt32LittleEndian(s[4..], Num);
    }
}

/// <summary>Vring address (40 bytes): index, flags, then front-end virtual addresses of desc, used, avail, and log.</summary>
public readonly record struct VringAddress(uint Index, uint Flags, ulong Descriptor, ulong Used, ulong Available, ulong Log)
{
    public const int Size = 40;
    public const uint FlagLog = 1;

    public static VringAddress Read(ReadOnlySpan<byte> s) => new(
        BinaryPrimitives.ReadUInt32LittleEndian(s), BinaryPrimitives.ReadUInt32LittleEndian(s[4..]),
        BinaryPrimitives.ReadUInt64LittleEndian(s[8..]), BinaryPrimitives.ReadUInt64LittleEndian(s[16..]),
        BinaryPrimitives.ReadUInt64LittleEndian(s[24..]), BinaryPrimitives.ReadUInt64LittleEndian(s[32..]));

    public void Write(Span<byte> s)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(s, Index);
        BinaryPrimitives.WriteUInt32LittleEndian(s[4..], Flags);
        BinaryPrimitives.WriteUInt64LittleEndian(s[8..], Descriptor);
        BinaryPrimitives.WriteUInt64LittleEndian(s[16..], Used);
        BinaryPrimitives.WriteUInt64LittleEndian(s[24..], Available);
        BinaryPrimitives.WriteUInt64LittleEndian(s[32..], Log);
    }
}

/// <summary>Memory region descriptor (32 bytes).</summary>
public readonly record struct MemoryRegionDescriptor(ulong GuestPhysAddr, ulong MemorySize, ulong UserspaceAddr, ulong MmapOffset)
{
    public const int Size = 32;

    public static MemoryRegionDescriptor Read(ReadOnlySpan<byte> s) => new(
        BinaryPrimitives.ReadUInt64LittleEndian(s), BinaryPrimitives.ReadUInt64LittleEndian(s[8..]),
        BinaryPrimitives.ReadUInt64LittleEndian(s[16..]), BinaryPrimitives.ReadUInt64LittleEndian(s[24..]));

    public void Write(Span<byte> s)
    {
        BinaryPrimitives.WriteUInt64LittleEndian(s, GuestPhysAddr);
        BinaryPrimitives.WriteUInt64LittleEndian(s[8..], MemorySize);
        BinaryPrimitives.WriteUInt64LittleEndian(s[16..], UserspaceAddr);
        BinaryPrimitives.WriteUInt64LittleEndian(s[24..], MmapOffset);
    }

    public override string ToString() => $"gpa 0x{GuestPhysAddr:x} size 0x{MemorySize:x} uaddr 0x{UserspaceAddr:x} offset 0x{MmapOffset:x}";
}

/// <summary>SET_MEM_TABLE payload: u32 num_regions, u32 padding, regions (fds in region order).</summary>
public static class MemoryTable
{
    public const int HeaderSize = 8;
    /// <summary>VHOST_MEMORY_BASELINE_NREGIONS: the most regions SET_MEM_TABLE may carry.</summary>
    public const int MaxRegions = 8;

    public static int SizeFor(int regions) => HeaderSize + regions * MemoryRegionDescriptor.Size;
}

/// <summary>ADD_MEM_REG / REM_MEM_REG payload: u64 padding + one region (40 bytes).</summary>
public static class SingleMemoryRegion
{
    public const int Size = 8 + MemoryRegionDescriptor.Size;
    public static MemoryRegionDescriptor Read(ReadOnlySpan<byte> s) => MemoryRegionDescriptor.Read(s[8..]);
    public static void Write(Span<byte> s, MemoryRegionDescriptor region)
    {
        s[..8].Clear();
        region.Write(s[8..]);
    }
}

/// <summary>GET_CONFIG / SET_CONFIG header: u32 offset, u32 size, u32 flags, then size bytes.</summary>
public readonly record struct ConfigHeader(uint Offset, uint Size, uint Flags)
{
    public const int Length = 12;
    /// <summary>QEMU caps device config at 256 bytes (VHOST_USER_MAX_CONFIG_SIZE).</summary>
    public const int MaxConfigSize = 256;

    public static ConfigHeader Read(ReadOnlySpan<byte> s) => new(
        BinaryPrimitives.ReadUInt32LittleEndian(s), BinaryPrimitives.ReadUInt32LittleEndian(s[4..]), BinaryPrimitives.ReadUInt32LittleEndian(s[8..]));

    public void Write(Span<byte> s)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(s, Offset);
        BinaryPrimitives.WriteUInt32LittleEndian(s[4..], Size);
        BinaryPrimitives.WriteUInt32LittleEndian(s[8..], Flags);
    }
}

/// <summary>VhostUserMMap for SHMEM_MAP / SHMEM_UNMAP (40 bytes).</summary>
public readonly record struct ShmemMapRequest(byte ShmId, ulong FdOffset, ulong ShmOffset, ulong Length, ulong Flags)
{
    public const int Size = 40;
    public const ulong FlagReadWrite = 1;

    public static ShmemMapRequest Read(ReadOnlySpan<byte> s) => new(
        s[0], BinaryPrimitives.ReadUInt64LittleEndian(s[8..]), BinaryPrimitives.ReadUInt64LittleEndian(s[16..]),
        BinaryPrimitives.ReadUInt64LittleEndian(s[24..]), BinaryPrimitives.ReadUInt64LittleEndian(s[32..]));

    public void Write(Span<byte> s)
    {
        s[..8].Clear();
        s[0] = ShmId;
        BinaryPrimitives.WriteUInt64LittleEndian(s[8..], FdOffset);
        BinaryPrimitives.WriteUInt64LittleEndian(s[16..], ShmOffset);
        BinaryPrimitives.WriteUInt64LittleEndian(s[24..], Length);
        BinaryPrimitives.WriteUInt64LittleEndian(s[32..], Flags);
    }
}

/// <summary>GET_SHMEM_CONFIG reply (2056 bytes): u32 nregions, u32 padding, u64 memory_sizes[256] by shmid.</summary>
public static class ShmemConfig
{
    public const int MaxRegions = 256;
    public const int Size = 8 + 8 * MaxRegions;
}

/// <summary>Vring kick/call/err payload: u64 with the ring index in bits 0–7 and bit 8 = "no fd".</summary>
public static class VringFdPayload
{
    public const ulong IndexMask = 0xff;
    public const ulong InvalidFdFlag = 0x100;
}
