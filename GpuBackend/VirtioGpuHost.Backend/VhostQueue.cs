using VirtioGpuHost.Device.Queues;
using VirtioGpuHost.GuestMemory;
using VirtioGpuHost.Virtio;
using VirtioGpuHost.VhostUser.Backend;

namespace VirtioGpuHost.Backend;

/// <summary>
/// A vhost-user ring as the GPU queue processors see it. <paramref name="held"/>, when given,
/// makes the ring look not ready while it returns true (the processor stops before its next chain).
/// </summary>
internal sealed class VhostQueue(VirtqueueContext context, Func<bool>? held = null) : IGpuQueue
{
    public IGuestMemory Memory => context.Memory;
    public bool IsReady => context.IsReady && !(held?.Invoke() ?? false);
    public bool TryPop(out DescriptorChain? chain, out QueueError error) => context.Queue.TryPop(out chain, out error);

    public void Complete(ushort head, uint written)
    {
        context.Queue.AddUsed(head, written);
        context.NotifyIfNeeded();
    }

    public bool RecheckAfterEmpty() => context.Queue.EnableNotificationAndRecheck();

    public void Failed(QueueError error) => context.SignalError();
}

/// <summary>The connection's event loop as the GPU device's scheduler.</summary>
internal sealed class LoopScheduler(VirtioGpuHost.VhostUser.Transport.EventLoop loop) : IGpuScheduler
{
    public void Post(Action action) => loop.Post(action);
    public IDisposable Schedule(TimeSpan delay, Action action) => loop.Schedule(delay, action);
}
