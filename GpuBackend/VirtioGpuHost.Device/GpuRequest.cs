using System.Runtime.InteropServices;
using VirtioGpuHost.Device.Wire;

namespace VirtioGpuHost.Device;

/// <summary>
/// One control or cursor command as read from the guest: the bytes of its device-readable
/// buffers (copied once, capped at <see cref="MaxBytes"/>) and its decoded header.
/// </summary>
public sealed class GpuRequest
{
    /// <summary>
    /// Largest request we copy: ATTACH_BACKING with 16384 entries is 262176 bytes. Longer
    /// requests keep only this prefix; their handlers see the command as truncated.
    /// </summary>
    public const int MaxBytes = 32 + VirtioGpuLimits.MaxBackingEntries * 16 + 4096;

    public GpuRequest(byte[] bytes, ulong readableLength)
    {
        Bytes = bytes;
        ReadableLength = readableLength;
        if (bytes.Length >= VirtioGpuCtrlHeader.Size) Header = MemoryMarshal.Read<VirtioGpuCtrlHeader>(bytes);
    }

    /// <summary>The request bytes (header included).</summary>
    public byte[] Bytes { get; }

    /// <summary>Total device-readable bytes in the chain (may exceed <see cref="Bytes"/>.Length).</summary>
    public ulong ReadableLength { get; }

    public VirtioGpuCtrlHeader Header { get; }

    public bool HasHeader => Bytes.Length >= VirtioGpuCtrlHeader.Size;

    /// <summary>Reads the command struct; false when the guest sent fewer bytes than it needs.</summary>
    public bool TryRead<T>(out T value) where T : unmanaged
    {
        if (Bytes.Length >= Marshal.SizeOf<T>())
        {
            value = MemoryMarshal.Read<T>(Bytes);
            return true;
        }
        value = default;
        return false;
    }

    /// <summary>Builds a request from a command struct (tests, the reference front-end).</summary>
    public static GpuRequest From<T>(in T command, ReadOnlySpan<byte> trailer = default) where T : unmanaged
    {
        var bytes = new byte[Marshal.SizeOf<T>() + trailer.Length];
        MemoryMarshal.Write(bytes, in command);
        trailer.CopyTo(bytes.AsSpan(Marshal.SizeOf<T>()));
        return new GpuRequest(bytes, (ulong)bytes.Length);
    }
}
