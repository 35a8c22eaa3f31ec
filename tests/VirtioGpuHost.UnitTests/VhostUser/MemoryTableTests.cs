using System.Runtime.InteropServices;
using VirtioGpuHost.Device.Wire;
using VirtioGpuHost.Interop;
using VirtioGpuHost.VhostUser.Wire;

namespace VirtioGpuHost.UnitTests.VhostUser;

/// <summary>
/// SET_MEM_TABLE, ADD_MEM_REG and REM_MEM_REG with hostile regions, and rings placed where
/// guest memory is not: refused with a log line, nothing stays mapped, no fd leaks, and a
/// ring that cannot be reached fails with its err eventfd signalled.
/// </summary>
[Collection(ProcessWideCollection.Name)]
public class MemoryTableTests
{
    private static ConnectionRig Connect()
    {
        var rig = ConnectionRig.StartGpu();
        rig.Negotiate();
        return rig;
    }

    private static bool AddMemReg(ConnectionRig rig, MemoryRegionDescriptor d, NamedMemFd m)
    {
        using var fd = m.Fd.Duplicate();
        return rig.FrontEnd.AddMemReg(d, fd);
    }

    [Fact]
    public void AddMemReg_OverlappingAnExistingRegion_IsRefusedAndNotMapped()
    {
        int fds = ProcessResources.OpenFds();
        using (var rig = Connect())
        using (var a = new NamedMemFd("vgh-mt-ovl-a"))
        using (var b = new NamedMemFd("vgh-mt-ovl-b"))
        {
            Assert.True(AddMemReg(rig, a.Region(0), a));
            Assert.False(AddMemReg(rig, b.Region(0x80000), b));
            rig.AssertLogged(rig.Name, "AddMemReg", "overlap");
            Assert.Equal((1, 0), (a.Mappings, b.Mappings));
            // The same region twice overlaps itself.
            Assert.False(AddMemReg(rig, a.Region(0), a));
            Assert.Equal(1, a.Mappings);
            rig.AssertAlive();
        }
        ProcessResources.AssertFdsBackTo(fds, "after the connection ended");
    }

    [Fact]
    public void AddMemReg_OverlappingInFrontEndAddresses_IsRefused()
    {
        using var rig = Connect();
        using var a = new NamedMemFd("vgh-mt-uovl-a");
        using var b = new NamedMemFd("vgh-mt-uovl-b");
        Assert.True(AddMemReg(rig, a.Region(0), a));
        // Disjoint guest ranges, but the front-end addresses overlap: one ring address would mean two places.
        Assert.False(AddMemReg(rig, new MemoryRegionDescriptor(0x1000_0000, b.Size, a.UserAddress + 0x1000, 0), b));
        rig.AssertLogged(rig.Name, "AddMemReg", "front-end addresses");
        Assert.Equal(0, b.Mappings);
    }

    [Fact]
    public void RemMemReg_UnknownRegion_IsRefusedAndTheTableIsUnchanged()
    {
        using var rig = Connect();
        using var a = new NamedMemFd("vgh-mt-rem");
        Assert.True(AddMemReg(rig, a.Region(0), a));
        Assert.False(rig.FrontEnd.RemMemReg(a.Region(0x4000_0000)));
        Assert.False(rig.FrontEnd.RemMemReg(a.Region(0) with { MemorySize = a.Size / 2 }));
        Assert.False(rig.FrontEnd.RemMemReg(a.Region(0) with { UserspaceAddr = a.UserAddress + 0x1000 }));
        rig.AssertLogged(rig.Name, "RemMemReg", "no memory region matches");
        Assert.Equal(1, a.Mappings);
        Assert.True(rig.FrontEnd.RemMemReg(a.Region(0)));
        Assert.Equal(0, a.Mappings);
    }

    public static TheoryData<ulong, ulong> BeyondTheFile => new()
    {
        { 2UL << 20, 1UL << 20 },            // offset past the end
        { 0x1000, 1UL << 20 },               // offset + size past the end
        { 0, (1UL << 20) + 1 },              // size past the end
        { ulong.MaxValue - 0xFFF, 0x2000 },  // offset + size wraps
    };

