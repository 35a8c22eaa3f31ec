using VirtioGpuHost.Device.Wire;
using VirtioGpuHost.Interop;
using VirtioGpuHost.Virtio;
using VirtioGpuHost.VhostUser.Display;
using VirtioGpuHost.VhostUser.Wire;

namespace VirtioGpuHost.UnitTests.VhostUser;

/// <summary>
/// Ring states (vhost-user.rst "Ring states"): a ring is processed only once started (kick
/// fd) and enabled; GET_VRING_BASE stops it after finishing what is in flight; a restart at
/// index 0 after the ring moved is a device reset, a restart where it stopped is a resume.
/// </summary>
public class RingLifecycleTests
{
    private static readonly TimeSpan Settle = TimeSpan.FromMilliseconds(200);

    /// <summary>Gives the back-end a moment, then a round trip, so that work it should not do would have been done.</summary>
    private static void SettleAndSync(ConnectionRig rig)
    {
        Thread.Sleep(Settle);
        rig.AssertAlive();
    }

    [Fact]
    public void Ring_KickedBeforeEnable_IsProcessedOnlyOnceEnabled()
    {
        var device = new RecordingDevice();
        using var rig = ConnectionRig.Start(device);
        rig.Negotiate();
        using var vm = new RawVm(rig.FrontEnd);
        vm.SetFeatures(RawVm.DefaultFeatures & ~VirtioFeatures.EventIdx);
        vm.SetMemTable();
        vm.SetUpRing(0, enable: false);
        Assert.Contains("started 0", device.Calls);
        vm.Driver.Queue(new byte[24]);
        vm.Driver.KickControl();
        SettleAndSync(rig);
        Assert.DoesNotContain("kicked 0", device.Calls);
        Assert.Equal(0, vm.Control.ReadUsedIndex());
        Assert.True(rig.FrontEnd.SetVringEnable(0, true));
        Assert.True(vm.WaitForUsed(0, 1, TimeSpan.FromSeconds(10)), "the enabled ring was not processed");
    }

    [Fact]
    public void GpuRing_EnabledButWithoutKickFd_IsProcessedOnlyOnceTheKickFdArrives()
    {
        using var rig = ConnectionRig.StartGpu();
        rig.Negotiate();
        using var vm = new RawVm(rig.FrontEnd);
        vm.SetFeatures();
        vm.SetMemTable();
        vm.SetUpRing(0, kick: false, enable: true);
        var p = vm.Driver.Queue(DisplayInfoCommand(), VirtioGpuResponseSizes.DisplayInfo);
        SettleAndSync(rig);
        Assert.Equal(0, vm.Control.ReadUsedIndex());
        Assert.True(rig.FrontEnd.SetVringFd(VhostUserRequest.SetVringKick, 0, vm.Kick[0]));
        Assert.Equal(VirtioGpuCtrlType.OkDisplayInfo, vm.Driver.Wait(p).Type);
    }

    [Fact]
    public void GpuRing_DisabledUntilEnabled_WorkQueuedMeanwhileIsProcessedOnEnable()
    {
        using var rig = ConnectionRig.StartGpu();
        rig.Negotiate();
        using var vm = new RawVm(rig.FrontEnd);
        vm.SetFeatures();
        vm.SetMemTable();
        vm.SetUpRing(0, kick: true, enable: false);
        var p = vm.Driver.Queue(DisplayInfoCommand(), VirtioGpuResponseSizes.DisplayInfo);
        vm.Driver.KickControl();
        SettleAndSync(rig);
        Assert.Equal(0, vm.Control.ReadUsedIndex());
        Assert.True(rig.FrontEnd.SetVringEnable(0, true));
        Assert.Equal(VirtioGpuCtrlType.OkDisplayInfo, vm.Driver.Wait(p).Type);
    }

    [Fact]
    public void SetFeatures_WithoutProtocolFeaturesBit_EnablesTheRingsAtOnce()
    {
        using var rig = ConnectionRig.StartGpu();
        rig.FrontEnd.GetFeatures();
        using var vm = new RawVm(rig.FrontEnd);
        vm.SetFeatures(VirtioFeatures.Version1); // no bit 30: no SET_VRING_ENABLE will come
        vm.SetMemTable();
        vm.SetUpRing(0, enable: false);
        vm.SetUpRing(1, enable: false);
        Assert.Equal(VirtioGpuCtrlType.OkDisplayInfo, vm.Driver.GetDisplayInfo().Type);
        vm.Driver.MoveCursor(0, 1, 1, 0); // the cursor ring too
    }

