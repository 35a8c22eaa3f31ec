using VirtioGpuHost.Device;
using VirtioGpuHost.Device.Wire;
using VirtioGpuHost.FrontEnd;
using VirtioGpuHost.TestKit;
using static VirtioGpuHost.UnitTests.Device.DeviceTestHelpers;

namespace VirtioGpuHost.UnitTests.Device;

/// <summary>SET_SCANOUT and RESOURCE_FLUSH: what the display receives, pixel for pixel, in scanout coordinates.</summary>
public class ScanoutTests
{
    private static GpuReply Transfer(DeviceRig rig, FrameBuffer fb, uint id, VirtioGpuRect rect) =>
        rig.Driver.TransferToHost2D(id, rect, (ulong)rect.Y * fb.Stride + rect.X * 4UL);

    private static (DeviceRig Rig, FrameBuffer Fb) PaintedResource(uint w, uint h, GpuDeviceOptions? options = null, bool scattered = false)
    {
        var rig = DeviceRig.Create(options);
        var fb = rig.NewFrameBuffer(1, w, h, scattered: scattered);
        fb.Fill(Colour);
        Transfer(rig, fb, 1, new VirtioGpuRect(0, 0, w, h)).Is(VirtioGpuCtrlType.OkNoData);
        return (rig, fb);
    }

    [Fact]
    public void SetScanout_WholeResource_DisplayGetsScanoutAndFullUpdateOfCurrentContent()
    {
        var (rig, fb) = PaintedResource(40, 30);
        using var _ = rig;
        var full = new VirtioGpuRect(0, 0, 40, 30);
        rig.Driver.SetScanout(0, 1, full).Is(VirtioGpuCtrlType.OkNoData);
        Assert.Equal([(0u, true, full)], rig.Display.ScanoutEvents);
        Assert.Equal([(0u, full)], rig.Display.Flushes);
        Assert.Equal(ExpectedConsole(full, Colour), rig.Display.Console(0));
        var s = rig.Device.GetScanout(0);
        Assert.Same(rig.Device.Res2D(1), s.Resource);
        Assert.Equal(full, s.Source);
        rig.AssertNoWarnings();
    }

    [Fact]
    public void SetScanout_PartOfResource_FullUpdateShowsThatPart()
    {
        var (rig, fb) = PaintedResource(64, 48);
        using var _ = rig;
        var source = new VirtioGpuRect(16, 8, 32, 24);
        rig.Driver.SetScanout(0, 1, source).Is(VirtioGpuCtrlType.OkNoData);
        Assert.Equal([(0u, true, source)], rig.Display.ScanoutEvents);
        Assert.Equal([(0u, new VirtioGpuRect(0, 0, 32, 24))], rig.Display.Flushes);
        Assert.Equal(ExpectedConsole(source, Colour), rig.Display.Console(0));
    }

    [Fact]
    public void Flush_ScanoutShowsPartOfResource_DamageInScanoutCoordinates()
    {
        var (rig, fb) = PaintedResource(64, 48, scattered: true);
        using var _ = rig;
        var source = new VirtioGpuRect(16, 8, 32, 24);
        rig.Driver.SetScanout(0, 1, source).Is(VirtioGpuCtrlType.OkNoData);
        rig.Display.Flushes.Clear();

        // The guest paints a rect inside the scanout, transfers and flushes it.
        var rect = new VirtioGpuRect(20, 10, 8, 6);
        fb.FillRect(rect.X, rect.Y, rect.Width, rect.Height, 0xFF123456);
        Transfer(rig, fb, 1, rect).Is(VirtioGpuCtrlType.OkNoData);
        rig.Driver.Flush(1, rect).Is(VirtioGpuCtrlType.OkNoData);

        Assert.Equal([(0u, new VirtioGpuRect(4, 2, 8, 6))], rig.Display.Flushes);
        uint Now(uint x, uint y) => x >= 20 && x < 28 && y >= 10 && y < 16 ? 0xFF123456 : Colour(x, y);
        Assert.Equal(ExpectedConsole(source, Now), rig.Display.Console(0));
        Assert.Equal(1, rig.Device.Flushes);
    }

