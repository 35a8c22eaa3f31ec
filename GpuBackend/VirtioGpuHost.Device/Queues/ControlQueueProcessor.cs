using Microsoft.Extensions.Logging;
using VirtioGpuHost.Device.Wire;
using VirtioGpuHost.Virtio;

namespace VirtioGpuHost.Device.Queues;

/// <summary>
/// Drives the control queue: pop → execute → respond, in order (so fences complete in
/// order). Pauses while the display is busy, and while a command waits for the display
/// (GET_DISPLAY_INFO / GET_EDID through QEMU), with a timeout after which the device
/// answers from its own state. <see cref="FinishInFlight"/> answers a waiting command at
/// once, for GET_VRING_BASE. At most <see cref="CommandsPerTurn"/> commands run before it
/// yields to the event loop, so a guest that keeps its ring full cannot starve the
/// vhost-user messages (or anything else) served by the same loop.
/// </summary>
public sealed class ControlQueueProcessor(GpuDevice device, IGpuQueue queue, IGpuScheduler scheduler, ILogger logger, TimeSpan displayTimeout)
{
    public const int CommandsPerTurn = 64;

    private Pending? _pending;
    private bool _waitingForIdle;
    private bool _yielded;
    private bool _running;
    private bool _abandoned;

    /// <summary>Responses written so far.</summary>
    public long Completed { get; private set; }

    public bool IsWaiting => _pending is not null || _waitingForIdle;

    /// <summary>Processes what is available (call on every kick).</summary>
    public void Process()
    {
        if (_running || _pending is not null || _waitingForIdle || _yielded || _abandoned) return;
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
                var request = ReadRequest(chain!);
                var response = request is null
                    ? GpuResponse.Error(VirtioGpuCtrlType.ErrUnspec)
                    : device.Execute(request);
                if (response.Deferred is { } deferred)
                {
                    var pending = new Pending(chain!, request!, deferred);
                    _pending = pending;
                    pending.Timeout = scheduler.Schedule(displayTimeout, () => Resume(pending, timedOut: true));
                    deferred.Reply.ContinueWith(_ => scheduler.Post(() => Resume(pending, timedOut: false)), TaskScheduler.Default);
                    return;
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
        _pending?.Timeout?.Dispose();
        _pending = null;
    }

    /// <summary>Answers a command that waits for the display now, from the device's own state.</summary>
    public void FinishInFlight()
    {
        if (_pending is not { } p) return;
        _pending = null;
        p.Timeout?.Dispose();
        Respond(p.Chain, p.Request, p.Deferred.Reply.IsCompletedSuccessfully ? p.Deferred.Complete() : p.Deferred.Fallback());
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

    private sealed class Pending(DescriptorChain chain, GpuRequest request, DeferredResponse deferred)
    {
        public DescriptorChain Chain { get; } = chain;
        public GpuRequest Request { get; } = request;
        public DeferredResponse Deferred { get; } = deferred;
        public IDisposable? Timeout { get; set; }
    }
}
