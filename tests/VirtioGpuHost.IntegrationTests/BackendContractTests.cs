using VirtioGpuHost.Device;
using VirtioGpuHost.Device.Wire;
using VirtioGpuHost.FrontEnd;
using VirtioGpuHost.TestKit;

namespace VirtioGpuHost.IntegrationTests;

/// <summary>
/// The same pixel tests against our back-end and QEMU's C back-end, each a separate
/// process driven over its real socket by the reference front-end: what the display side
/// receives (SCANOUT + UPDATE) must be exactly what the guest wrote. Passing against the C
/// back-end shows the front-end speaks the protocol, not our dialect.
/// </summary>
public class BackendContractTests
{
    public static TheoryData<BackendKind> Backends => new() { BackendKind.Ours, BackendKind.QemuC, BackendKind.QemuC10 };

    private static GpuVm Connect(BackendProcess b, int heads = 1, uint w = 320, uint h = 200)
    {
        var vm = GpuVm.Connect(b.SocketPath, new GpuVmOptions
        {
            Display = new DisplayServerOptions { MaxOutputs = heads, EnabledHeads = heads, Width = w, Height = h },
        });
        Assert.True(vm.WaitForDisplayReady(TimeSpan.FromSeconds(10)), $"{b.Kind} never negotiated the display socket\n{b.Output}");
        return vm;
    }

    /// <summary>
    /// Waits (up to 5 s) until the display's console for <paramref name="scanout"/> shows exactly
    /// the framebuffer's colours: UPDATEs arrive asynchronously, and a back-end may send an
    /// earlier one (after SET_SCANOUT) that lands after the test looked at the counters.
    /// </summary>
    internal static void AssertConsoleEquals(GpuVm vm, uint scanout, FrameBuffer fb, uint dx = 0, uint dy = 0)
    {
        string diff = "";
        bool same = vm.Display!.WaitFor(d => (diff = Compare(d, scanout, fb, dx, dy)) == "", TimeSpan.FromSeconds(5));
        Assert.True(same, diff);
    }

    private static string Compare(DisplayServer d, uint scanout, FrameBuffer fb, uint dx, uint dy)
    {
        var snap = d.Snapshot(scanout);
        if (snap is null) return $"scanout {scanout} is disabled on the display";
        var (w, h, px) = snap.Value;
        int bad = 0;
        string first = "";
        for (uint y = 0; y < h; y++)
            for (uint x = 0; x < w; x++)
            {
                uint want = PixelFormats.ReadArgb(fb.Format, BitConverter.GetBytes(fb.ReadPixelRaw(x + dx, y + dy))) & 0xFFFFFF;
                uint got = px[y * w + x] & 0xFFFFFF;
                if (want != got && bad++ == 0) first = $"({x},{y}): want {want:x6} got {got:x6}";
            }
        return bad == 0 ? "" : $"{bad} of {w * h} pixels differ; first at {first}";
    }

    [Theory]
    [MemberData(nameof(Backends))]
    public void FullFrame_DisplayShowsExactlyThePixelsWritten(BackendKind kind)
    {
        using var b = BackendProcess.Start(kind);
        using var vm = Connect(b);
        var fb = FrameBuffer.Allocate(vm.Ram, 320, 200, VirtioGpuFormat.B8G8R8X8Unorm, scattered: true);
        fb.Fill((x, y) => TestPatterns.GradientAt(x, y, 320, 200, 0));
        vm.Driver.SetUpFrameBuffer(1, fb, 0);
        long before = vm.Display!.UpdateCount;
        vm.Driver.Present(1, fb, new VirtioGpuRect(0, 0, 320, 200));
        Assert.True(vm.Display.WaitFor(d => d.UpdateCount > before, TimeSpan.FromSeconds(5)));
        var last = vm.Display.Updates[^1];
        Assert.Equal((0u, 0u, 320u, 200u), (last.X, last.Y, last.Width, last.Height));
        AssertConsoleEquals(vm, 0, fb);
    }

