using System.Runtime.InteropServices;
using VirtioGpuHost.Device.Wire;
using VirtioGpuHost.FrontEnd;
using VirtioGpuHost.GuestMemory;
using VirtioGpuHost.Interop;
using VirtioGpuHost.VhostUser.Wire;
using static VirtioGpuHost.Device.Wire.VirtioGpuCtrlType;

namespace VirtioGpuHost.IntegrationTests;

/// <summary>
/// A front-end that takes guest memory away under the device: REM_MEM_REG of the region that holds
/// a resource's backing and a scanned-out blob, or a truncated memfd behind a mapped region, while
/// the guest transfers from it and the compositor reads the blob in place. The process must not
/// crash (these tests run the back-end and compositor in the test process: a SIGBUS would end the
/// run); docs/reliability.md says how (refcounted snapshots, sealing, the SIGBUS guard).
/// </summary>
public sealed class GuestMemoryShrinkTests : IDisposable
{
    private readonly MultiVmRig _rig = new(2);

    public void Dispose() => _rig.Dispose();

    private const ulong Gpa = 0x1_0000_0000, RegionSize = 4UL << 20;
    private const uint W = MultiVmRig.W, H = MultiVmRig.H;
    private static readonly VirtioGpuRect Full = new(0, 0, W, H);
    private static uint Pixel(uint x, uint y) => 0xFF000000 | 0x20u << 16 | (x & 0xFF) << 8 | (y & 0xFF);

    /// <summary>A second guest RAM region (its own memfd, as a hot-plugged DIMM) that the test fills and later removes or truncates.</summary>
    private sealed class ExtraRegion : IDisposable
    {
        public ExtraRegion(GpuVm vm, bool sealable)
        {
            Fd = MemFd.Create("vgh-extra-ram", RegionSize, allowSealing: sealable);
            View = MappedMemory.Map(Fd, 0, RegionSize, guard: true); // the "VMM's" own view; never touched after a truncation
            Descriptor = new MemoryRegionDescriptor(Gpa, RegionSize, (ulong)View.Address, 0);
            Assert.True(vm.FrontEnd.AddMemReg(Descriptor, Fd), "ADD_MEM_REG refused");
        }

        public FdHandle Fd { get; }
        public MappedMemory View { get; }
        public MemoryRegionDescriptor Descriptor { get; }

        public void FillFrame(ulong offset, Func<uint, uint, uint> pixel)
        {
            var px = MemoryMarshal.Cast<byte, uint>(View.AsSpan(offset, (int)(W * H * 4)));
            for (uint y = 0; y < H; y++)
                for (uint x = 0; x < W; x++) px[(int)(y * W + x)] = pixel(x, y);
        }

        public void Dispose()
        {
            View.Dispose();
            Fd.Dispose();
        }
    }

    private const ulong FrameBytes = (ulong)W * H * 4;
    private const uint Res2D = 10, Blob = 11;

    /// <summary>2D resource 10 backed at the region's start (not scanned out) and GUEST blob 11 at +2 MiB on scanout 0, shown.</summary>
    private void SetUp(GpuVm vm, ExtraRegion region)
    {
        var d = vm.Driver;
        region.FillFrame(0, Pixel);
        region.FillFrame(2UL << 20, Pixel);
        GpuDriver.Expect(d.CreateResource2D(Res2D, VirtioGpuFormat.B8G8R8X8Unorm, W, H), "CREATE_2D");
        GpuDriver.Expect(d.AttachBacking(Res2D, [new GuestBuffer(new GuestAddress(Gpa), (uint)FrameBytes)]), "ATTACH_BACKING");
        GpuDriver.Expect(d.TransferToHost2D(Res2D, Full, 0), "TRANSFER before");
        GpuDriver.Expect(d.CreateBlob(Blob, VirtioGpuResourceCreateBlob.MemGuest, VirtioGpuResourceCreateBlob.FlagUseShareable,
            FrameBytes, [new GuestBuffer(new GuestAddress(Gpa + (2UL << 20)), (uint)FrameBytes)]), "CREATE_BLOB");
        GpuDriver.Expect(d.SetScanoutBlob(0, Blob, Full, W, H, VirtioGpuFormat.B8G8R8X8Unorm, W * 4), "SET_SCANOUT_BLOB");
        GpuDriver.Expect(d.Flush(Blob, Full), "FLUSH");
        Assert.True(_rig.ComposeUntil(() => _rig.ZoneShows(0, (x, y) => Pixel((uint)x, (uint)y))), "the blob never showed");
        Assert.Equal(0UL, _rig.Host.ScanoutStats("vm0").BytesCopied - FrameBytes); // the blob is read in place
    }

    /// <summary>The other VM keeps drawing while this happens (and its picture must show).</summary>
    private void OtherVmDraws()
    {
        using var other = _rig.Connect(1);
        MultiVmRig.Draw2D(other, 1, (x, y) => 0xFF00FF00);
        Assert.True(_rig.ComposeUntil(() => _rig.ZoneShows(1, (_, _) => 0xFF00FF00)), "the other VM's picture never showed");
    }

