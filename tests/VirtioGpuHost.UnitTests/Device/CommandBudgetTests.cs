using VirtioGpuHost.Device;
using VirtioGpuHost.Device.Queues;
using VirtioGpuHost.Device.Wire;
using VirtioGpuHost.TestKit;
using static VirtioGpuHost.UnitTests.Device.DeviceTestHelpers;

namespace VirtioGpuHost.UnitTests.Device;

/// <summary>
/// The per-connection command budget (the fairness policy of an untrusted VM): the control queue
/// stops when a slice's commands or copied bytes are used up, and goes on at the next slice. Time
/// is the manual scheduler's (no real clock, no timing assertions).
/// </summary>
public class CommandBudgetTests
{
    private static byte[] Create(uint id) => Bytes(new VirtioGpuResourceCreate2D
    {
        Header = Header(VirtioGpuCtrlType.ResourceCreate2D), ResourceId = id, Format = VirtioGpuFormat.B8G8R8X8Unorm, Width = 4, Height = 4,
    });

    private static readonly TimeSpan Slice = TimeSpan.FromMilliseconds(10);

    private static ControlQueueProcessor Budgeted(DeviceRig rig, CommandBudgetLimits limits, out CommandBudget budget)
    {
        budget = new CommandBudget(limits, () => rig.Scheduler.Now);
        return new ControlQueueProcessor(rig.Device, rig.Control, rig.Scheduler, rig.Logs.CreateLogger("budget"), TimeSpan.FromSeconds(3), budget);
    }

    [Fact]
    public void CommandsPerSlice_RestWaitsForTheNextSlice()
    {
        using var rig = DeviceRig.Create();
        var processor = Budgeted(rig, new CommandBudgetLimits(4, 1UL << 30, Slice), out var budget);
        for (uint id = 1; id <= 10; id++) rig.Driver.Queue(Create(id));
        processor.Process(); // as a kick would
        rig.Scheduler.RunPending();
        Assert.Equal(4, rig.ControlDriverQueue.ReadUsedIndex());
        processor.Process(); // another kick while throttled changes nothing
        rig.Scheduler.Advance(Slice - TimeSpan.FromMilliseconds(1));
        Assert.Equal(4, rig.ControlDriverQueue.ReadUsedIndex());
        rig.Scheduler.Advance(TimeSpan.FromMilliseconds(1));
        Assert.Equal(8, rig.ControlDriverQueue.ReadUsedIndex());
        rig.Scheduler.Advance(Slice);
        Assert.Equal(10, rig.ControlDriverQueue.ReadUsedIndex());
        Assert.Equal(10, rig.Device.Resources.Count);
        Assert.Equal(2, budget.Throttled);
    }

    [Fact]
    public void BytesCopiedPerSlice_LargeCopiesAreDebtPaidFromLaterSlices()
    {
        using var rig = DeviceRig.Create();
        var fb = rig.NewFrameBuffer(1, 64, 64, scanout: 0); // 16 KiB; set up without a budget
        var processor = Budgeted(rig, new CommandBudgetLimits(1000, 20 << 10, Slice), out _);
        int before = rig.ControlDriverQueue.ReadUsedIndex();
        ulong copied0 = rig.Device.ScanoutBytesCopied;
        for (int i = 0; i < 4; i++) rig.Driver.Queue(Bytes(rig.Driver.TransferCommand(1, new VirtioGpuRect(0, 0, 64, 64), 0)));
        processor.Process();
        rig.Scheduler.RunPending();
        // 0 and 16 KiB charged before the first two: both run; 32 KiB is over 20 KiB: the third waits.
        Assert.Equal(before + 2, rig.ControlDriverQueue.ReadUsedIndex());
        Assert.Equal(32UL << 10, rig.Device.ScanoutBytesCopied - copied0);
        rig.Scheduler.Advance(Slice); // 12 KiB of debt left: one more runs (28 KiB), then it waits again
        Assert.Equal(before + 3, rig.ControlDriverQueue.ReadUsedIndex());
        rig.Scheduler.Advance(Slice);
        Assert.Equal(before + 4, rig.ControlDriverQueue.ReadUsedIndex());
        Assert.Equal(64UL << 10, rig.Device.ScanoutBytesCopied - copied0);
        GC.KeepAlive(fb);
    }

    [Fact]
    public void Limits_AreValidated()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new CommandBudget(new CommandBudgetLimits(0, 1, Slice)));
        Assert.Throws<ArgumentOutOfRangeException>(() => new CommandBudget(new CommandBudgetLimits(1, 0, Slice)));
        Assert.Throws<ArgumentOutOfRangeException>(() => new CommandBudget(new CommandBudgetLimits(1, 1, TimeSpan.Zero)));
    }
}
