using System.Runtime.InteropServices;
using VirtioGpuHost.Device.Wire;

namespace VirtioGpuHost.Device;

/// <summary>
/// The answer to one control command: a response type plus the bytes that follow the
/// header (display info, EDID), or a deferred answer that waits for the display.
/// Errors are just responses (crosvm's model): no exception crosses the device boundary.
/// </summary>
public readonly struct GpuResponse
{
    private GpuResponse(VirtioGpuCtrlType type, byte[]? body, DeferredResponse? deferred)
    {
        Type = type;
        Body = body;
        Deferred = deferred;
    }

    public VirtioGpuCtrlType Type { get; }

    /// <summary>Bytes after the 24-byte header, or null.</summary>
    public byte[]? Body { get; }

    /// <summary>Set when the answer needs the display (GET_DISPLAY_INFO, GET_EDID through QEMU).</summary>
    public DeferredResponse? Deferred { get; }

    public bool IsError => Type >= VirtioGpuCtrlType.ErrUnspec;

    public static GpuResponse Ok => new(VirtioGpuCtrlType.OkNoData, null, null);
    public static GpuResponse Error(VirtioGpuCtrlType type) => new(type, null, null);
    public static GpuResponse WithBody(VirtioGpuCtrlType type, byte[] body) => new(type, body, null);
    public static GpuResponse Later(DeferredResponse deferred) => new(VirtioGpuCtrlType.Undefined, null, deferred);

    /// <summary>
    /// The response bytes as the guest reads them: the header (with FLAG_FENCE, fence_id,
    /// ctx_id and ring_idx echoed when the request was fenced) then the body.
    /// </summary>
    public byte[] Serialize(in VirtioGpuCtrlHeader request)
    {
        var bytes = new byte[VirtioGpuCtrlHeader.Size + (Body?.Length ?? 0)];
        var h = new VirtioGpuCtrlHeader { Type = Type };
        if (request.HasFence)
        {
            h.Flags = VirtioGpuCtrlHeader.FlagFence | (request.Flags & VirtioGpuCtrlHeader.FlagInfoRingIdx);
            h.FenceId = request.FenceId;
            h.CtxId = request.CtxId;
            if ((request.Flags & VirtioGpuCtrlHeader.FlagInfoRingIdx) != 0) h.RingIdx = request.RingIdx;
        }
        MemoryMarshal.Write(bytes, in h);
        Body?.CopyTo(bytes.AsSpan(VirtioGpuCtrlHeader.Size));
        return bytes;
    }

    public override string ToString() => Deferred is null ? Type.ToString() : "deferred";
}

/// <summary>
/// An answer that waits for the display (QEMU answers GET_DISPLAY_INFO and GET_EDID on the
/// display socket). <see cref="Complete"/> builds the answer from the display's reply, and
/// <see cref="Fallback"/> from the device's own state when the display cannot answer in
/// time or the ring must stop now.
/// </summary>
public sealed class DeferredResponse(Task<byte[]?> reply, Func<byte[]?, GpuResponse> complete)
{
    public Task<byte[]?> Reply { get; } = reply;

    public GpuResponse Complete() => complete(Reply.IsCompletedSuccessfully ? Reply.Result : null);

    public GpuResponse Fallback() => complete(null);
}