    [Fact]
    public void SetFeatures_WithProtocolFeaturesBit_RingsWaitForEnable()
    {
        using var rig = ConnectionRig.StartGpu();
        rig.Negotiate();
        using var vm = new RawVm(rig.FrontEnd);
        vm.SetFeatures();
        vm.SetMemTable();
        vm.SetUpRing(0, enable: false);
        vm.Driver.Queue(DisplayInfoCommand(), VirtioGpuResponseSizes.DisplayInfo);
        vm.Driver.KickControl();
        SettleAndSync(rig);
        Assert.Equal(0, vm.Control.ReadUsedIndex());
    }

    [Fact]
    public void GetVringBase_StartedRing_StopsItAndReturnsTheNextAvailIndex()
    {
        var device = new RecordingDevice();
        using var rig = ConnectionRig.Start(device);
        rig.Negotiate();
        using var vm = new RawVm(rig.FrontEnd);
        vm.Start(RawVm.DefaultFeatures & ~VirtioFeatures.EventIdx);
        for (int i = 0; i < 3; i++) vm.Driver.Queue(new byte[24]);
        vm.Driver.KickControl();
        Assert.True(vm.WaitForUsed(0, 3, TimeSpan.FromSeconds(10)));
        Assert.Equal(3u, rig.FrontEnd.GetVringBase(0));
        Assert.Contains("stopping 0", device.Calls);
        // A stopped ring is never touched again, kicked or not.
        vm.Driver.Queue(new byte[24]);
        vm.Driver.KickControl();
        SettleAndSync(rig);
        Assert.Equal(3, vm.Control.ReadUsedIndex());
        Assert.Equal(3, device.ChainsCompleted);
    }

    [Fact]
    public void GetVringBase_RingNeverStarted_ReturnsTheBaseThatWasSet()
    {
        var device = new RecordingDevice();
        using var rig = ConnectionRig.Start(device);
        rig.Negotiate();
        Assert.True(rig.FrontEnd.SetVringBase(1, 7));
        Assert.Equal(7u, rig.FrontEnd.GetVringBase(1));
        Assert.DoesNotContain("stopping 1", device.Calls);
    }

    [Fact]
    public void GetVringBase_WhileACommandWaitsForTheDisplay_AnswersThatCommandFirst()
    {
        using var rig = ConnectionRig.StartGpu();
        rig.Negotiate();
        using var vm = new RawVm(rig.FrontEnd);
        vm.Start();
        using var display = new ScriptedDisplay();
        display.HandOver(rig.FrontEnd);
        display.Negotiate();
        var p = vm.Driver.Queue(DisplayInfoCommand(), VirtioGpuResponseSizes.DisplayInfo);
        vm.Driver.KickControl();
        // The command is now waiting for the display, which never answers.
        Assert.Equal(GpuDisplayRequest.GetDisplayInfo, display.ReadUntil(GpuDisplayRequest.GetDisplayInfo).Request);
        Assert.True(rig.FrontEnd.SetVringEnable(0, false));
        Assert.Equal(1u, rig.FrontEnd.GetVringBase(0));
        // By the time GET_VRING_BASE is answered the command has its response.
        Assert.Equal(1, vm.Control.ReadUsedIndex());
        var r = vm.Driver.Wait(p);
        Assert.Equal(VirtioGpuCtrlType.OkDisplayInfo, r.Type);
        var modes = VirtioGpuHost.FrontEnd.GpuDriver.ParseDisplayInfo(r);
        Assert.Equal((1280u, 800u, 1u), (modes[0].Rect.Width, modes[0].Rect.Height, modes[0].Enabled)); // the device's own modes
    }

    [Fact]
    public void Restart_AtTheIndexWhereTheRingStopped_KeepsTheResources()
    {
        using var rig = ConnectionRig.StartGpu();
        rig.Negotiate();
        using var vm = new RawVm(rig.FrontEnd);
        vm.Start();
        Assert.Equal(VirtioGpuCtrlType.OkNoData, vm.Driver.CreateResource2D(1, VirtioGpuFormat.B8G8R8X8Unorm, 64, 64).Type);
        // VM paused: rings stopped; resumed: restarted where they stopped.
        Assert.True(rig.FrontEnd.SetVringEnable(0, false));
        uint stoppedAt = rig.FrontEnd.GetVringBase(0);
        Assert.Equal(1u, stoppedAt);
        vm.SetUpRing(0, baseIndex: stoppedAt);
        Assert.Equal(VirtioGpuCtrlType.OkNoData, vm.Driver.Flush(1, new VirtioGpuRect(0, 0, 64, 64)).Type);
        Assert.Equal(1, rig.OnLoop(() => rig.Gpu.Gpu.Resources.Count));
    }

