using VirtioGpuHost.Device.Wire;
using VirtioGpuHost.FrontEnd;
using VirtioGpuHost.GuestMemory;
using VirtioGpuHost.TestKit;
using static VirtioGpuHost.UnitTests.Device.BlobTestKit;
using static VirtioGpuHost.UnitTests.Device.DeviceTestHelpers;

namespace VirtioGpuHost.UnitTests.Device;

/// <summary>SET_SCANOUT_BLOB and RESOURCE_FLUSH of blobs: zero copy where the pages allow it, gathers where not.</summary>
public class ScanoutBlobTests
{
    private const VirtioGpuFormat Xrgb = VirtioGpuFormat.B8G8R8X8Unorm;

    [Fact]
    public void ContiguousGuestBlob_SurfaceIsGuestRamAtTheOffset_NoBytesCopied()
    {
        using var rig = BlobRig();
        var fb = rig.NewGuestBlob(1, 32, 16);
        fb.Fill(Colour);
        // Show rows 1.. of a 32x15 framebuffer starting one row into the blob.
        rig.Driver.SetScanoutBlob(0, 1, new VirtioGpuRect(2, 1, 20, 10), 32, 15, Xrgb, fb.Stride, offset: fb.Stride).Is(VirtioGpuCtrlType.OkNoData);
        var surface = rig.Display.Surfaces[0];
        var start = fb.Entries[0].Address.Value - rig.Ram.GuestBase.Value + fb.Stride;
        Assert.Equal(rig.Ram.Block.Address + (nint)start, surface.Address(0, 0));
        Assert.Equal((32u, 15u, fb.Stride, Xrgb), (surface.Width, surface.Height, surface.Stride, surface.Format));
        Assert.Equal(ExpectedConsole(new VirtioGpuRect(2, 2, 20, 10), Colour), rig.Display.Console(0));

        // The guest writes its RAM: the surface shows it, and a flush copies nothing.
        fb.FillRect(0, 0, 32, 16, 0xFF123456);
        Assert.Equal(0x56, surface.Row(new VirtioGpuRect(2, 1, 20, 10), 0)[0]);
        rig.Driver.Flush(1, new VirtioGpuRect(0, 0, 32, 15)).Is(VirtioGpuCtrlType.OkNoData);
        Assert.Equal(0xFF123456u, rig.Display.Pixel(0, 5, 5));
        Assert.Equal(0UL, rig.Device.ScanoutBytesCopied);
        Assert.Equal(0UL, rig.Device.BlobGatherBytes);

        // A 2D resource's transfer does count its bytes.
        var fb2 = rig.NewFrameBuffer(2, 8, 8);
        rig.Driver.TransferToHost2D(2, new VirtioGpuRect(0, 0, 8, 8), 0).Is(VirtioGpuCtrlType.OkNoData);
        Assert.Equal(8UL * 8 * 4, rig.Device.ScanoutBytesCopied);
        rig.AssertNoWarnings();
    }

    [Fact]
    public void ScatteredGuestBlob_GatheredForTheFlushedRectOnly()
    {
        using var rig = BlobRig();
        var fb = rig.NewGuestBlob(1, 64, 32, scattered: true);
        fb.Fill(Colour);
        rig.Driver.SetScanoutBlob(0, 1, new VirtioGpuRect(0, 0, 64, 32), 64, 32, Xrgb, fb.Stride).Is(VirtioGpuCtrlType.OkNoData);
        ulong full = 64UL * 32 * 4;
        Assert.Equal(full, rig.Device.BlobGatherBytes);
        Assert.Equal(ExpectedConsole(new VirtioGpuRect(0, 0, 64, 32), Colour), rig.Display.Console(0));
        Assert.NotEqual(rig.Ram.Block, rig.Display.Surfaces[0].Memory);

        fb.FillRect(0, 0, 64, 32, 0xFF00FF00);
        rig.Driver.Flush(1, new VirtioGpuRect(10, 5, 7, 3)).Is(VirtioGpuCtrlType.OkNoData);
        Assert.Equal(full + 7 * 3 * 4, rig.Device.BlobGatherBytes);
        Assert.Equal(rig.Device.BlobGatherBytes, rig.Device.ScanoutBytesCopied);
        Assert.Equal(0xFF00FF00u, rig.Display.Pixel(0, 12, 6));
        Assert.Equal(Colour(20, 6), rig.Display.Pixel(0, 20, 6)); // outside the flushed rect: not gathered
        Assert.True(rig.Device.HostMemoryInUse >= full); // the gather copy is charged
    }