    public static TheoryData<BackendKind, VirtioGpuFormat> FormatsPerBackend()
    {
        var data = new TheoryData<BackendKind, VirtioGpuFormat>();
        foreach (var f in PixelFormats.All) data.Add(BackendKind.Ours, f);
        // The C back-ends send a resource's bytes unconverted, so only the formats that
        // already are x8r8g8b8 in memory display right there (CBackendFaultTests has the rest).
        foreach (var k in new[] { BackendKind.QemuC, BackendKind.QemuC10 })
        {
            data.Add(k, VirtioGpuFormat.B8G8R8X8Unorm);
            data.Add(k, VirtioGpuFormat.B8G8R8A8Unorm);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(FormatsPerBackend))]
    public void EveryFormat_DisplayShowsTheColoursWritten(BackendKind kind, VirtioGpuFormat format)
    {
        using var b = BackendProcess.Start(kind);
        using var vm = Connect(b);
        var fb = FrameBuffer.Allocate(vm.Ram, 320, 200, format, scattered: true);
        fb.Fill((x, y) => TestPatterns.BarsAt(x, y, 320, 0) ^ (y << 1));
        vm.Driver.SetUpFrameBuffer(1, fb, 0);
        long before = vm.Display!.UpdateCount;
        vm.Driver.Present(1, fb, new VirtioGpuRect(0, 0, 320, 200));
        Assert.True(vm.Display.WaitFor(d => d.UpdateCount > before, TimeSpan.FromSeconds(5)));
        AssertConsoleEquals(vm, 0, fb);
    }

    [Theory]
    [MemberData(nameof(Backends))]
    public void PartialRect_UpdateCarriesOnlyThatRect(BackendKind kind)
    {
        using var b = BackendProcess.Start(kind);
        using var vm = Connect(b);
        var fb = FrameBuffer.Allocate(vm.Ram, 320, 200, VirtioGpuFormat.B8G8R8X8Unorm, scattered: true);
        fb.Fill((x, y) => 0xFF203040); // not black: a blank console must not pass for this frame
        vm.Driver.SetUpFrameBuffer(1, fb, 0);
        vm.Driver.Present(1, fb, new VirtioGpuRect(0, 0, 320, 200));
        AssertConsoleEquals(vm, 0, fb); // the full frame is in (UPDATEs arrive asynchronously)
        // Back-ends differ in how many full UPDATEs set-up makes (the C back-end may send one
        // more after the console already matches): wait until none has come for 300 ms.
        for (long seen = -1; vm.Display!.UpdateCount != seen;)
        {
            seen = vm.Display.UpdateCount;
            Thread.Sleep(300);
        }
        fb.FillRect(37, 21, 64, 48, 0xFF12AB34);
        long before = vm.Display!.UpdateCount;
        vm.Driver.Present(1, fb, new VirtioGpuRect(37, 21, 64, 48));
        Assert.True(vm.Display.WaitFor(d => d.UpdateCount > before, TimeSpan.FromSeconds(5)));
        var u = vm.Display.Updates[^1];
        Assert.Equal((37u, 21u, 64u, 48u), (u.X, u.Y, u.Width, u.Height));
        Assert.Equal(before + 1, vm.Display.UpdateCount); // exactly one UPDATE for the rect
        AssertConsoleEquals(vm, 0, fb);
    }

    [Theory]
    [MemberData(nameof(Backends))]
    public void TwoScanouts_EachShowsItsOwnResource(BackendKind kind)
    {
        using var b = BackendProcess.Start(kind);
        using var vm = Connect(b, heads: 2);
        var fbs = new List<FrameBuffer>();
        for (uint head = 0; head < 2; head++)
        {
            var fb = FrameBuffer.Allocate(vm.Ram, 320, 200, VirtioGpuFormat.B8G8R8X8Unorm, scattered: false);
            fb.Fill((x, y) => TestPatterns.BarsAt(x, y, 320, head));
            vm.Driver.SetUpFrameBuffer(head + 1, fb, head);
            vm.Driver.Present(head + 1, fb, new VirtioGpuRect(0, 0, 320, 200));
            fbs.Add(fb);
        }
        Assert.True(vm.Display!.WaitFor(d => d.Updates.Count(u => u.Scanout == 1) > 0, TimeSpan.FromSeconds(5)));
        AssertConsoleEquals(vm, 0, fbs[0]);
        AssertConsoleEquals(vm, 1, fbs[1]);
    }

