using VirtioGpuHost.Device;
using VirtioGpuHost.Device.Wire;
using VirtioGpuHost.FrontEnd;
using VirtioGpuHost.TestKit;

namespace VirtioGpuHost.IntegrationTests;

/// <summary>
/// The known faults of QEMU's C back-end, measured: each test drives both back-ends the
/// same way and asserts that the C back-end shows the fault and ours does not. If a newer
/// C back-end fixes one, its half of the test fails and tells us.
/// </summary>
public class CBackendFaultTests
{
    private static GpuVm Connect(BackendProcess b)
    {
        var vm = GpuVm.Connect(b.SocketPath, new GpuVmOptions { Display = new DisplayServerOptions { Width = 320, Height = 200 } });
        Assert.True(vm.WaitForDisplayReady(TimeSpan.FromSeconds(10)));
        return vm;
    }

    /// <summary>UPDATE pixels for a resource in R8G8B8X8: QEMU reads x8r8g8b8, so they must be converted.</summary>
    [Theory]
    [InlineData(BackendKind.Ours, true)]
    [InlineData(BackendKind.QemuC, false)]
    public void NonXrgbFormat_UpdateShowsTheRightColour(BackendKind kind, bool expectCorrect)
    {
        using var b = BackendProcess.Start(kind);
        using var vm = Connect(b);
        var fb = FrameBuffer.Allocate(vm.Ram, 64, 64, VirtioGpuFormat.R8G8B8X8Unorm, scattered: false);
        fb.Fill((x, y) => 0xFFFF0000); // red
        vm.Driver.SetUpFrameBuffer(1, fb, 0);
        vm.Driver.Present(1, fb, new VirtioGpuRect(0, 0, 64, 64));
        Assert.True(vm.Display!.WaitFor(d => d.UpdateCount > 0 && d.Snapshot(0) is { } s && (s.Pixels[0] & 0xFFFFFF) != 0, TimeSpan.FromSeconds(5)));
        uint px = vm.Display.Snapshot(0)!.Value.Pixels[0] & 0xFFFFFF;
        Assert.Equal(expectCorrect, px == 0xFF0000);
    }

    /// <summary>A scanout showing part of a resource: UPDATE must be in scanout coordinates.</summary>
    [Theory]
    [InlineData(BackendKind.Ours, true)]
    [InlineData(BackendKind.QemuC, false)]
    public void ScanoutOfPartOfResource_UpdateInScanoutCoordinates(BackendKind kind, bool expectScanoutCoordinates)
    {
        using var b = BackendProcess.Start(kind);
        using var vm = Connect(b);
        var fb = FrameBuffer.Allocate(vm.Ram, 640, 400, VirtioGpuFormat.B8G8R8X8Unorm, scattered: false);
        fb.Fill((x, y) => 0xFF000000 | (x << 8) | y);
        vm.Driver.SetUpFrameBuffer(1, fb);
        GpuDriver.Expect(vm.Driver.SetScanout(0, 1, new VirtioGpuRect(100, 50, 320, 200)), "SET_SCANOUT");
        vm.Driver.Present(1, fb, new VirtioGpuRect(110, 60, 16, 16));
        // Ours also sends the whole scanout after SET_SCANOUT; look for the 16x16 one.
        Assert.True(vm.Display!.WaitFor(d => d.Updates.Any(x => x.Width == 16 && x.Height == 16), TimeSpan.FromSeconds(5)));
        var u = vm.Display.Updates.Single(x => x.Width == 16 && x.Height == 16);
        Assert.Equal(expectScanoutCoordinates, (u.X, u.Y) == (10u, 10u));
        Assert.Equal(!expectScanoutCoordinates, (u.X, u.Y) == (110u, 60u));
    }