    [Fact]
    public void HostBlob_SurfaceIsItsMemfd()
    {
        using var rig = BlobRig();
        rig.NewHostBlob(1, 16 * 16 * 4);
        var mem = rig.Blob(1).HostMemory!;
        mem.AsSpan(0, 4).Fill(0x7F);
        rig.Driver.SetScanoutBlob(0, 1, new VirtioGpuRect(0, 0, 16, 16), 16, 16, Xrgb, 64).Is(VirtioGpuCtrlType.OkNoData);
        Assert.Same(mem, rig.Display.Surfaces[0].Memory);
        Assert.Equal(0xFF7F7F7Fu, rig.Display.Pixel(0, 0, 0));
        Assert.Equal(0UL, rig.Device.ScanoutBytesCopied);
    }

    public static TheoryData<string, VirtioGpuCtrlType, string> BadScanouts => new()
    {
        { "scanout-id", VirtioGpuCtrlType.ErrInvalidScanoutId, "scanout_id 16" },
        { "unknown", VirtioGpuCtrlType.ErrInvalidResourceId, "resource_id 9" },
        { "2d", VirtioGpuCtrlType.ErrInvalidParameter, "not a blob" },
        { "format", VirtioGpuCtrlType.ErrInvalidParameter, "format 99" },
        { "width0", VirtioGpuCtrlType.ErrInvalidParameter, "size 0x16" },
        { "stride-small", VirtioGpuCtrlType.ErrInvalidParameter, "stride 60" },
        { "stride-unaligned", VirtioGpuCtrlType.ErrInvalidParameter, "stride 66" },
        { "past-blob", VirtioGpuCtrlType.ErrInvalidParameter, "of the 1024-byte blob" },
        { "offset-past-blob", VirtioGpuCtrlType.ErrInvalidParameter, "of the 1024-byte blob" },
        { "huge", VirtioGpuCtrlType.ErrInvalidParameter, "of the 1024-byte blob" },
        { "plane1", VirtioGpuCtrlType.ErrInvalidParameter, "plane 1" },
        { "rect-outside", VirtioGpuCtrlType.ErrInvalidParameter, "outside the 16x16" },
        { "rect-empty", VirtioGpuCtrlType.ErrInvalidParameter, "is empty" },
    };

    [Theory]
    [MemberData(nameof(BadScanouts))]
    public void SetScanoutBlob_Invalid_RefusedAndScanoutUnchanged(string which, VirtioGpuCtrlType error, string field)
    {
        using var rig = BlobRig();
        rig.NewGuestBlob(1, 16, 16);
        rig.Driver.CreateResource2D(2, Xrgb, 4, 4).Is(VirtioGpuCtrlType.OkNoData);
        var full = new VirtioGpuRect(0, 0, 16, 16);
        var d = rig.Driver;
        var reply = which switch
        {
            "scanout-id" => d.SetScanoutBlob(16, 1, full, 16, 16, Xrgb, 64),
            "unknown" => d.SetScanoutBlob(0, 9, full, 16, 16, Xrgb, 64),
            "2d" => d.SetScanoutBlob(0, 2, full, 16, 16, Xrgb, 64),
            "format" => d.SetScanoutBlob(0, 1, full, 16, 16, (VirtioGpuFormat)99, 64),
            "width0" => d.SetScanoutBlob(0, 1, full, 0, 16, Xrgb, 64),
            "stride-small" => d.SetScanoutBlob(0, 1, full, 16, 16, Xrgb, 60),
            "stride-unaligned" => d.SetScanoutBlob(0, 1, full, 16, 16, Xrgb, 66),
            "past-blob" => d.SetScanoutBlob(0, 1, full, 16, 16, Xrgb, 68),
            "offset-past-blob" => d.SetScanoutBlob(0, 1, full, 16, 16, Xrgb, 64, offset: 4),
            "huge" => d.SetScanoutBlob(0, 1, full, 16384, 16384, Xrgb, 65536, offset: uint.MaxValue),
            "plane1" => d.Submit(Plane1(rig)),
            "rect-outside" => d.SetScanoutBlob(0, 1, new VirtioGpuRect(1, 0, 16, 16), 16, 16, Xrgb, 64),
            "rect-empty" => d.SetScanoutBlob(0, 1, new VirtioGpuRect(0, 0, 0, 16), 16, 16, Xrgb, 64),
            _ => throw new ArgumentException(which),
        };
        reply.Is(error);
        Assert.Null(rig.Device.GetScanout(0).Resource);
        Assert.Empty(rig.Display.ScanoutEvents);
        rig.AssertOneGuestError("SET_SCANOUT_BLOB", field);
    }