    [Theory]
    [MemberData(nameof(Backends))]
    public void Cursor_UpdateAndMoveReachTheDisplay(BackendKind kind)
    {
        using var b = BackendProcess.Start(kind);
        using var vm = Connect(b);
        var cur = FrameBuffer.Allocate(vm.Ram, 64, 64, VirtioGpuFormat.B8G8R8A8Unorm, scattered: false);
        cur.Fill((x, y) => x < 32 ? 0x80FF0000u : 0xFF00FF00u);
        vm.Driver.SetUpFrameBuffer(7, cur);
        vm.Driver.TransferToHost2D(7, new VirtioGpuRect(0, 0, 64, 64), 0);
        Assert.Equal(0u, vm.Driver.UpdateCursor(0, 10, 20, 7, 3, 4));
        Assert.True(vm.Display!.WaitFor(d => d.Cursor?.Image is not null, TimeSpan.FromSeconds(5)));
        var c = vm.Display.Cursor!;
        Assert.Equal((10u, 20u, 3u, 4u), (c.X, c.Y, c.HotX, c.HotY));
        Assert.Equal(0x80FF0000u, c.Image![0]);
        Assert.Equal(0xFF00FF00u, c.Image![63]);
        vm.Driver.MoveCursor(0, 100, 50, 7);
        Assert.True(vm.Display.WaitFor(d => d.Cursor?.X == 100, TimeSpan.FromSeconds(5)));
        Assert.Equal((100u, 50u, true), (vm.Display.Cursor!.X, vm.Display.Cursor.Y, vm.Display.Cursor.Visible));
    }

    [Theory]
    [MemberData(nameof(Backends))]
    public void FencedCommand_ResponseEchoesFenceId(BackendKind kind)
    {
        using var b = BackendProcess.Start(kind);
        using var vm = Connect(b);
        var r = vm.Driver.CreateResource2D(3, VirtioGpuFormat.B8G8R8X8Unorm, 64, 64, fence: true);
        Assert.Equal(VirtioGpuCtrlType.OkNoData, r.Type);
        Assert.Equal(VirtioGpuCtrlHeader.FlagFence, r.Header.Flags & VirtioGpuCtrlHeader.FlagFence);
        Assert.NotEqual(0UL, r.Header.FenceId);
        var r2 = vm.Driver.CreateResource2D(4, VirtioGpuFormat.B8G8R8X8Unorm, 64, 64, fence: true);
        Assert.Equal(r.Header.FenceId + 1, r2.Header.FenceId);
    }

    [Theory]
    [MemberData(nameof(Backends))]
    public void DisplayInfoAndEdid_ComeFromTheDisplaySide(BackendKind kind)
    {
        using var b = BackendProcess.Start(kind);
        using var vm = Connect(b, w: 1024, h: 768);
        var info = GpuDriver.ParseDisplayInfo(GpuDriver.Expect(vm.Driver.GetDisplayInfo(), "GET_DISPLAY_INFO"));
        Assert.Equal((1024u, 768u, 1u), (info[0].Rect.Width, info[0].Rect.Height, info[0].Enabled));
        if ((vm.AckedFeatures & VirtioGpuFeatures.Edid) == 0)
        {
            // QEMU 7.2's back-end does not offer EDID; without the feature GET_EDID is an error.
            Assert.Equal(BackendKind.QemuC, kind);
            Assert.Equal(VirtioGpuCtrlType.ErrUnspec, vm.Driver.GetEdid(0).Type);
            return;
        }
        var edid = GpuDriver.ParseEdid(GpuDriver.Expect(vm.Driver.GetEdid(0), "GET_EDID"));
        var mode = Device.Edid.EdidBuilder.ParsePreferredMode(edid);
        Assert.Equal((1024u, 768u), (mode!.Value.Width, mode.Value.Height));
    }

    [Theory]
    [MemberData(nameof(Backends))]
    public void InvalidResourceId_GetsSpecError(BackendKind kind)
    {
        using var b = BackendProcess.Start(kind);
        using var vm = Connect(b);
        Assert.Equal(VirtioGpuCtrlType.ErrInvalidResourceId, vm.Driver.Flush(99, new VirtioGpuRect(0, 0, 1, 1)).Type);
        Assert.Equal(VirtioGpuCtrlType.ErrInvalidResourceId, vm.Driver.Unref(99).Type);
        Assert.Equal(VirtioGpuCtrlType.ErrInvalidScanoutId, vm.Driver.SetScanout(16, 0, default).Type);
    }
}
