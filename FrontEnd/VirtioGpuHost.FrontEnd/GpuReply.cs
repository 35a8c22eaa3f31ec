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

    public override string ToString() => $"{Type} ({Written} bytes)";
}

/// <summary>A command in flight on the control queue.</summary>
public sealed class PendingCommand
{
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
