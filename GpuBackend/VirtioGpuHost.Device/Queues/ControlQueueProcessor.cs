using Microsoft.Extensions.Logging;
using VirtioGpuHost.Device.Contexts;
using VirtioGpuHost.Device.Wire;
using VirtioGpuHost.Virtio;

namespace VirtioGpuHost.Device.Queues;

/// <summary>
/// Drives the control queue: pop → execute → respond, in order (so fences complete in
/// order). Pauses while the display is busy, and while a command's answer is deferred: the
/// display's (GET_DISPLAY_INFO / GET_EDID through QEMU, with a timeout after which the device
/// answers from its own state) or the VMM's (MAP_BLOB / UNMAP_BLOB; the host-visible region
/// has its own timeout). <see cref="FinishInFlight"/> answers a waiting command at once, for
/// GET_VRING_BASE. At most <see cref="CommandsPerTurn"/> commands run before it yields to the
/// event loop, so a guest that keeps its ring full cannot starve the vhost-user messages (or
/// anything else) served by the same loop.
/// <para>
/// Fences a context signals later (a cross-domain POLL) do not stop the ring: such a response
/// is held, per fence timeline (global, or (ctx_id, ring_idx) with FLAG_INFO_RING_IDX), and
/// every later fenced response of that timeline is held behind it, so each timeline completes
/// in order while other commands and timelines go on (chains then return out of ring order,
/// which virtio allows without VIRTIO_F_IN_ORDER).
/// </para>
/// <para>
/// With a <see cref="CommandBudget"/> (the fairness policy of an untrusted VM), a connection that
/// used its slice's commands or copied bytes stops until the next slice (a timer on its loop),
/// however full it keeps its ring.
/// </para>
/// </summary>
public sealed class ControlQueueProcessor(GpuDevice device, IGpuQueue queue, IGpuScheduler scheduler, ILogger logger, TimeSpan displayTimeout, CommandBudget? commandBudget = null)
{
    public const int CommandsPerTurn = 64;

    private Pending? _pending;
    private readonly Dictionary<FenceTimeline, Queue<Held>> _held = new();
    private bool _waitingForIdle;
    private bool _yielded;
    private bool _throttled;
    private bool _running;
    private bool _abandoned;

    /// <summary>Responses written so far.</summary>
    public long Completed { get; private set; }

    public bool IsWaiting => _pending is not null || _waitingForIdle;

    /// <summary>Fenced responses held until their context signals (or an earlier fence of their timeline does).</summary>
    public int HeldFences => _held.Values.Sum(q => q.Count);

    /// <summary>Processes what is available (call on every kick).</summary>
    public void Process()
    {
        if (_running || _pending is not null || _waitingForIdle || _yielded || _throttled || _abandoned) return;
        _running = true;
        int budget = CommandsPerTurn;
        try
        {
            while (queue.IsReady && !_abandoned)
            {
                if (budget-- == 0)
                {
                    _yielded = true;
                    scheduler.Post(() =>
                    {
                        _yielded = false;
                        Process();
                    });
                    return;
                }
                if (device.Display.IsBusy)
                {
                    _waitingForIdle = true;
                    device.Display.WhenIdle(() => scheduler.Post(() =>
                    {
                        _waitingForIdle = false;
                        Process();
                    }));
                    return;
                }
                if (commandBudget is not null && commandBudget.Check(device.ScanoutBytesCopied) is var wait && wait > TimeSpan.Zero)
                {
                    _throttled = true;
                    scheduler.Schedule(wait, () =>
                    {
                        _throttled = false;
                        Process();
                    });
                    return;
                }
                if (!queue.TryPop(out var chain, out var error))
                {
                    if (error != QueueError.None)
                    {
                        logger.LogError("{Conn}: control queue failed: {Error}; it stops until the driver resets the device", device.Name, error);
                        queue.Failed(error);
                        return;
                    }
                    if (queue.RecheckAfterEmpty()) continue;
                    return;
                }
                commandBudget?.Count();
                var request = ReadRequest(chain!);
                var response = request is null
                    ? GpuResponse.Error(VirtioGpuCtrlType.ErrUnspec)
                    : device.Execute(request);
                if (response.Deferred is { } deferred)
                {
                    var pending = new Pending(chain!, request!, deferred);
                    _pending = pending;
                    if (deferred.WaitsForDisplay)
                        pending.Timeout = scheduler.Schedule(displayTimeout, () => Resume(pending, timedOut: true));
                    deferred.Reply.ContinueWith(_ => scheduler.Post(() => Resume(pending, timedOut: false)), TaskScheduler.Default);
                    return;
                }
                if (request is { Header.HasFence: true } && (response.Fence is not null || _held.ContainsKey(FenceTimeline.Of(request.Header))))
                {
                    Hold(chain!, request, response);
                    continue;
                }
                Respond(chain!, request, response);
            }
        }
        finally
        {
            _running = false;
        }
    }