    [Fact]
    public void Flush_RectOverlapsScanoutEdge_DamageClippedToScanout()
    {
        var (rig, fb) = PaintedResource(64, 48);
        using var _ = rig;
        var source = new VirtioGpuRect(16, 8, 32, 24);
        rig.Driver.SetScanout(0, 1, source).Is(VirtioGpuCtrlType.OkNoData);
        rig.Display.Flushes.Clear();
        fb.FillRect(0, 0, 64, 48, 0xFFABCDEF);
        Transfer(rig, fb, 1, new VirtioGpuRect(0, 0, 64, 48)).Is(VirtioGpuCtrlType.OkNoData);

        rig.Driver.Flush(1, new VirtioGpuRect(0, 0, 20, 12)).Is(VirtioGpuCtrlType.OkNoData);
        Assert.Equal([(0u, new VirtioGpuRect(0, 0, 4, 4))], rig.Display.Flushes);
        uint Now(uint x, uint y) => x < 20 && y < 12 ? 0xFFABCDEF : Colour(x, y);
        Assert.Equal(ExpectedConsole(source, Now), rig.Display.Console(0));

        rig.Driver.Flush(1, new VirtioGpuRect(40, 30, 24, 18)).Is(VirtioGpuCtrlType.OkNoData);
        Assert.Equal(new VirtioGpuRect(24, 22, 8, 2), rig.Display.Flushes[^1].Damage);
    }

    [Fact]
    public void Flush_RectOutsideScanoutSource_OkAndNothingSent()
    {
        var (rig, fb) = PaintedResource(64, 48);
        using var _ = rig;
        rig.Driver.SetScanout(0, 1, new VirtioGpuRect(16, 8, 32, 24)).Is(VirtioGpuCtrlType.OkNoData);
        rig.Display.Flushes.Clear();
        rig.Driver.Flush(1, new VirtioGpuRect(0, 0, 16, 48)).Is(VirtioGpuCtrlType.OkNoData);
        rig.Driver.Flush(1, new VirtioGpuRect(48, 0, 16, 48)).Is(VirtioGpuCtrlType.OkNoData);
        rig.Driver.Flush(1, new VirtioGpuRect(0, 32, 64, 16)).Is(VirtioGpuCtrlType.OkNoData);
        rig.Driver.Flush(1, new VirtioGpuRect(20, 10, 0, 0)).Is(VirtioGpuCtrlType.OkNoData);
        Assert.Empty(rig.Display.Flushes);
        rig.AssertNoWarnings();
    }

    [Fact]
    public void Flush_ResourceNotOnAnyScanout_OkAndNothingSent()
    {
        var (rig, fb) = PaintedResource(16, 16);
        using var _ = rig;
        rig.Driver.Flush(1, new VirtioGpuRect(0, 0, 16, 16)).Is(VirtioGpuCtrlType.OkNoData);
        Assert.Empty(rig.Display.Flushes);
        Assert.Equal(0, rig.Device.Flushes);
    }

    [Fact]
    public void Flush_OneResourceOnTwoScanouts_EachGetsItsPartInItsCoordinates()
    {
        var (rig, fb) = PaintedResource(80, 30, new GpuDeviceOptions { Scanouts = 2 });
        using var _ = rig;
        var left = new VirtioGpuRect(0, 0, 40, 30);
        var right = new VirtioGpuRect(40, 0, 40, 30);
        rig.Driver.SetScanout(0, 1, left).Is(VirtioGpuCtrlType.OkNoData);
        rig.Driver.SetScanout(1, 1, right).Is(VirtioGpuCtrlType.OkNoData);
        Assert.Equal(ExpectedConsole(left, Colour), rig.Display.Console(0));
        Assert.Equal(ExpectedConsole(right, Colour), rig.Display.Console(1));
        rig.Display.Flushes.Clear();

        fb.FillRect(30, 5, 20, 10, 0xFF00FF00);
        var rect = new VirtioGpuRect(30, 5, 20, 10);
        Transfer(rig, fb, 1, rect).Is(VirtioGpuCtrlType.OkNoData);
        rig.Driver.Flush(1, rect).Is(VirtioGpuCtrlType.OkNoData);
        Assert.Equal([(0u, new VirtioGpuRect(30, 5, 10, 10)), (1u, new VirtioGpuRect(0, 5, 10, 10))], rig.Display.Flushes);
        uint Now(uint x, uint y) => x >= 30 && x < 50 && y >= 5 && y < 15 ? 0xFF00FF00 : Colour(x, y);
        Assert.Equal(ExpectedConsole(left, Now), rig.Display.Console(0));
        Assert.Equal(ExpectedConsole(right, Now), rig.Display.Console(1));
        Assert.Equal(2, rig.Device.Flushes);
    }

