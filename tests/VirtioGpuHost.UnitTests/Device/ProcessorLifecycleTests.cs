using VirtioGpuHost.Device.Queues;
using VirtioGpuHost.Device.Wire;
using VirtioGpuHost.TestKit;

namespace VirtioGpuHost.UnitTests.Device;

/// <summary>Fairness budget, abandoning a processor on reset, and re-sending the cursor to a new display.</summary>
public class ProcessorLifecycleTests
{
    private static byte[] Bytes<T>(T v) where T : unmanaged => System.Runtime.InteropServices.MemoryMarshal.AsBytes(new ReadOnlySpan<T>(in v)).ToArray();

    [Fact]
    public void Process_ManyQueuedCommands_YieldsToTheLoopAfterItsBudget()
    {
        using var rig = DeviceRig.Create(queueSize: 256);
        var pending = new List<FrontEnd.PendingCommand>();
        for (int i = 0; i < 100; i++)
            pending.Add(rig.Driver.Queue(Bytes(new VirtioGpuCtrlHeader { Type = VirtioGpuCtrlType.GetDisplayInfo }), VirtioGpuResponseSizes.DisplayInfo));
        rig.ControlProcessor.Process();
        Assert.Equal(ControlQueueProcessor.CommandsPerTurn, rig.ControlProcessor.Completed);
        rig.Scheduler.RunPending(); // the loop comes back for the rest
        Assert.Equal(100, rig.ControlProcessor.Completed);
        foreach (var p in pending) Assert.Equal(VirtioGpuCtrlType.OkDisplayInfo, rig.Driver.Wait(p).Type);
    }

    [Fact]
    public void Abandon_WhileWaitingForTheDisplay_NeverAnswersTheRing()
    {
        using var rig = DeviceRig.Create();
        var reply = new TaskCompletionSource<byte[]?>();
        rig.Display.DisplayInfoQuery = () => reply.Task;
        rig.Driver.Queue(Bytes(new VirtioGpuCtrlHeader { Type = VirtioGpuCtrlType.GetDisplayInfo }), VirtioGpuResponseSizes.DisplayInfo);
        rig.ControlProcessor.Process();
        Assert.True(rig.ControlProcessor.IsWaiting);
        rig.ControlProcessor.Abandon();
        reply.SetResult(null);
        Thread.Sleep(50); // the reply's continuation posts to the scheduler from the thread pool
        rig.Scheduler.RunPending();
        rig.Scheduler.Advance(TimeSpan.FromSeconds(10));
        Assert.Equal(0, rig.ControlDriverQueue.ReadUsedIndex());
        Assert.Equal(0, rig.ControlProcessor.Completed);
    }

    [Fact]
    public void NewDisplay_GetsTheCursorAgain_IncludingHiddenState()
    {
        using var rig = DeviceRig.Create();
        var cur = FrontEnd.FrameBuffer.Allocate(rig.Ram, 64, 64, VirtioGpuFormat.B8G8R8A8Unorm, scattered: false);
        cur.Fill((x, y) => 0x80112233);
        rig.Driver.SetUpFrameBuffer(9, cur);
        rig.Driver.TransferToHost2D(9, new VirtioGpuRect(0, 0, 64, 64), 0);
        rig.Driver.UpdateCursor(0, 5, 6, 9, 1, 2);
        rig.Driver.MoveCursor(0, 40, 50, 9);

        var second = new FakeDisplay();
        rig.Device.Display = second;
        Assert.NotNull(second.Cursor);
        Assert.Equal((40u, 50u, 1u, 2u), (second.Cursor.Value.X, second.Cursor.Value.Y, second.Cursor.Value.HotX, second.Cursor.Value.HotY));
        Assert.Equal(0x80112233u, BitConverter.ToUInt32(second.Cursor.Value.Bgra, 0));

        rig.Driver.UpdateCursor(0, 0, 0, 0, 0, 0); // hide
        var third = new FakeDisplay();
        rig.Device.Display = third;
        Assert.Equal(false, third.CursorPosition?.Visible);
    }
}