    [Theory]
    [MemberData(nameof(BeyondTheFile))]
    public void MemoryRegion_BeyondTheEndOfItsMemfd_IsRefused(ulong mmapOffset, ulong size)
    {
        int fds = ProcessResources.OpenFds();
        using (var rig = Connect())
        using (var m = new NamedMemFd("vgh-mt-beyond"))
        {
            var d = new MemoryRegionDescriptor(0, size, m.UserAddress, mmapOffset);
            Assert.False(AddMemReg(rig, d, m));
            using (var fd = m.Fd.Duplicate())
                Assert.False(rig.FrontEnd.SetMemTable([(d, fd)]));
            rig.AssertLogged(rig.Name, "AddMemReg", "cannot map its fd");
            rig.AssertLogged(rig.Name, "SetMemTable", "cannot map its fd");
            Assert.Equal(0, m.Mappings);
            rig.AssertAlive();
        }
        ProcessResources.AssertFdsBackTo(fds, "after the connection ended");
    }

    [Fact]
    public void MemoryRegion_SizeZero_IsRefused()
    {
        using var rig = Connect();
        using var m = new NamedMemFd("vgh-mt-zero");
        var d = new MemoryRegionDescriptor(0, 0, m.UserAddress, 0);
        Assert.False(AddMemReg(rig, d, m));
        using (var fd = m.Fd.Duplicate())
            Assert.False(rig.FrontEnd.SetMemTable([(d, fd)]));
        rig.AssertLogged(rig.Name, "AddMemReg", "memory_size is 0");
        rig.AssertLogged(rig.Name, "SetMemTable", "memory_size is 0");
        Assert.Equal(0, m.Mappings);
    }

    [Fact]
    public void MemoryRegion_WrappingTheGuestAddressSpace_IsRefused()
    {
        using var rig = Connect();
        using var m = new NamedMemFd("vgh-mt-wrap");
        Assert.False(AddMemReg(rig, m.Region(ulong.MaxValue - 0xFFF), m));
        rig.AssertLogged(rig.Name, "AddMemReg", "wraps");
        Assert.Equal(0, m.Mappings);
    }

    [Fact]
    public void MemoryRegion_FdThatIsNotMemory_IsRefused()
    {
        int fds = ProcessResources.OpenFds();
        using (var rig = Connect())
        {
            using (var e = EventFd.Create())
                Assert.False(rig.FrontEnd.AddMemReg(new MemoryRegionDescriptor(0, 0x1000, 0x7000_0000, 0), e));
            rig.AssertLogged(rig.Name, "AddMemReg", "cannot map its fd");
            rig.AssertAlive();
        }
        ProcessResources.AssertFdsBackTo(fds, "after the connection ended");
    }

    [Fact]
    public void MemoryRegion_MemfdSealedAgainstWriting_IsRefused()
    {
        using var rig = Connect();
        using var m = new NamedMemFd("vgh-mt-sealed");
        // A shared writable mapping of a write-sealed memfd fails (EPERM): refused, not a crash.
        Assert.Equal(0, Tmds.Linux.LibC.fcntl(m.Fd.Number, Tmds.Linux.LibC.F_ADD_SEALS, Tmds.Linux.LibC.F_SEAL_WRITE));
        Assert.False(AddMemReg(rig, m.Region(0), m));
        rig.AssertLogged(rig.Name, "AddMemReg", "cannot map its fd");
        Assert.Equal(0, m.Mappings);
        rig.AssertAlive();
    }

    [Fact]
    public void SetMemTable_OverlappingRegions_IsRefusedAndNothingStaysMapped()
    {
        using var rig = Connect();
        using var a = new NamedMemFd("vgh-mt-tovl-a");
        using var b = new NamedMemFd("vgh-mt-tovl-b");
        using (var fa = a.Fd.Duplicate())
        using (var fb = b.Fd.Duplicate())
            Assert.False(rig.FrontEnd.SetMemTable([(a.Region(0), fa), (b.Region(0x1000), fb)]));
        rig.AssertLogged(rig.Name, "SetMemTable", "overlap");
        Assert.Equal((0, 0), (a.Mappings, b.Mappings));
    }

    [Fact]
    public void SetMemTable_MoreThanEightRegions_IsRefused()
    {
        using var rig = Connect();
        var table = RequestCatalog.Table(Enumerable.Range(0, 9).Select(i => new MemoryRegionDescriptor((ulong)i << 20, 1 << 20, 0x7000_0000UL + ((ulong)i << 20), 0)).ToArray());
        var fds = Enumerable.Range(0, 9).Select(_ => MemFd.Create("vgh-mt-nine", 1 << 20)).ToArray();
        try
        {
            Assert.False(rig.FrontEnd.SendWithAck(VhostUserRequest.SetMemTable, table, fds));
        }
        finally
        {
            foreach (var fd in fds) fd.Dispose();
        }
        rig.AssertLogged(rig.Name, "SetMemTable", "num_regions 9 exceeds 8");
        Assert.Equal(0, ProcessResources.MemfdMappings("vgh-mt-nine"));
    }