    [Fact]
    public void Flush_SameRegionOnTwoScanouts_BothUpdated()
    {
        var (rig, fb) = PaintedResource(32, 32, new GpuDeviceOptions { Scanouts = 2 });
        using var _ = rig;
        var all = new VirtioGpuRect(0, 0, 32, 32);
        rig.Driver.SetScanout(0, 1, all).Is(VirtioGpuCtrlType.OkNoData);
        rig.Driver.SetScanout(1, 1, new VirtioGpuRect(8, 8, 16, 16)).Is(VirtioGpuCtrlType.OkNoData);
        rig.Display.Flushes.Clear();
        fb.FillRect(0, 0, 32, 32, 0xFF0000FF);
        Transfer(rig, fb, 1, all).Is(VirtioGpuCtrlType.OkNoData);
        rig.Driver.Flush(1, all).Is(VirtioGpuCtrlType.OkNoData);
        Assert.Equal([(0u, all), (1u, new VirtioGpuRect(0, 0, 16, 16))], rig.Display.Flushes);
        Assert.All(rig.Display.Console(0), p => Assert.Equal(0xFF0000FFu, p));
        Assert.All(rig.Display.Console(1), p => Assert.Equal(0xFF0000FFu, p));
    }

    public static TheoryData<uint, uint, uint, uint> FlushOutsideRects => new()
    {
        { 0, 0, 17, 16 },
        { 0, 0, 16, 17 },
        { 16, 16, 1, 1 },
        { uint.MaxValue, 0, 2, 1 },
        { 0, 1, 1, uint.MaxValue },
    };

    [Theory]
    [MemberData(nameof(FlushOutsideRects))]
    public void Flush_RectOutsideResource_ErrInvalidParameterAndNothingSent(uint x, uint y, uint w, uint h)
    {
        var (rig, fb) = PaintedResource(16, 16);
        using var _ = rig;
        rig.Driver.SetScanout(0, 1, new VirtioGpuRect(0, 0, 16, 16)).Is(VirtioGpuCtrlType.OkNoData);
        rig.Display.Flushes.Clear();
        var rect = new VirtioGpuRect(x, y, w, h);
        rig.Driver.Flush(1, rect).Is(VirtioGpuCtrlType.ErrInvalidParameter);
        Assert.Empty(rig.Display.Flushes);
        rig.AssertOneGuestError("RESOURCE_FLUSH", "resource_id 1", $"rect {rect}");
    }

    [Fact]
    public void Flush_UnknownResource_ErrInvalidResourceId()
    {
        using var rig = DeviceRig.Create();
        rig.Driver.Flush(3, new VirtioGpuRect(0, 0, 1, 1)).Is(VirtioGpuCtrlType.ErrInvalidResourceId);
        rig.AssertOneGuestError("RESOURCE_FLUSH", "resource_id 3");
    }

    [Fact]
    public void Flush_ShortRequest_ErrUnspec()
    {
        var (rig, fb) = PaintedResource(16, 16);
        using var _ = rig;
        rig.Driver.SetScanout(0, 1, new VirtioGpuRect(0, 0, 16, 16)).Is(VirtioGpuCtrlType.OkNoData);
        rig.Display.Flushes.Clear();
        rig.Driver.Submit(Bytes(rig.Driver.FlushCommand(1, new VirtioGpuRect(0, 0, 16, 16)))[..44]).Is(VirtioGpuCtrlType.ErrUnspec);
        Assert.Empty(rig.Display.Flushes);
        rig.AssertOneGuestError("RESOURCE_FLUSH", "44 bytes", "48 bytes");
    }

