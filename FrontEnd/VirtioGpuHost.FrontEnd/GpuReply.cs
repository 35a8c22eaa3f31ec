using System.Runtime.InteropServices;
using VirtioGpuHost.Device.Wire;

namespace VirtioGpuHost.FrontEnd;

/// <summary>A response read back from guest memory: the header and every byte the device wrote.</summary>
public sealed class GpuReply
{
    public GpuReply(byte[] bytes, uint written)
    {
        Bytes = bytes;
        Written = written;
        if (bytes.Length >= VirtioGpuCtrlHeader.Size) Header = MemoryMarshal.Read<VirtioGpuCtrlHeader>(bytes);
    }

    public byte[] Bytes { get; }

    /// <summary>The used length the device reported.</summary>
    public uint Written { get; }

    public VirtioGpuCtrlHeader Header { get; }
    public VirtioGpuCtrlType Type => Header.Type;
    public bool IsOk => Type is >= VirtioGpuCtrlType.OkNoData and < VirtioGpuCtrlType.ErrUnspec;

    public T Read<T>() where T : unmanaged => MemoryMarshal.Read<T>(Bytes);

    /// <summary>OK_MAP_INFO's map_info (0 for any other answer).</summary>
    public uint MapInfo => Type == VirtioGpuCtrlType.OkMapInfo && Bytes.Length >= 28 ? BitConverter.ToUInt32(Bytes, 24) : 0;

    /// <summary>OK_CAPSET_INFO's body (default for any other answer).</summary>
    public VirtioGpuCapsetInfo CapsetInfo => Type == VirtioGpuCtrlType.OkCapsetInfo && Bytes.Length >= 40
        ? MemoryMarshal.Read<VirtioGpuCapsetInfo>(Bytes.AsSpan(24)) : default;

    /// <summary>OK_RESOURCE_UUID's 16 bytes (null for any other answer).</summary>
    public byte[]? Uuid => Type == VirtioGpuCtrlType.OkResourceUuid && Bytes.Length >= 40 ? Bytes[24..40] : null;

    public override string ToString() => $"{Type} ({Written} bytes)";
}

/// <summary>A command in flight on the control queue.</summary>
public sealed class PendingCommand
{
    /// <summary>Which submission this is (completions are matched on it; heads are reused).</summary>
    internal long Submission { get; init; }

    internal PendingCommand(ushort head, GuestBuffer command, GuestBuffer response)
    {
        Head = head;
        Command = command;
        Response = response;
    }

    public ushort Head { get; }
    internal GuestBuffer Command { get; }
    internal GuestBuffer Response { get; }
}