    [Fact]
    public void SetMemTable_Again_ReplacesTheWholeTable()
    {
        using var rig = Connect();
        using var a = new NamedMemFd("vgh-mt-repl-a");
        using var b = new NamedMemFd("vgh-mt-repl-b");
        using (var fa = a.Fd.Duplicate()) Assert.True(rig.FrontEnd.SetMemTable([(a.Region(0), fa)]));
        Assert.Equal((1, 0), (a.Mappings, b.Mappings));
        using (var fb = b.Fd.Duplicate()) Assert.True(rig.FrontEnd.SetMemTable([(b.Region(0), fb)]));
        Assert.Equal((0, 1), (a.Mappings, b.Mappings));
        Assert.True(rig.FrontEnd.SetMemTable([]));
        Assert.Equal((0, 0), (a.Mappings, b.Mappings));
    }

    [Fact]
    public void MemoryRegion_UnalignedMmapOffset_IsMappedFromThePageBelow()
    {
        using var rig = Connect();
        using var m = new NamedMemFd("vgh-mt-unal");
        Assert.True(AddMemReg(rig, new MemoryRegionDescriptor(0, 0x10000, m.UserAddress, 0x800), m));
        Assert.Equal(1, m.Mappings);
    }

    // ---- rings against the memory table ----

    [Fact]
    public void Ring_AddressesOutsideGuestMemory_FailsTheRingAndSignalsErr()
    {
        using var rig = Connect();
        using var vm = new RawVm(rig.FrontEnd);
        vm.SetFeatures();
        vm.SetMemTable();
        var a = vm.Address(0);
        ulong outside = vm.Ram.UserAddress(vm.Ram.GuestBase) + vm.Ram.Size + 0x10000;
        Assert.True(rig.FrontEnd.SetVringFd(VhostUserRequest.SetVringErr, 0, vm.Err[0]));
        Assert.True(rig.FrontEnd.SetVringNum(0, 64));
        Assert.True(rig.FrontEnd.SetVringBase(0, 0));
        Assert.True(rig.FrontEnd.SetVringAddr(a with { Descriptor = outside }));
        Assert.True(rig.FrontEnd.SetVringFd(VhostUserRequest.SetVringCall, 0, vm.Call[0]));
        Assert.True(rig.FrontEnd.SetVringFd(VhostUserRequest.SetVringKick, 0, vm.Kick[0]));
        Assert.True(rig.FrontEnd.SetVringEnable(0, true));
        Assert.True(Poller.WaitReadable(vm.Err[0], 10_000), "the err eventfd was not signalled");
        rig.AssertLogged(rig.Name, "ring 0", "not inside guest memory");
        // Work on the failed ring is never touched.
        vm.Driver.Queue(new byte[24]);
        vm.Driver.KickControl();
        rig.AssertAlive();
        Assert.Equal(0, vm.Control.ReadUsedIndex());
    }

    [Fact]
    public void Ring_StraddlingTheEndOfItsRegion_FailsTheRingAndSignalsErr()
    {
        using var rig = Connect();
        using var vm = new RawVm(rig.FrontEnd);
        vm.SetFeatures();
        vm.SetMemTable();
        var a = vm.Address(0);
        ulong lastBytes = vm.Ram.UserAddress(vm.Ram.GuestBase) + vm.Ram.Size - 512; // the table needs 64 * 16 = 1024
        Assert.True(rig.FrontEnd.SetVringFd(VhostUserRequest.SetVringErr, 0, vm.Err[0]));
        Assert.True(rig.FrontEnd.SetVringNum(0, 64));
        Assert.True(rig.FrontEnd.SetVringAddr(a with { Descriptor = lastBytes }));
        Assert.True(rig.FrontEnd.SetVringFd(VhostUserRequest.SetVringKick, 0, vm.Kick[0]));
        Assert.True(Poller.WaitReadable(vm.Err[0], 10_000), "the err eventfd was not signalled");
        rig.AssertAlive();
    }