    // ---- disabling ----

    [Fact]
    public void SetScanout_ResourceZero_DisablesScanout()
    {
        var (rig, fb) = PaintedResource(16, 16);
        using var _ = rig;
        rig.Driver.SetScanout(0, 1, new VirtioGpuRect(0, 0, 16, 16)).Is(VirtioGpuCtrlType.OkNoData);
        rig.Driver.SetScanout(0, 0, default).Is(VirtioGpuCtrlType.OkNoData);
        Assert.Equal((0u, false, default(VirtioGpuRect)), rig.Display.ScanoutEvents[^1]);
        Assert.False(rig.Display.Consoles.ContainsKey(0));
        Assert.Null(rig.Device.GetScanout(0).Resource);
        // The resource lives on; flushing it reaches no display.
        Assert.True(rig.Device.Resources.ContainsKey(1));
        rig.Display.Flushes.Clear();
        rig.Driver.Flush(1, new VirtioGpuRect(0, 0, 16, 16)).Is(VirtioGpuCtrlType.OkNoData);
        Assert.Empty(rig.Display.Flushes);
        rig.AssertNoWarnings();
    }

    [Fact]
    public void SetScanout_ResourceZeroWithGarbageRect_StillDisables()
    {
        var (rig, fb) = PaintedResource(16, 16);
        using var _ = rig;
        rig.Driver.SetScanout(0, 1, new VirtioGpuRect(0, 0, 16, 16)).Is(VirtioGpuCtrlType.OkNoData);
        rig.Driver.SetScanout(0, 0, new VirtioGpuRect(uint.MaxValue, 5, 99999, 0)).Is(VirtioGpuCtrlType.OkNoData);
        Assert.Null(rig.Device.GetScanout(0).Resource);
    }

    [Fact]
    public void SetScanout_DisableAlreadyDisabled_OkWithoutDisplayEvent()
    {
        using var rig = DeviceRig.Create();
        rig.Driver.SetScanout(0, 0, default).Is(VirtioGpuCtrlType.OkNoData);
        Assert.Empty(rig.Display.ScanoutEvents);
    }

    [Fact]
    public void Unref_ScannedOutResource_DisablesEveryScanoutShowingIt()
    {
        var (rig, fb) = PaintedResource(32, 16, new GpuDeviceOptions { Scanouts = 3 });
        using var _ = rig;
        var other = rig.NewFrameBuffer(2, 8, 8);
        rig.Driver.SetScanout(0, 1, new VirtioGpuRect(0, 0, 16, 16)).Is(VirtioGpuCtrlType.OkNoData);
        rig.Driver.SetScanout(1, 1, new VirtioGpuRect(16, 0, 16, 16)).Is(VirtioGpuCtrlType.OkNoData);
        rig.Driver.SetScanout(2, 2, new VirtioGpuRect(0, 0, 8, 8)).Is(VirtioGpuCtrlType.OkNoData);
        rig.Display.ScanoutEvents.Clear();
        rig.Driver.Unref(1).Is(VirtioGpuCtrlType.OkNoData);
        Assert.Equal([(0u, false, default(VirtioGpuRect)), (1u, false, default(VirtioGpuRect))], rig.Display.ScanoutEvents);
        Assert.Null(rig.Device.GetScanout(0).Resource);
        Assert.Null(rig.Device.GetScanout(1).Resource);
        Assert.Same(rig.Device.Res2D(2), rig.Device.GetScanout(2).Resource);
        Assert.Equal(ResourceTests.Charge(8, 8) + GpuDevice.BackingEntryCostBytes, rig.Device.HostMemoryInUse); // NewFrameBuffer attaches one entry
    }