    /// <summary>
    /// Stops for good without answering anything more (device reset: the ring is being torn
    /// down, and a late display reply must not land in the ring of a restarted device).
    /// </summary>
    public void Abandon()
    {
        _abandoned = true;
        _held.Clear();
        _pending?.Timeout?.Dispose();
        _pending = null;
    }

    /// <summary>
    /// The ring stops: answers a command that waits (display: from the device's own state; a blob
    /// map: ERR_UNSPEC), and every held fenced response (ERR_UNSPEC for fences not signalled yet:
    /// the guest must not wait for a ring that is gone; a late signal then finds nothing).
    /// </summary>
    public void FinishInFlight()
    {
        if (_pending is { } p)
        {
            _pending = null;
            p.Timeout?.Dispose();
            Respond(p.Chain, p.Request, p.Deferred.Reply.IsCompleted ? p.Deferred.Complete() : p.Deferred.Fallback());
        }
        int unsignalled = 0;
        foreach (var queue in _held.Values)
        {
            foreach (var h in queue)
            {
                bool done = h.Response.Fence is not { } f || f.Signalled.IsCompleted;
                if (!done) unsignalled++;
                Respond(h.Chain, h.Request, done ? h.Response : GpuResponse.Error(VirtioGpuCtrlType.ErrUnspec));
            }
        }
        _held.Clear();
        if (unsignalled > 0)
            logger.LogInformation("{Conn}: control ring stopped with {Count} fences not signalled; answered ERR_UNSPEC", device.Name, unsignalled);
    }

    private void Hold(DescriptorChain chain, GpuRequest request, GpuResponse response)
    {
        var timeline = FenceTimeline.Of(request.Header);
        if (!_held.TryGetValue(timeline, out var queue)) _held[timeline] = queue = new();
        queue.Enqueue(new Held(chain, request, response));
        // Inline continuation: it only posts, so the release runs on the loop, never inside SignalFence.
        response.Fence?.Signalled.ContinueWith(_ => scheduler.Post(() => Release(timeline)), CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    /// <summary>Answers the held responses at the front of a timeline whose fences are signalled.</summary>
    private void Release(FenceTimeline timeline)
    {
        if (_abandoned || !_held.TryGetValue(timeline, out var queue)) return;
        while (queue.TryPeek(out var h) && (h.Response.Fence is not { } f || f.Signalled.IsCompleted))
        {
            queue.Dequeue();
            Respond(h.Chain, h.Request, h.Response);
        }
        if (queue.Count == 0) _held.Remove(timeline);
    }

    private void Resume(Pending p, bool timedOut)
    {
        if (_pending != p || _abandoned) return; // already answered, or the ring is gone
        _pending = null;
        p.Timeout?.Dispose();
        if (timedOut)
            logger.LogWarning("{Conn}: the display did not answer {Command} within {Timeout} ms; answering from the configured modes",
                device.Name, p.Request.Header.Type, displayTimeout.TotalMilliseconds);
        Respond(p.Chain, p.Request, timedOut ? p.Deferred.Fallback() : p.Deferred.Complete());
        Process();
    }

    private GpuRequest? ReadRequest(DescriptorChain chain)
    {
        int length = (int)Math.Min(chain.ReadableLength, (ulong)GpuRequest.MaxBytes);
        var bytes = new byte[length];
        if (chain.Read(queue.Memory, 0, bytes) != length)
        {
            device.Errors.Report("request", $"chain {chain.Head}: readable buffers are not in guest memory");
            return null;
        }
        return new GpuRequest(bytes, chain.ReadableLength);
    }

    private void Respond(DescriptorChain chain, GpuRequest? request, GpuResponse response)
    {
        var header = request?.Header ?? default;
        var bytes = response.Serialize(header);
        int written = chain.Write(queue.Memory, bytes);
        if (written < bytes.Length)
        {
            device.Errors.Report(request?.Header.Type.ToString() ?? "request",
                written < 0 ? $"chain {chain.Head}: response buffers are not in guest memory"
                            : $"chain {chain.Head}: response needs {bytes.Length} bytes, the driver gave {chain.WritableLength}");
            written = Math.Max(written, 0);
        }
        queue.Complete(chain.Head, (uint)written);
        Completed++;
    }

    private sealed record Held(DescriptorChain Chain, GpuRequest Request, GpuResponse Response);

    private sealed class Pending(DescriptorChain chain, GpuRequest request, DeferredResponse deferred)
    {
        public DescriptorChain Chain { get; } = chain;
        public GpuRequest Request { get; } = request;
        public DeferredResponse Deferred { get; } = deferred;
        public IDisposable? Timeout { get; set; }
    }
}
