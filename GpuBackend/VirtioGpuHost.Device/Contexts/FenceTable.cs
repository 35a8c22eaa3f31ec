using VirtioGpuHost.Device.Wire;

namespace VirtioGpuHost.Device.Contexts;

/// <summary>
/// A fence timeline: with FLAG_INFO_RING_IDX, (ctx_id, ring_idx) is a timeline of its own
/// (ring_idx 0..63); without it every fence is on the device's global timeline (Linux uses one
/// fence context for those).
/// </summary>
public readonly record struct FenceTimeline
{
    public FenceTimeline(uint ctxId, byte? ringIdx)
    {
        CtxId = ringIdx is null ? 0 : ctxId;
        RingIdx = ringIdx;
    }

    public uint CtxId { get; }
    public byte? RingIdx { get; }

    public static FenceTimeline Global => default;

    public static FenceTimeline Of(in VirtioGpuCtrlHeader h) =>
        (h.Flags & VirtioGpuCtrlHeader.FlagInfoRingIdx) != 0 ? new FenceTimeline(h.CtxId, h.RingIdx) : Global;

    public override string ToString() => RingIdx is { } r ? $"ctx {CtxId} ring {r}" : "global";
}

/// <summary>A fence a context signals later: the response waits for <see cref="Signalled"/>.</summary>
public sealed class PendingFence(FenceTimeline timeline, ulong fenceId, uint ownerCtx)
{
    // Continuations run inline: the control queue's only posts its release to the event loop.
    private readonly TaskCompletionSource _signalled = new();

    public FenceTimeline Timeline { get; } = timeline;
    public ulong FenceId { get; } = fenceId;

    /// <summary>The context that will signal it.</summary>
    public uint OwnerCtx { get; } = ownerCtx;

    public Task Signalled => _signalled.Task;
    internal void Signal() => _signalled.TrySetResult();
}

/// <summary>
/// Fences that contexts have not signalled yet, per timeline. Signalling fence N on a timeline
/// signals every pending fence ≤ N there (virtio-gpu: completing a fence completes every earlier
/// command of its timeline). Destroying a context or resetting the device signals its fences, so
/// no response is held forever.
/// </summary>
public sealed class FenceTable
{
    private readonly Dictionary<FenceTimeline, List<PendingFence>> _pending = new();

    public int Count => _pending.Values.Sum(l => l.Count);

    internal PendingFence Add(FenceTimeline timeline, ulong fenceId, uint ownerCtx)
    {
        var f = new PendingFence(timeline, fenceId, ownerCtx);
        if (!_pending.TryGetValue(timeline, out var list)) _pending[timeline] = list = new();
        list.Add(f);
        return f;
    }

    internal void Signal(FenceTimeline timeline, ulong fenceId)
    {
        if (!_pending.TryGetValue(timeline, out var list)) return;
        foreach (var f in list.Where(f => f.FenceId <= fenceId).ToArray())
        {
            list.Remove(f);
            f.Signal();
        }
        if (list.Count == 0) _pending.Remove(timeline);
    }

    /// <summary>Signals every fence of context <paramref name="ctxId"/> (CTX_DESTROY), or all (null: reset).</summary>
    internal void SignalAll(uint? ctxId)
    {
        foreach (var (key, list) in _pending.ToArray())
        {
            foreach (var f in list.Where(f => ctxId is null || f.OwnerCtx == ctxId).ToArray())
            {
                list.Remove(f);
                f.Signal();
            }
            if (list.Count == 0) _pending.Remove(key);
        }
    }
}
