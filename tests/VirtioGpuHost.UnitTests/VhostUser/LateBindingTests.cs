using VirtioGpuHost.Device.Wire;
using VirtioGpuHost.VhostUser.Wire;

namespace VirtioGpuHost.UnitTests.VhostUser;

/// <summary>Rings that get their kick fd before they can be bound, and kick fds replaced on a running ring.</summary>
public class LateBindingTests
{
    [Fact]
    public void Ring_KickedBeforeMemoryTable_IsProcessedOnceTheMemoryArrives()
    {
        using var rig = ConnectionRig.StartGpu();
        rig.Negotiate();
        using var vm = new RawVm(rig.FrontEnd);
        vm.SetFeatures();
        vm.SetUpRing(0); // kick fd and enable before any guest memory exists
        var p = vm.Driver.Queue(RingLifecycleTests.DisplayInfoCommand(), VirtioGpuResponseSizes.DisplayInfo);
        vm.Driver.KickControl();
        vm.SetMemTable();
        Assert.Equal(VirtioGpuCtrlType.OkDisplayInfo, vm.Driver.Wait(p).Type);
    }

    [Fact]
    public void Ring_KickedBeforeItsAddress_IsProcessedOnceTheAddressArrives()
    {
        using var rig = ConnectionRig.StartGpu();
        rig.Negotiate();
        using var vm = new RawVm(rig.FrontEnd);
        vm.SetFeatures();
        vm.SetMemTable();
        var fe = rig.FrontEnd;
        Assert.True(fe.SetVringNum(0, vm.Control.Size));
        Assert.True(fe.SetVringBase(0, 0));
        Assert.True(fe.SetVringFd(VhostUserRequest.SetVringCall, 0, vm.Call[0]));
        Assert.True(fe.SetVringFd(VhostUserRequest.SetVringKick, 0, vm.Kick[0]));
        Assert.True(fe.SetVringEnable(0, true));
        var p = vm.Driver.Queue(RingLifecycleTests.DisplayInfoCommand(), VirtioGpuResponseSizes.DisplayInfo);
        vm.Driver.KickControl();
        Assert.True(fe.SetVringAddr(vm.Address(0)));
        Assert.Equal(VirtioGpuCtrlType.OkDisplayInfo, vm.Driver.Wait(p).Type);
    }

    [Fact]
    public void SecondKickFd_OnARunningRing_KeepsResourcesAndServesTheNewFd()
    {
        using var rig = ConnectionRig.StartGpu();
        rig.Negotiate();
        using var vm = new RawVm(rig.FrontEnd);
        vm.Start();
        GpuDriverExpectOk(vm.Driver.CreateResource2D(1, VirtioGpuFormat.B8G8R8X8Unorm, 16, 16));
        using var newKick = VirtioGpuHost.Interop.EventFd.Create();
        Assert.True(rig.FrontEnd.SetVringFd(VhostUserRequest.SetVringKick, 0, newKick));
        vm.Kick[0].Dispose();
        vm.Kick[0] = newKick.Duplicate();
        // Resource 1 still exists (the ring was not restarted), and the new fd kicks the ring.
        Assert.Equal(VirtioGpuCtrlType.ErrInvalidResourceId, vm.Driver.CreateResource2D(1, VirtioGpuFormat.B8G8R8X8Unorm, 16, 16).Type);
    }

    private static void GpuDriverExpectOk(FrontEnd.GpuReply r) => Assert.Equal(VirtioGpuCtrlType.OkNoData, r.Type);
}