    [Fact]
    public void SetScanout_SwitchToAnotherResource_ShowsNewContent()
    {
        var (rig, fb) = PaintedResource(16, 16);
        using var _ = rig;
        var fb2 = rig.NewFrameBuffer(2, 16, 16, VirtioGpuFormat.R8G8B8X8Unorm);
        fb2.FillRect(0, 0, 16, 16, 0xFF445566);
        Transfer(rig, fb2, 2, new VirtioGpuRect(0, 0, 16, 16)).Is(VirtioGpuCtrlType.OkNoData);
        rig.Driver.SetScanout(0, 1, new VirtioGpuRect(0, 0, 16, 16)).Is(VirtioGpuCtrlType.OkNoData);
        rig.Driver.SetScanout(0, 2, new VirtioGpuRect(0, 0, 16, 16)).Is(VirtioGpuCtrlType.OkNoData);
        Assert.Same(rig.Device.Res2D(2), rig.Device.GetScanout(0).Resource);
        Assert.All(rig.Display.Console(0), p => Assert.Equal(0xFF445566u, p));
        // Flushing the old resource no longer reaches scanout 0.
        rig.Display.Flushes.Clear();
        rig.Driver.Flush(1, new VirtioGpuRect(0, 0, 16, 16)).Is(VirtioGpuCtrlType.OkNoData);
        Assert.Empty(rig.Display.Flushes);
    }

    // ---- scanout ids ----

    [Fact]
    public void SetScanout_DisplayOwnsOutputCount_All16ScanoutsUsable()
    {
        var (rig, fb) = PaintedResource(16, 16);
        using var _ = rig;
        rig.Display.OwnsOutputCount = true;
        for (uint s = 0; s < 16; s++)
            rig.Driver.SetScanout(s, 1, new VirtioGpuRect(s % 8, 0, 8, 8)).Is(VirtioGpuCtrlType.OkNoData);
        for (uint s = 0; s < 16; s++)
        {
            Assert.Equal(ExpectedConsole(new VirtioGpuRect(s % 8, 0, 8, 8), Colour), rig.Display.Console(s));
            Assert.Same(rig.Device.Res2D(1), rig.Device.GetScanout(s).Resource);
        }
        rig.Driver.SetScanout(16, 1, new VirtioGpuRect(0, 0, 8, 8)).Is(VirtioGpuCtrlType.ErrInvalidScanoutId);
        rig.AssertOneGuestError("SET_SCANOUT", "scanout_id 16");
    }

    [Theory]
    [InlineData(1, 1u)]
    [InlineData(2, 2u)]
    [InlineData(4, 15u)]
    [InlineData(1, 16u)]
    [InlineData(1, uint.MaxValue)]
    public void SetScanout_ScanoutNotConfigured_ErrInvalidScanoutId(int scanouts, uint scanout)
    {
        var (rig, fb) = PaintedResource(16, 16, new GpuDeviceOptions { Scanouts = scanouts });
        using var _ = rig;
        rig.Driver.SetScanout(scanout, 1, new VirtioGpuRect(0, 0, 16, 16)).Is(VirtioGpuCtrlType.ErrInvalidScanoutId);
        Assert.Empty(rig.Display.ScanoutEvents);
        rig.AssertOneGuestError("SET_SCANOUT", $"scanout_id {scanout}");
        // Disabling a scanout that does not exist is an error too.
        rig.Driver.SetScanout(scanout, 0, default).Is(VirtioGpuCtrlType.ErrInvalidScanoutId);
    }

    [Fact]
    public void SetScanout_LastConfiguredScanout_Accepted()
    {
        var (rig, fb) = PaintedResource(16, 16, new GpuDeviceOptions { Scanouts = 4 });
        using var _ = rig;
        rig.Driver.SetScanout(3, 1, new VirtioGpuRect(0, 0, 16, 16)).Is(VirtioGpuCtrlType.OkNoData);
        Assert.Equal(ExpectedConsole(new VirtioGpuRect(0, 0, 16, 16), Colour), rig.Display.Console(3));
    }

    public static TheoryData<uint, uint, uint, uint> BadScanoutRects => new()
    {
        { 0, 0, 17, 16 },
        { 0, 0, 16, 17 },
        { 1, 0, 16, 16 },
        { 0, 16, 16, 1 },
        { uint.MaxValue, 0, 2, 2 },
        { 0, 0, 0, 16 },        // empty
        { 0, 0, 16, 0 },
        { 4, 4, 0, 0 },
    };

