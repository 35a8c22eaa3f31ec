using System.Runtime.InteropServices;
using VirtioGpuHost.Device.Contexts;
using VirtioGpuHost.Device.Wire;

namespace VirtioGpuHost.Device;

/// <summary>
/// The answer to one control command: a response type plus the bytes that follow the
/// header (display info, EDID, capsets, map info), a deferred answer that the ring waits for
/// (the display's reply, the VMM mapping a blob), or an answer held until a context signals
/// its fence (the ring goes on meanwhile; see <see cref="Fence"/>).
/// Errors are just responses (crosvm's model): no exception crosses the device boundary.
/// </summary>
public readonly struct GpuResponse
{
    private GpuResponse(VirtioGpuCtrlType type, byte[]? body, DeferredResponse? deferred, PendingFence? fence = null)
    {
        Type = type;
        Body = body;
        Deferred = deferred;
        Fence = fence;
    }

    public VirtioGpuCtrlType Type { get; }

    /// <summary>Bytes after the 24-byte header, or null.</summary>
    public byte[]? Body { get; }

    /// <summary>
    /// Set when the answer is not known yet and the ring waits for it, in order (GET_DISPLAY_INFO
    /// and GET_EDID through QEMU, MAP_BLOB / UNMAP_BLOB through the VMM).
    /// </summary>
    public DeferredResponse? Deferred { get; }

    /// <summary>
    /// Set for a fenced command whose fence a context signals later: this response (<see cref="Type"/>,
    /// <see cref="Body"/>) is written once <see cref="PendingFence.Signalled"/> completes, after every
    /// earlier fenced response of the same timeline; the ring processes later commands meanwhile.
    /// </summary>
    public PendingFence? Fence { get; }

    public bool IsError => Type >= VirtioGpuCtrlType.ErrUnspec;

    public static GpuResponse Ok => new(VirtioGpuCtrlType.OkNoData, null, null);
    public static GpuResponse Error(VirtioGpuCtrlType type) => new(type, null, null);
    public static GpuResponse WithBody(VirtioGpuCtrlType type, byte[] body) => new(type, body, null);
    public static GpuResponse Later(DeferredResponse deferred) => new(VirtioGpuCtrlType.Undefined, null, deferred);
    public static GpuResponse AfterFence(PendingFence fence) => new(VirtioGpuCtrlType.OkNoData, null, null, fence);

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

    public override string ToString() => Deferred is not null ? "deferred" : Fence is not null ? $"{Type} after fence" : Type.ToString();
}

/// <summary>
/// An answer the control ring waits for, in ring order. <see cref="Complete"/> builds it once
/// <see cref="Reply"/> has completed; <see cref="Fallback"/> answers when it cannot be waited
/// for (the display did not answer in time, or the ring must stop now).
/// <list type="bullet">
/// <item>From the display (QEMU answers GET_DISPLAY_INFO and GET_EDID on the display socket):
/// the answer is built from its reply bytes, or from the device's own state; the processor
/// bounds the wait (<see cref="WaitsForDisplay"/>).</item>
/// <item>From a device task (<see cref="FromTask"/>: MAP_BLOB waiting for the VMM): the task's
/// response; the task has its own timeout. Its fallback (ERR_UNSPEC for a blob map) does not undo
/// what the task still does: the device settles its own state when the task ends.</item>
/// </list>
/// </summary>
public sealed class DeferredResponse
{
    private readonly Func<GpuResponse> _complete;
    private readonly Func<GpuResponse> _fallback;

    /// <summary>An answer from the display's reply (null reply: answer from the device's state).</summary>
    public DeferredResponse(Task<byte[]?> reply, Func<byte[]?, GpuResponse> complete)
        : this(reply, () => complete(reply.IsCompletedSuccessfully ? reply.Result : null), () => complete(null), waitsForDisplay: true) { }

    private DeferredResponse(Task reply, Func<GpuResponse> complete, Func<GpuResponse> fallback, bool waitsForDisplay)
    {
        Reply = reply;
        _complete = complete;
        _fallback = fallback;
        WaitsForDisplay = waitsForDisplay;
    }

    /// <summary>
    /// The answer of a device task; <paramref name="fallback"/> if the task failed or cannot be
    /// waited for, and then <paramref name="abandoned"/> runs (the device undoes what the guest is
    /// told did not happen, e.g. a blob map the VMM completes after the ring stopped).
    /// </summary>
    public static DeferredResponse FromTask(Task<GpuResponse> answer, GpuResponse fallback, Action? abandoned = null) =>
        new(answer, () => answer.IsCompletedSuccessfully ? answer.Result : fallback, () =>
        {
            abandoned?.Invoke();
            return fallback;
        }, waitsForDisplay: false);

    /// <summary>Completes when the answer can be built.</summary>
    public Task Reply { get; }

    /// <summary>True when the processor's display timeout bounds the wait (a display may never answer).</summary>
    public bool WaitsForDisplay { get; }

    public GpuResponse Complete() => _complete();

    public GpuResponse Fallback() => _fallback();
}