    private static VirtioGpuSetScanoutBlob Plane1(DeviceRig rig)
    {
        var c = new VirtioGpuSetScanoutBlob { Header = rig.Driver.Header(VirtioGpuCtrlType.SetScanoutBlob), ResourceId = 1, Rect = new(0, 0, 16, 16), Width = 16, Height = 16, Format = Xrgb };
        c.Strides[0] = 64;
        c.Strides[1] = 64;
        return c;
    }

    [Fact]
    public void SetScanoutBlob_Resource0_Disables()
    {
        using var rig = BlobRig();
        rig.NewGuestBlob(1, 16, 16);
        rig.Driver.SetScanoutBlob(0, 1, new VirtioGpuRect(0, 0, 16, 16), 16, 16, Xrgb, 64).Is(VirtioGpuCtrlType.OkNoData);
        var held = rig.Display.Surfaces[0].Memory;
        rig.Driver.SetScanoutBlob(0, 0, default, 0, 0, Xrgb, 0).Is(VirtioGpuCtrlType.OkNoData);
        Assert.Null(rig.Device.GetScanout(0).Resource);
        Assert.False(rig.Display.Surfaces.ContainsKey(0));
        Assert.Equal((0u, false), (rig.Display.ScanoutEvents[^1].Scanout, rig.Display.ScanoutEvents[^1].Enabled));
        Assert.Same(rig.Ram.Block, held);
    }

    [Fact]
    public void Unref_BlobOnAScanout_ScanoutDisabledAndReferencesReturned()
    {
        using var rig = BlobRig();
        rig.NewGuestBlob(1, 64, 32, scattered: true);
        rig.Driver.SetScanoutBlob(0, 1, new VirtioGpuRect(0, 0, 64, 32), 64, 32, Xrgb, 256).Is(VirtioGpuCtrlType.OkNoData);
        Assert.True(rig.Device.HostMemoryInUse > 8192);
        rig.Driver.Unref(1).Is(VirtioGpuCtrlType.OkNoData);
        Assert.Null(rig.Device.GetScanout(0).Resource);
        Assert.Equal(0UL, rig.Device.HostMemoryInUse); // the gather copy was refunded too
    }

    [Fact]
    public void Flush_MemoryTableChanged_ViewReResolvedInTheNewSnapshot()
    {
        using var rig = BlobRig();
        var fb = rig.NewGuestBlob(1, 16, 16);
        fb.Fill(Colour);
        rig.Driver.SetScanoutBlob(0, 1, new VirtioGpuRect(0, 0, 16, 16), 16, 16, Xrgb, 64).Is(VirtioGpuCtrlType.OkNoData);
        var oldSurface = rig.Display.Surfaces[0];
        var oldSource = oldSurface.Source!.AcquireCurrent()!; // a compositor reading the old memory
        // A new memory table: the same guest addresses, now backed by another block (a copy).
        var copy = NativeBlock.Allocate(rig.Ram.Size);
        rig.Ram.Block.AsSpan(0, (int)rig.Ram.Size).CopyTo(copy.AsSpan(0, (int)rig.Ram.Size));
        using var map = GuestMemoryMap.Create([new GuestRegion(rig.Ram.GuestBase, rig.Ram.Size, 0x7000_0000_0000, 0, copy)]);
        copy.Release(); // the map holds it
        rig.MemoryOverride = map;
        rig.Driver.Flush(1, new VirtioGpuRect(0, 0, 16, 16)).Is(VirtioGpuCtrlType.OkNoData);
        var now = rig.Display.Surfaces[0];
        Assert.Same(copy, now.Memory);
        Assert.Same(copy, now.Source!.AcquireCurrent()!.Memory);
        copy.Release();
        // The old surface stays readable for whoever still holds it.
        Assert.Same(rig.Ram.Block, oldSource.Memory);
        Assert.Equal((byte)(Colour(0, 0) & 0xFF), oldSource.Row(new VirtioGpuRect(0, 0, 16, 16), 0)[0]);
        oldSource.Memory.Release();
        Assert.Equal(ExpectedConsole(new VirtioGpuRect(0, 0, 16, 16), Colour), rig.Display.Console(0));
        rig.MemoryOverride = null;
        rig.Device.ResetState();
    }