    [Fact]
    public void Restart_FromZeroAfterTheRingMoved_ResetsTheDevice()
    {
        using var rig = ConnectionRig.StartGpu();
        rig.Negotiate();
        using var vm = new RawVm(rig.FrontEnd);
        vm.Start();
        Assert.Equal(VirtioGpuCtrlType.OkNoData, vm.Driver.CreateResource2D(1, VirtioGpuFormat.B8G8R8X8Unorm, 64, 64).Type);
        Assert.True(rig.FrontEnd.SetVringEnable(0, false));
        Assert.Equal(1u, rig.FrontEnd.GetVringBase(0));
        // The guest reset the device: its driver starts the ring over from 0.
        vm.Control.Reset();
        vm.SetUpRing(0, baseIndex: 0);
        Assert.Equal(VirtioGpuCtrlType.ErrInvalidResourceId, vm.Driver.Flush(1, new VirtioGpuRect(0, 0, 64, 64)).Type);
        rig.AssertLogged(rig.Name, "restarted from 0");
        Assert.Equal(0, rig.OnLoop(() => rig.Gpu.Gpu.Resources.Count));
    }

    [Fact]
    public void ResetDevice_StopsRingsAndDropsResources_AndTheDeviceCanStartAgain()
    {
        using var rig = ConnectionRig.StartGpu();
        rig.Negotiate();
        using var vm = new RawVm(rig.FrontEnd);
        vm.Start();
        Assert.Equal(VirtioGpuCtrlType.OkNoData, vm.Driver.CreateResource2D(1, VirtioGpuFormat.B8G8R8X8Unorm, 64, 64).Type);
        Assert.True(rig.FrontEnd.ResetDevice());
        Assert.Equal(0, rig.OnLoop(() => rig.Gpu.Gpu.Resources.Count));
        vm.Control.Reset();
        vm.Cursor.Reset();
        vm.SetFeatures();
        vm.SetUpRing(0);
        vm.SetUpRing(1);
        Assert.Equal(VirtioGpuCtrlType.ErrInvalidResourceId, vm.Driver.Flush(1, new VirtioGpuRect(0, 0, 64, 64)).Type);
        Assert.Equal(VirtioGpuCtrlType.OkNoData, vm.Driver.CreateResource2D(1, VirtioGpuFormat.B8G8R8X8Unorm, 64, 64).Type);
    }

    [Fact]
    public void ResetDevice_WithWorkQueuedButNotKicked_NeverTouchesTheRing()
    {
        using var rig = ConnectionRig.StartGpu();
        rig.Negotiate();
        using var vm = new RawVm(rig.FrontEnd);
        vm.Start();
        using var display = new ScriptedDisplay();
        display.HandOver(rig.FrontEnd);
        display.Negotiate();
        // The driver wrote a command but reset the device instead of kicking.
        vm.Driver.Queue(DisplayInfoCommand(), VirtioGpuResponseSizes.DisplayInfo);
        Assert.True(rig.FrontEnd.ResetDevice());
        SettleAndSync(rig);
        Assert.Equal(0, vm.Control.ReadUsedIndex());
    }

    [Fact]
    public void Ring_CorruptAvailEntry_FailsTheRingAndSignalsErr()
    {
        using var rig = ConnectionRig.StartGpu();
        rig.Negotiate();
        using var vm = new RawVm(rig.FrontEnd);
        vm.Start();
        Assert.Equal(VirtioGpuCtrlType.OkDisplayInfo, vm.Driver.GetDisplayInfo().Type);
        vm.Control.PublishHead(999); // a head beyond the 64-entry table
        vm.Driver.KickControl();
        Assert.True(Poller.WaitReadable(vm.Err[0], 10_000), "the err eventfd was not signalled");
        rig.AssertAlive();
        // The cursor ring is independent and still works.
        vm.Driver.MoveCursor(0, 1, 1, 0);
    }

    [Fact]
    public void CursorRing_UpdateCursor_ChainComesBack()
    {
        using var rig = ConnectionRig.StartGpu();
        rig.Negotiate();
        using var vm = new RawVm(rig.FrontEnd);
        vm.Start();
        vm.Driver.MoveCursor(0, 10, 10, 0);
        Assert.Equal(1, vm.Cursor.ReadUsedIndex());
    }

    [Fact]
    public void Kick_ManyTimesWithoutWork_DoesNothingHarmful()
    {
        using var rig = ConnectionRig.StartGpu();
        rig.Negotiate();
        using var vm = new RawVm(rig.FrontEnd);
        vm.Start();
        for (int i = 0; i < 1000; i++) EventFd.Signal(vm.Kick[0]);
        rig.AssertAlive();
        Assert.Equal(VirtioGpuCtrlType.OkDisplayInfo, vm.Driver.GetDisplayInfo().Type);
        Assert.Equal(1, vm.Control.ReadUsedIndex());
    }

    internal static byte[] DisplayInfoCommand()
    {
        var c = new byte[VirtioGpuCtrlHeader.Size];
        BitConverter.TryWriteBytes(c, (uint)VirtioGpuCtrlType.GetDisplayInfo);
        return c;
    }
}
