using VirtioGpuHost.Interop;

namespace VirtioGpuHost.FrontEnd;

/// <summary>How the driver notifies the device and waits for its interrupts.</summary>
public interface IVirtqueueNotifier
{
    /// <summary>Tells the device that <paramref name="queue"/> has new buffers.</summary>
    void Kick(DriverQueue queue);

    /// <summary>Waits up to <paramref name="timeoutMs"/> for an interrupt of <paramref name="queue"/> (may return early).</summary>
    void WaitForInterrupt(DriverQueue queue, int timeoutMs);
}

/// <summary>Kick and call eventfds, as a VMM wires them to a vhost-user back-end.</summary>
public sealed class EventFdNotifier(Func<int, FdHandle?> kick, Func<int, FdHandle?> call) : IVirtqueueNotifier
{
    public void Kick(DriverQueue queue)
    {
        if (kick(queue.Index) is { } fd) EventFd.Signal(fd);
    }

    public void WaitForInterrupt(DriverQueue queue, int timeoutMs)
    {
        var fd = call(queue.Index);
        if (fd is null) Thread.Sleep(1);
        else if (Poller.WaitReadable(fd, timeoutMs)) EventFd.Drain(fd);
    }
}