    [Fact]
    public void Ring_GuestAddressesMisalignedByTheRegion_FailsTheRingAndTheConnectionContinues()
    {
        using var rig = Connect();
        using var vm = new RawVm(rig.FrontEnd);
        vm.SetFeatures();
        // The front-end addresses are aligned, but this region puts them at odd guest addresses.
        var region = vm.Region with { GuestPhysAddr = 0x1002 };
        using (var fd = vm.Ram.Fd.Duplicate())
            Assert.True(rig.FrontEnd.SetMemTable([(region, fd)]));
        Assert.True(rig.FrontEnd.SetVringFd(VhostUserRequest.SetVringErr, 0, vm.Err[0]));
        Assert.True(rig.FrontEnd.SetVringNum(0, 64));
        Assert.True(rig.FrontEnd.SetVringAddr(vm.Address(0)));
        Assert.True(rig.FrontEnd.SetVringFd(VhostUserRequest.SetVringKick, 0, vm.Kick[0]));
        Assert.True(Poller.WaitReadable(vm.Err[0], 10_000), "the err eventfd was not signalled");
        rig.AssertAlive();
        Assert.Null(rig.Failure);
        rig.AssertLogged(rig.Name, "ring 0", "misaligned");
    }

    [Fact]
    public void RemMemReg_OfTheRegionHoldingAStartedRing_PausesTheRingUntilTheRegionIsBack()
    {
        // QEMU replaces a region with REM_MEM_REG then ADD_MEM_REG: the rings are unreachable in
        // between, which must not look like a device error to the guest.
        using var rig = Connect();
        using var vm = new RawVm(rig.FrontEnd);
        vm.SetFeatures();
        Assert.True(rig.FrontEnd.AddMemReg(vm.Region, vm.Ram.Fd));
        vm.SetUpRing(0);
        Assert.Equal(VirtioGpuCtrlType.OkDisplayInfo, vm.Driver.GetDisplayInfo().Type);
        Assert.True(rig.FrontEnd.RemMemReg(vm.Region));
        ushort usedBefore = vm.Control.ReadUsedIndex();
        var header = vm.Driver.Header(VirtioGpuCtrlType.GetDisplayInfo);
        var pending = vm.Driver.Queue(MemoryMarshal.AsBytes(new ReadOnlySpan<VirtioGpuCtrlHeader>(in header)), VirtioGpuResponseSizes.DisplayInfo);
        vm.Driver.KickControl();
        Assert.False(Poller.WaitReadable(vm.Err[0], 300), "the err eventfd was signalled for a ring that is only paused");
        Assert.Equal(usedBefore, vm.Control.ReadUsedIndex()); // nothing was processed without memory
        Assert.True(rig.FrontEnd.AddMemReg(vm.Region, vm.Ram.Fd));
        Assert.Equal(VirtioGpuCtrlType.OkDisplayInfo, vm.Driver.Wait(pending).Type); // the held request completes
        Assert.False(Poller.WaitReadable(vm.Err[0], 0));
        rig.AssertAlive();
    }

    [Fact]
    public void SetVringAddr_OutsideGuestMemory_FailsTheRingAndSignalsErr()
    {
        using var rig = Connect();
        using var vm = new RawVm(rig.FrontEnd);
        vm.Start();
        Assert.Equal(VirtioGpuCtrlType.OkDisplayInfo, vm.Driver.GetDisplayInfo().Type);
        // A started ring moved to addresses no region covers: a real error, reported on err.
        Assert.True(rig.FrontEnd.SetVringAddr(new VringAddress(0, 0, Descriptor: 0x7000_0000_0000, Used: 0x7000_0002_0000, Available: 0x7000_0001_0000, Log: 0)));
        Assert.True(Poller.WaitReadable(vm.Err[0], 10_000), "the err eventfd was not signalled");
        rig.AssertAlive();
    }

    [Fact]
    public void SetMemTable_WhileRingsRun_RebindsThemToTheNewTable()
    {
        using var rig = Connect();
        using var vm = new RawVm(rig.FrontEnd);
        vm.Start();
        Assert.Equal(VirtioGpuCtrlType.OkDisplayInfo, vm.Driver.GetDisplayInfo().Type);
        // The same RAM again, as QEMU sends at every start: the rings keep working.
        vm.SetMemTable();
        Assert.Equal(VirtioGpuCtrlType.OkDisplayInfo, vm.Driver.GetDisplayInfo().Type);
        Assert.False(Poller.WaitReadable(vm.Err[0], 0));
    }
}
