using System.Text;
using VirtioGpuHost.Device.Wire;
using VirtioGpuHost.FrontEnd;
using VirtioGpuHost.TestKit;
using VirtioGpuHost.Virtio;

namespace VirtioGpuHost.UnitTests.VhostUser;

/// <summary>
/// QEMU's whole vhost-user-gpu sequence (<see cref="GpuVm"/>: realize, DRIVER_OK with a new
/// display socket, rings, and stop/start as on reset or pause) against our server running
/// in-process on a real listening socket.
/// </summary>
public class QemuSequenceTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(10);

    public static TheoryData<MemoryTableMode, bool, bool> Variants()
    {
        var d = new TheoryData<MemoryTableMode, bool, bool>();
        foreach (var mode in new[] { MemoryTableMode.AddMemReg, MemoryTableMode.SetMemTable })
            foreach (bool eventIdx in new[] { true, false })
                foreach (bool indirect in new[] { true, false })
                    d.Add(mode, eventIdx, indirect);
        return d;
    }

    private static GpuVm Connect(InProcessBackend backend, GpuVmOptions? options = null)
    {
        var vm = GpuVm.Connect(backend.SocketPath, options ?? new GpuVmOptions { Display = new DisplayServerOptions { Width = 320, Height = 200 } });
        Assert.True(vm.WaitForDisplayReady(Wait), "the back-end never negotiated the display socket");
        return vm;
    }

    private static FrameBuffer Present(GpuVm vm, uint resourceId, uint w, uint h, uint seed)
    {
        var fb = FrameBuffer.Allocate(vm.Ram, w, h, VirtioGpuFormat.B8G8R8X8Unorm, scattered: true);
        fb.Fill((x, y) => TestPatterns.GradientAt(x, y, w, h, seed));
        vm.Driver.SetUpFrameBuffer(resourceId, fb, 0);
        vm.Driver.Present(resourceId, fb, new VirtioGpuRect(0, 0, w, h));
        return fb;
    }

    private static bool Shows(DisplayServer display, FrameBuffer fb)
    {
        if (display.Snapshot(0) is not { } s || s.Width != fb.Width || s.Height != fb.Height) return false;
        for (uint y = 0; y < fb.Height; y++)
            for (uint x = 0; x < fb.Width; x++)
                if ((s.Pixels[y * s.Width + x] & 0xFFFFFF) != (fb.ReadPixelRaw(x, y) & 0xFFFFFF)) return false;
        return true;
    }

    [Theory]
    [MemberData(nameof(Variants))]
    public void FullSequence_EachMemoryModeAndRingFeature_DeviceWorksEndToEnd(MemoryTableMode mode, bool eventIdx, bool indirect)
    {
        using var backend = new InProcessBackend();
        using var vm = Connect(backend, new GpuVmOptions
        {
            MemoryMode = mode,
            EventIdx = eventIdx,
            IndirectDescriptors = indirect,
            Display = new DisplayServerOptions { Width = 320, Height = 200 },
        });
        Assert.Equal(eventIdx, (vm.AckedFeatures & VirtioFeatures.EventIdx) != 0);
        Assert.Equal(indirect, (vm.AckedFeatures & VirtioFeatures.IndirectDesc) != 0);
        Assert.Equal(1u, vm.Config.NumScanouts);

        var info = GpuDriver.ParseDisplayInfo(vm.Driver.GetDisplayInfo());
        Assert.Equal((320u, 200u, 1u), (info[0].Rect.Width, info[0].Rect.Height, info[0].Enabled)); // from the display
        Assert.Contains("QEMU Monitor", Encoding.ASCII.GetString(GpuDriver.ParseEdid(vm.Driver.GetEdid(0))), StringComparison.Ordinal);

        var fb = Present(vm, 1, 320, 200, 0);
        Assert.True(vm.Display!.WaitFor(d => Shows(d, fb), Wait), "the display does not show what the guest drew");
        // More commands than the ring holds, so the indices wrap around the ring.
        for (int i = 0; i < 100; i++)
        {
            fb.FillRect((uint)i % 300, 10, 20, 20, 0xFF000000u | (uint)i * 0x010203u);
            vm.Driver.Present(1, fb, new VirtioGpuRect((uint)i % 300, 10, 20, 20));
        }
        Assert.True(vm.Display.WaitFor(d => Shows(d, fb), Wait), "the display does not show the last frame");

        var cursor = FrameBuffer.Allocate(vm.Ram, 64, 64, VirtioGpuFormat.B8G8R8A8Unorm, scattered: false);
        cursor.Fill((x, y) => 0xFF112233);
        vm.Driver.SetUpFrameBuffer(7, cursor);
        vm.Driver.TransferToHost2D(7, new VirtioGpuRect(0, 0, 64, 64), 0);
        vm.Driver.UpdateCursor(0, 4, 5, 7, 1, 1);
        Assert.True(vm.Display.WaitFor(d => d.Cursor is { X: 4, Y: 5, Image: not null }, Wait));

        Assert.Contains(backend.Logs.Lines, l => l.Message.Contains(mode == MemoryTableMode.AddMemReg ? "added memory region" : "memory table:", StringComparison.Ordinal));
        Assert.DoesNotContain(backend.Logs.Lines, l => l.Message.Contains("refused", StringComparison.Ordinal));
        Assert.DoesNotContain(backend.Logs.Lines, l => l.Message.Contains("failed", StringComparison.Ordinal));
    }

    [Fact]
    public void PauseAndResume_RingsRestartWhereTheyStopped_ResourcesStayAndTheNewDisplayShowsTheFrame()
    {
        using var backend = new InProcessBackend();
        using var vm = Connect(backend);
        var fb = Present(vm, 1, 320, 200, 2);
        Assert.True(vm.Display!.WaitFor(d => Shows(d, fb), Wait));
        var (control, cursor) = vm.Stop();
        Assert.Equal(vm.Control.AvailIndex, (ushort)control);
        Assert.Equal(vm.Cursor.AvailIndex, (ushort)cursor);
        vm.Start(resetRings: false);
        Assert.True(vm.WaitForDisplayReady(Wait));
        // The new display socket gets SCANOUT + a full UPDATE without the guest doing anything.
        Assert.True(vm.Display!.WaitFor(d => Shows(d, fb), Wait), "the new display was not given the current frame");
        Assert.Equal(VirtioGpuCtrlType.OkNoData, vm.Driver.Flush(1, new VirtioGpuRect(0, 0, 320, 200)).Type);
    }

    [Fact]
    public void Reset_RingsRestartFromZero_ResourcesAreGoneAndTheGuestStartsOver()
    {
        using var backend = new InProcessBackend();
        using var vm = Connect(backend);
        var fb = Present(vm, 1, 320, 200, 3);
        Assert.True(vm.Display!.WaitFor(d => Shows(d, fb), Wait));
        vm.Stop();
        vm.Start(resetRings: true);
        Assert.True(vm.WaitForDisplayReady(Wait));
        Assert.Equal(VirtioGpuCtrlType.ErrInvalidResourceId, vm.Driver.Flush(1, new VirtioGpuRect(0, 0, 320, 200)).Type);
        Assert.Contains(backend.Logs.Lines, l => l.Message.Contains("restarted from 0", StringComparison.Ordinal));
        // The guest driver starts over with the same resource id.
        var again = Present(vm, 1, 320, 200, 4);
        Assert.True(vm.Display!.WaitFor(d => Shows(d, again), Wait));
    }

    /// <summary>GET_DISPLAY_INFO and GET_EDID both answered by the display: its mode, its EDID.</summary>
    private static void AssertDisplayQueriesAnswered(GpuVm vm, uint w, uint h, string when)
    {
        var info = vm.Driver.GetDisplayInfo();
        Assert.True(info.Type == VirtioGpuCtrlType.OkDisplayInfo, $"{when}: GET_DISPLAY_INFO answered {info.Type}");
        var modes = GpuDriver.ParseDisplayInfo(info);
        Assert.Equal((w, h, 1u), (modes[0].Rect.Width, modes[0].Rect.Height, modes[0].Enabled));
        var edid = vm.Driver.GetEdid(0);
        Assert.True(edid.Type == VirtioGpuCtrlType.OkEdid, $"{when}: GET_EDID answered {edid.Type}");
        var block = GpuDriver.ParseEdid(edid);
        Assert.Contains("QEMU Monitor", Encoding.ASCII.GetString(block), StringComparison.Ordinal);
        Assert.Equal((w, h), VirtioGpuHost.Device.Edid.EdidBuilder.ParsePreferredMode(block) is { } m ? (m.Width, m.Height) : default);
    }

    [Fact]
    public void Reboot_RingsRestartFromZero_EdidAndDisplayInfoStillAnsweredEveryTime()
    {
        using var backend = new InProcessBackend();
        using var vm = Connect(backend, new GpuVmOptions { Display = new DisplayServerOptions { Width = 1024, Height = 768 } });
        AssertDisplayQueriesAnswered(vm, 1024, 768, "first boot");
        for (int boot = 2; boot <= 4; boot++)
        {
            var fb = Present(vm, 1, 64, 48, (uint)boot); // the control ring moves on
            Assert.True(vm.Display!.WaitFor(d => Shows(d, fb), Wait));
            // The guest reboots: QEMU stops the rings, then at the next DRIVER_OK sends the
            // features again (EDID among them) and restarts the rings from 0.
            vm.Stop();
            vm.Start(resetRings: true);
            Assert.True(vm.WaitForDisplayReady(Wait));
            Assert.NotEqual(0UL, vm.AckedFeatures & VirtioGpuFeatures.Edid);
            AssertDisplayQueriesAnswered(vm, 1024, 768, $"boot {boot}");
            Assert.Equal(VirtioGpuCtrlType.ErrInvalidResourceId, vm.Driver.Flush(1, new VirtioGpuRect(0, 0, 64, 48)).Type); // it was a reset
        }
        Assert.Equal(3, backend.Logs.Lines.Count(l => l.Message.Contains("restarted from 0", StringComparison.Ordinal)));
    }

    [Fact]
    public void GpuVm_WithoutReplyAckOrMemSlots_StillBringsTheDeviceUp()
    {
        using var backend = new InProcessBackend();
        using var vm = Connect(backend, new GpuVmOptions { MemoryMode = MemoryTableMode.SetMemTable, BackendChannel = false, Display = new DisplayServerOptions { Width = 320, Height = 200 } });
        var fb = Present(vm, 1, 64, 64, 5);
        Assert.True(vm.Display!.WaitFor(d => d.UpdateCount > 0, Wait));
        Assert.Equal(VirtioGpuCtrlType.OkNoData, vm.Driver.Flush(1, new VirtioGpuRect(0, 0, 64, 64)).Type);
        _ = fb;
    }
}
