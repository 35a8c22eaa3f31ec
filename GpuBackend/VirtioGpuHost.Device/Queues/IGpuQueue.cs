using VirtioGpuHost.GuestMemory;
using VirtioGpuHost.Virtio;

namespace VirtioGpuHost.Device.Queues;

/// <summary>
/// A virtqueue as the GPU's queue processors use it: pop chains, complete them (used
/// ring + interrupt), report a broken ring. The vhost-user back-end and the in-process
/// tests provide it.
/// </summary>
public interface IGpuQueue
{
    /// <summary>The guest memory the chains point into.</summary>
    IGuestMemory Memory { get; }

    /// <summary>Started, enabled and not failed.</summary>
    bool IsReady { get; }

    bool TryPop(out DescriptorChain? chain, out QueueError error);

    /// <summary>
    /// Publishes the used element and interrupts the driver if it asked for it (per command, as
    /// QEMU does: measured against one interrupt per batch, a serial guest was faster this way).
    /// </summary>
    void Complete(ushort head, uint written);

    /// <summary>After the queue looked empty: re-arm notifications and report whether more work arrived.</summary>
    bool RecheckAfterEmpty();

    /// <summary>The ring is broken (the error fd tells the front-end).</summary>
    void Failed(QueueError error);
}

/// <summary>Runs work on the device's event loop (posted actions and timers).</summary>
public interface IGpuScheduler
{
    void Post(Action action);
    IDisposable Schedule(TimeSpan delay, Action action);
}