    [Fact]
    public void Flush_BlobPagesGoneFromMemory_ErrUnspec()
    {
        using var rig = BlobRig();
        rig.NewGuestBlob(1, 16, 16);
        rig.Driver.SetScanoutBlob(0, 1, new VirtioGpuRect(0, 0, 16, 16), 16, 16, Xrgb, 64).Is(VirtioGpuCtrlType.OkNoData);
        using var empty = GuestMemoryMap.Empty();
        rig.MemoryOverride = empty;
        rig.Driver.Flush(1, new VirtioGpuRect(0, 0, 16, 16)).Is(VirtioGpuCtrlType.ErrUnspec);
        rig.MemoryOverride = null;
        rig.AssertOneGuestError("RESOURCE_FLUSH", "no longer in guest memory");
    }

    [Fact]
    public void AcquireCurrent_TakesAReference()
    {
        using var rig = BlobRig();
        rig.NewHostBlob(1, 4096);
        rig.Driver.SetScanoutBlob(0, 1, new VirtioGpuRect(0, 0, 16, 16), 16, 16, Xrgb, 64).Is(VirtioGpuCtrlType.OkNoData);
        var source = rig.Display.Surfaces[0].Source!;
        var s = source.AcquireCurrent()!;
        rig.Driver.Unref(1).Is(VirtioGpuCtrlType.OkNoData);
        Assert.True(s.Memory.IsExclusive); // only the reader holds it now, and it is still mapped
        Assert.Equal(0, s.Memory.AsSpan(0, 4)[0]);
        s.Memory.Release();
        Assert.Null(source.AcquireCurrent()); // the scanout went away
    }

    [Fact]
    public void Flush_BlobOnTwoScanouts_EachGetsItsClippedDamage()
    {
        using var rig = BlobRig(new VirtioGpuHost.Device.GpuDeviceOptions { Blob = true, Scanouts = 2 });
        rig.NewGuestBlob(1, 32, 16);
        rig.Driver.SetScanoutBlob(0, 1, new VirtioGpuRect(0, 0, 16, 16), 32, 16, Xrgb, 128).Is(VirtioGpuCtrlType.OkNoData);
        rig.Driver.SetScanoutBlob(1, 1, new VirtioGpuRect(16, 0, 16, 16), 32, 16, Xrgb, 128).Is(VirtioGpuCtrlType.OkNoData);
        rig.Display.Flushes.Clear();
        rig.Driver.Flush(1, new VirtioGpuRect(12, 2, 8, 2)).Is(VirtioGpuCtrlType.OkNoData);
        Assert.Equal([(0u, new VirtioGpuRect(12, 2, 4, 2)), (1u, new VirtioGpuRect(0, 2, 4, 2))], rig.Display.Flushes);
    }

    [Fact]
    public void NewDisplay_GetsTheBlobScanout()
    {
        using var rig = BlobRig();
        var fb = rig.NewGuestBlob(1, 16, 16);
        fb.Fill(Colour);
        rig.Driver.SetScanoutBlob(0, 1, new VirtioGpuRect(0, 0, 16, 16), 16, 16, Xrgb, 64).Is(VirtioGpuCtrlType.OkNoData);
        var second = new FakeDisplay();
        rig.Device.Display = second;
        Assert.Equal(ExpectedConsole(new VirtioGpuRect(0, 0, 16, 16), Colour), second.Console(0));
    }

    [Fact]
    public void SetScanoutBlob_NotNegotiated_ErrUnspec()
    {
        using var rig = BlobRig();
        rig.NewGuestBlob(1, 16, 16);
        rig.Device.AcknowledgeFeatures(0);
        rig.Driver.SetScanoutBlob(0, 1, new VirtioGpuRect(0, 0, 16, 16), 16, 16, Xrgb, 64).Is(VirtioGpuCtrlType.ErrUnspec);
        Assert.Null(rig.Device.GetScanout(0).Resource);
    }
}
