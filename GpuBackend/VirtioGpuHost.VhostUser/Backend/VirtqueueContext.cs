using VirtioGpuHost.GuestMemory;
using VirtioGpuHost.Interop;
using VirtioGpuHost.Virtio;
using VirtioGpuHost.VhostUser.Wire;

namespace VirtioGpuHost.VhostUser.Backend;

/// <summary>
/// One ring as vhost-user sees it: the split queue plus its kick/call/err fds, the
/// front-end virtual ring addresses, and the started/enabled states (vhost-user.rst
/// "Ring states": every ring begins stopped and disabled).
/// </summary>
public sealed class VirtqueueContext
{
    private readonly Func<GuestMemoryMap> _memory;

    internal VirtqueueContext(int index, Func<GuestMemoryMap> memory)
    {
        Index = index;
        Queue = new SplitQueue(index);
        _memory = memory;
    }

    public int Index { get; }
    public SplitQueue Queue { get; }

    /// <summary>The front-end virtual ring addresses from SET_VRING_ADDR (translated on every bind).</summary>
    public VringAddress? Addresses { get; internal set; }

    public FdHandle? Kick { get; internal set; }
    public FdHandle? Call { get; internal set; }
    public FdHandle? Err { get; internal set; }

    public bool Started { get; internal set; }

    /// <summary>The device has been told (QueueStarted) about this start of the ring.</summary>
    internal bool DeviceStarted { get; set; }
    public bool Enabled { get; internal set; }

    /// <summary>Processing allowed: started, enabled, bound to memory and not failed.</summary>
    public bool IsReady => Started && Enabled && Queue.IsBound && Queue.Error == QueueError.None;

    public GuestMemoryMap Memory => _memory();

    /// <summary>Interrupts the driver if it wants an interrupt for what was just published.</summary>
    public void NotifyIfNeeded()
    {
        if (Call is not null && Queue.ShouldNotify()) EventFd.Signal(Call);
    }

    /// <summary>Tells the front-end the ring failed (the vring error fd).</summary>
    public void SignalError()
    {
        if (Err is not null) EventFd.Signal(Err);
    }

    internal void CloseFds()
    {
        Kick?.Dispose();
        Call?.Dispose();
        Err?.Dispose();
        Kick = Call = Err = null;
    }

    public override string ToString() => $"{Queue} started={Started} enabled={Enabled}";
}