    [Theory]
    [MemberData(nameof(BadScanoutRects))]
    public void SetScanout_RectEmptyOrOutsideResource_ErrInvalidParameterAndScanoutUnchanged(uint x, uint y, uint w, uint h)
    {
        var (rig, fb) = PaintedResource(16, 16);
        using var _ = rig;
        var good = new VirtioGpuRect(2, 2, 8, 8);
        rig.Driver.SetScanout(0, 1, good).Is(VirtioGpuCtrlType.OkNoData);
        rig.Display.ScanoutEvents.Clear();
        var rect = new VirtioGpuRect(x, y, w, h);
        rig.Driver.SetScanout(0, 1, rect).Is(VirtioGpuCtrlType.ErrInvalidParameter);
        Assert.Empty(rig.Display.ScanoutEvents);
        Assert.Equal(good, rig.Device.GetScanout(0).Source);
        rig.AssertOneGuestError("SET_SCANOUT", "scanout 0", $"rect {rect}");
    }

    [Fact]
    public void SetScanout_UnknownResource_ErrInvalidResourceIdAndScanoutUnchanged()
    {
        var (rig, fb) = PaintedResource(16, 16);
        using var _ = rig;
        rig.Driver.SetScanout(0, 1, new VirtioGpuRect(0, 0, 16, 16)).Is(VirtioGpuCtrlType.OkNoData);
        rig.Driver.SetScanout(0, 9, new VirtioGpuRect(0, 0, 16, 16)).Is(VirtioGpuCtrlType.ErrInvalidResourceId);
        Assert.Same(rig.Device.Res2D(1), rig.Device.GetScanout(0).Resource);
        rig.AssertOneGuestError("SET_SCANOUT", "resource_id 9");
    }

    [Fact]
    public void SetScanout_ShortRequest_ErrUnspec()
    {
        var (rig, fb) = PaintedResource(16, 16);
        using var _ = rig;
        var cmd = Bytes(new VirtioGpuSetScanout { Header = Header(VirtioGpuCtrlType.SetScanout), Rect = new VirtioGpuRect(0, 0, 16, 16), ScanoutId = 0, ResourceId = 1 });
        rig.Driver.Submit(cmd[..44]).Is(VirtioGpuCtrlType.ErrUnspec);
        Assert.Null(rig.Device.GetScanout(0).Resource);
        Assert.Empty(rig.Display.ScanoutEvents);
        rig.AssertOneGuestError("SET_SCANOUT", "44 bytes", "48 bytes");
    }

    [Fact]
    public void SetScanout_ResourceWithoutBacking_ShowsZeroedPixels()
    {
        using var rig = DeviceRig.Create();
        rig.Driver.CreateResource2D(1, VirtioGpuFormat.B8G8R8A8Unorm, 8, 8).Is(VirtioGpuCtrlType.OkNoData);
        rig.Driver.SetScanout(0, 1, new VirtioGpuRect(0, 0, 8, 8)).Is(VirtioGpuCtrlType.OkNoData);
        Assert.All(rig.Display.Console(0), p => Assert.Equal(0xFF000000u, p));
    }

    [Fact]
    public void Display_Replaced_NewDisplayGetsEveryEnabledScanout()
    {
        var (rig, fb) = PaintedResource(32, 32, new GpuDeviceOptions { Scanouts = 2 });
        using var _ = rig;
        rig.Driver.SetScanout(1, 1, new VirtioGpuRect(4, 4, 20, 20)).Is(VirtioGpuCtrlType.OkNoData);
        var fresh = new FakeDisplay();
        rig.Device.Display = fresh;
        Assert.Equal([(1u, true, new VirtioGpuRect(4, 4, 20, 20))], fresh.ScanoutEvents);
        Assert.Equal(ExpectedConsole(new VirtioGpuRect(4, 4, 20, 20), Colour), fresh.Console(1));
        Assert.False(fresh.Consoles.ContainsKey(0));
    }
}
