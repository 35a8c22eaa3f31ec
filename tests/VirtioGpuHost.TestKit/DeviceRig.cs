using Microsoft.Extensions.Logging;
using VirtioGpuHost.Device;
using VirtioGpuHost.Device.Queues;
using VirtioGpuHost.FrontEnd;
using VirtioGpuHost.GuestMemory;
using VirtioGpuHost.Virtio;

namespace VirtioGpuHost.TestKit;

/// <summary>
/// The virtio-gpu device in-process, with no sockets: fake guest RAM (native memory), the
/// real split queues bound to it, the real queue processors, and the reference driver
/// writing real descriptor chains. A kick runs the processor synchronously.
/// </summary>
public sealed class DeviceRig : IDisposable
{
    private DeviceRig(GpuDeviceOptions options, ulong ramSize, bool eventIdx, bool indirect, ushort queueSize, bool sharedRam)
    {
        Ram = sharedRam ? GuestRam.CreateShared(ramSize) : GuestRam.CreateLocal(ramSize);
        Logs = new ListLoggerProvider();
        var logger = Logs.CreateLogger("rig");
        Display = new FakeDisplay();
        Device = new GpuDevice(options, logger, "vm-test", () => MemoryOverride ?? Ram.Memory) { Display = Display };
        Device.AcknowledgeFeatures(Device.OfferedFeatures);
        ControlDriverQueue = new DriverQueue(Ram, 0, queueSize);
        CursorDriverQueue = new DriverQueue(Ram, 1, 16);
        ControlQueue = MakeQueue(ControlDriverQueue, eventIdx, indirect);
        CursorQueue = MakeQueue(CursorDriverQueue, eventIdx, indirect);
        Scheduler = new ManualScheduler();
        Control = new QueueAdapter(ControlQueue, Ram.Memory);
        Cursor = new QueueAdapter(CursorQueue, Ram.Memory);
        ControlProcessor = new ControlQueueProcessor(Device, Control, Scheduler, logger, TimeSpan.FromSeconds(3));
        CursorProcessor = new CursorQueueProcessor(Device, Cursor, logger);
        Driver = new GpuDriver(Ram, ControlDriverQueue, CursorDriverQueue, new InlineNotifier(this)) { UseIndirect = indirect, Timeout = TimeSpan.FromSeconds(2) };
    }

    /// <param name="sharedRam">Guest RAM in a memfd (its region has an fd, as with a real VMM: blobs in it can be mapped).</param>
    public static DeviceRig Create(GpuDeviceOptions? options = null, ulong ramSize = 32UL << 20, bool eventIdx = true, bool indirect = false, ushort queueSize = 64, bool sharedRam = false) =>
        new(options ?? new GpuDeviceOptions(), ramSize, eventIdx, indirect, queueSize, sharedRam);

    /// <summary>
    /// What the device sees as guest memory instead of <see cref="Ram"/>'s snapshot (a new memory
    /// table: the queues keep using the old one). The test owns and disposes it.
    /// </summary>
    public GuestMemoryMap? MemoryOverride { get; set; }

    public GuestRam Ram { get; }
    public GpuDevice Device { get; }
    public FakeDisplay Display { get; }
    public ListLoggerProvider Logs { get; }
    public DriverQueue ControlDriverQueue { get; }
    public DriverQueue CursorDriverQueue { get; }
    public SplitQueue ControlQueue { get; }
    public SplitQueue CursorQueue { get; }
    public QueueAdapter Control { get; }
    public QueueAdapter Cursor { get; }
    public ManualScheduler Scheduler { get; }
    public ControlQueueProcessor ControlProcessor { get; }
    public CursorQueueProcessor CursorProcessor { get; }
    public GpuDriver Driver { get; }

    private SplitQueue MakeQueue(DriverQueue dq, bool eventIdx, bool indirect)
    {
        var q = new SplitQueue(dq.Index) { EventIdx = eventIdx, IndirectDescriptors = indirect };
        q.SetSize(dq.Size);
        q.SetAddresses(dq.Descriptors, dq.Avail, dq.Used);
        if (!q.Bind(Ram.Memory)) throw new InvalidOperationException("queue did not bind");
        return q;
    }

    public void Dispose()
    {
        Device.Dispose();
        Ram.Dispose();
    }

    /// <summary>Kick = run the processor now; waiting = run what the processor posted.</summary>
    private sealed class InlineNotifier(DeviceRig rig) : IVirtqueueNotifier
    {
        public void Kick(DriverQueue queue)
        {
            if (queue.Index == 0) rig.ControlProcessor.Process();
            else rig.CursorProcessor.Process();
        }

        public void WaitForInterrupt(DriverQueue queue, int timeoutMs)
        {
            if (rig.Scheduler.RunPending() == 0) Thread.Sleep(Math.Min(timeoutMs, 5));
        }
    }
}

/// <summary>A split queue as the processors use it, counting interrupts and failures.</summary>
public sealed class QueueAdapter(SplitQueue queue, GuestMemoryMap memory) : IGpuQueue
{
    public int Interrupts { get; private set; }
    public List<QueueError> Failures { get; } = new();
    public IGuestMemory Memory => memory;
    public bool IsReady => queue.IsBound && queue.Error == QueueError.None;
    public bool TryPop(out DescriptorChain? chain, out QueueError error) => queue.TryPop(out chain, out error);

    public void Complete(ushort head, uint written)
    {
        queue.AddUsed(head, written);
        if (queue.ShouldNotify()) Interrupts++;
    }

    public bool RecheckAfterEmpty() => queue.EnableNotificationAndRecheck();
    public void Failed(QueueError error) => Failures.Add(error);
}