    /// <summary>A request shorter than its command must be an error, never OK.</summary>
    [Theory]
    [InlineData(BackendKind.Ours, true)]
    [InlineData(BackendKind.QemuC, false)]
    public void ShortRequest_IsAnError(BackendKind kind, bool expectError)
    {
        using var b = BackendProcess.Start(kind);
        using var vm = Connect(b);
        var full = new VirtioGpuResourceCreate2D { Header = new VirtioGpuCtrlHeader { Type = VirtioGpuCtrlType.ResourceCreate2D }, ResourceId = 5, Format = VirtioGpuFormat.B8G8R8X8Unorm, Width = 8, Height = 8 };
        var bytes = System.Runtime.InteropServices.MemoryMarshal.AsBytes(new ReadOnlySpan<VirtioGpuResourceCreate2D>(in full)).ToArray();
        var r = vm.Driver.Submit(bytes.AsSpan(0, 30)); // 30 of 40 bytes
        Assert.Equal(expectError, r.Type >= VirtioGpuCtrlType.ErrUnspec);
    }

    /// <summary>A transfer that reads past the end of the backing must be an error.</summary>
    [Theory]
    [InlineData(BackendKind.Ours, true)]
    [InlineData(BackendKind.QemuC, false)]
    public void TransferPastEndOfBacking_IsAnError(BackendKind kind, bool expectError)
    {
        using var b = BackendProcess.Start(kind);
        using var vm = Connect(b);
        GpuDriver.Expect(vm.Driver.CreateResource2D(1, VirtioGpuFormat.B8G8R8X8Unorm, 64, 64), "create");
        var half = vm.Ram.Allocator.Allocate(64 * 64 * 2); // half of what the resource needs
        GpuDriver.Expect(vm.Driver.AttachBacking(1, [new GuestBuffer(half, 64 * 64 * 2)]), "attach");
        var r = vm.Driver.TransferToHost2D(1, new VirtioGpuRect(0, 0, 64, 64), 0);
        Assert.Equal(expectError, r.Type == VirtioGpuCtrlType.ErrInvalidParameter);
    }

    /// <summary>A zero-size resource must be refused.</summary>
    [Theory]
    [InlineData(BackendKind.Ours, true)]
    [InlineData(BackendKind.QemuC, false)]
    public void ZeroSizeResource_IsRefused(BackendKind kind, bool expectError)
    {
        using var b = BackendProcess.Start(kind);
        using var vm = Connect(b);
        var r = vm.Driver.CreateResource2D(1, VirtioGpuFormat.B8G8R8X8Unorm, 0, 0);
        Assert.Equal(expectError, r.Type == VirtioGpuCtrlType.ErrInvalidParameter);
    }

    /// <summary>After a reset (DRIVER_OK cleared and set again) QEMU hands over a new display socket: it must be used.</summary>
    [Theory]
    [InlineData(BackendKind.Ours, true)]
    [InlineData(BackendKind.QemuC, false)]
    public void NewDisplaySocketAfterReset_IsUsed(BackendKind kind, bool expectUsed)
    {
        using var b = BackendProcess.Start(kind);
        using var vm = Connect(b);
        var fb = FrameBuffer.Allocate(vm.Ram, 320, 200, VirtioGpuFormat.B8G8R8X8Unorm, scattered: false);
        fb.Fill((x, y) => 0xFF0000FF);
        vm.Driver.SetUpFrameBuffer(1, fb, 0);
        vm.Driver.Present(1, fb, new VirtioGpuRect(0, 0, 320, 200));
        vm.Stop();
        vm.Start(resetRings: true);
        bool got;
        try
        {
            // The guest driver starts over after the reset.
            vm.Driver.Timeout = TimeSpan.FromSeconds(5);
            vm.Driver.CreateResource2D(2, VirtioGpuFormat.B8G8R8X8Unorm, 320, 200);
            vm.Driver.AttachBacking(2, fb.Entries);
            vm.Driver.SetScanout(0, 2, new VirtioGpuRect(0, 0, 320, 200));
            vm.Driver.TransferToHost2D(2, new VirtioGpuRect(0, 0, 320, 200), 0);
            vm.Driver.Flush(2, new VirtioGpuRect(0, 0, 320, 200));
            got = vm.Display!.WaitFor(d => d.UpdateCount > 0, TimeSpan.FromSeconds(expectUsed ? 5 : 2));
        }
        catch (TimeoutException) when (!expectUsed)
        {
            got = false; // the C back-end stopped answering (it wrote to the closed old socket)
        }
        Assert.Equal(expectUsed, got);
    }
}