    [Fact]
    public void RemMemReg_UnderBackingAndScannedOutBlob_ErrorsNoCrash_ConnectionGoesOn()
    {
        using var vm = _rig.Connect(0);
        using var region = new ExtraRegion(vm, sealable: true);
        SetUp(vm, region);

        Assert.True(vm.FrontEnd.RemMemReg(region.Descriptor), "REM_MEM_REG refused");
        // The compositor still holds the blob's memory (a reference on the old snapshot's block): frames go on.
        for (int i = 0; i < 5; i++) _rig.Host.Engine.ComposeFrame();
        var d = vm.Driver;
        Assert.Equal(ErrUnspec, d.TransferToHost2D(Res2D, Full, 0).Type); // "its backing is no longer in guest memory"
        Assert.NotEqual(OkNoData, d.AttachBacking(20, [new GuestBuffer(new GuestAddress(Gpa), 4096)]).Type);
        d.Flush(Blob, Full); // whatever it answers, it must not touch unmapped memory
        for (int i = 0; i < 5; i++) _rig.Host.Engine.ComposeFrame();
        Assert.Equal(OkDisplayInfo, d.GetDisplayInfo().Type);
        Assert.True(_rig.Host.IsConnected("vm0"));
        OtherVmDraws();
        // The guest recovers with memory that exists.
        MultiVmRig.Draw2D(vm, 30, (x, y) => 0xFF0000FF);
        Assert.True(_rig.ComposeUntil(() => _rig.ZoneShows(0, (_, _) => 0xFF0000FF)), "the VM's next picture never showed");
    }

    [Fact]
    public void SealableMemfd_TruncateRefused_DrawingGoesOn()
    {
        using var vm = _rig.Connect(0);
        using var region = new ExtraRegion(vm, sealable: true);
        SetUp(vm, region);
        Assert.Equal(-1, Ftruncate(region.Fd, 0)); // sealed by the back-end at ADD_MEM_REG
        region.FillFrame(2UL << 20, (x, y) => 0xFFFFFFFF);
        GpuDriver.Expect(vm.Driver.Flush(Blob, Full), "FLUSH");
        Assert.True(_rig.ComposeUntil(() => _rig.ZoneShows(0, (_, _) => 0xFFFFFFFF)), "the blob's new picture never showed");
    }

    [Fact]
    public void UnsealableMemfd_TruncatedUnderScanoutAndBacking_NoCrash_ConnectionClosed_NextServed()
    {
        Assert.SkipUnless(SigbusGuard.IsAvailable, $"the SIGBUS guard is not available: {SigbusGuard.UnavailableReason}");
        var vm = _rig.Connect(0);
        try
        {
            using var region = new ExtraRegion(vm, sealable: false);
            SetUp(vm, region);
            Assert.Contains(_rig.Logs.Lines, l => l.Message.Contains("mapped under the SIGBUS guard", StringComparison.Ordinal));
            long faults = SigbusGuard.TotalFaults;

            Assert.Equal(0, Ftruncate(region.Fd, 0));
            // The compositor reads the blob in place (a full repaint) and the guest transfers from the backing.
            _rig.Host.Engine.ComposeFrame();
            var transfer = vm.Driver.Queue(DeviceBytes(vm.Driver.TransferCommand(Res2D, Full, 0)));
            vm.Driver.KickControl();
            _ = vm.Driver.TryWait(transfer); // the device answers, or the connection is already closed
            // The device thread runs the transfer on its own time (a loaded machine may take a while).
            Assert.True(SpinWait.SpinUntil(() => SigbusGuard.TotalFaults > faults, TimeSpan.FromSeconds(20)),
                "nothing faulted: the test did not touch truncated memory");
            Assert.True(_rig.ComposeUntil(() => !_rig.Host.IsConnected("vm0")), "the connection of the VMM that truncated guest RAM was not closed");
            Assert.Contains(_rig.Logs.Lines, l => l.Message.Contains("truncated its file", StringComparison.Ordinal));
        }
        finally { vm.Dispose(); }

        OtherVmDraws();
        using var next = _rig.Connect(0);
        MultiVmRig.Draw2D(next, 1, (x, y) => Pixel(x, y) ^ 0x00FFFFFF);
        Assert.True(_rig.ComposeUntil(() => _rig.ZoneShows(0, (x, y) => Pixel((uint)x, (uint)y) ^ 0x00FFFFFF)), "the next connection was not served");
    }

    private static byte[] DeviceBytes<T>(in T value) where T : unmanaged => MemoryMarshal.AsBytes(new ReadOnlySpan<T>(in value)).ToArray();

    private static int Ftruncate(FdHandle fd, ulong size)
    {
        bool added = false;
        fd.DangerousAddRef(ref added);
        try { return Tmds.Linux.LibC.ftruncate(fd.Number, (Tmds.Linux.off_t)(long)size); }
        finally { if (added) fd.DangerousRelease(); }
    }
}
