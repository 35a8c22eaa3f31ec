using VirtioGpuHost.Device;
using VirtioGpuHost.Device.Wire;
using VirtioGpuHost.FrontEnd;
using VirtioGpuHost.TestKit;
using static VirtioGpuHost.UnitTests.Device.DeviceTestHelpers;

namespace VirtioGpuHost.UnitTests.Device;

/// <summary>The cursor queue: UPDATE_CURSOR / MOVE_CURSOR, bad commands ignored with a log line, used length always 0.</summary>
public class CursorTests
{
    public static TheoryData<VirtioGpuFormat> AllFormats => new(PixelFormats.All);

    /// <summary>A cursor colour with varying alpha.</summary>
    private static uint CursorArgb(uint x, uint y) => (x * 4 + 3) << 24 | (y * 4) << 16 | (x ^ y) << 8 | (x + y);

    private static FrameBuffer CursorResource(DeviceRig rig, uint id, VirtioGpuFormat format, uint w = 64, uint h = 64)
    {
        var fb = rig.NewFrameBuffer(id, w, h, format);
        fb.Fill(CursorArgb);
        rig.Driver.TransferToHost2D(id, new VirtioGpuRect(0, 0, w, h), 0, fence: true).Is(VirtioGpuCtrlType.OkNoData);
        return fb;
    }

    [Theory]
    [MemberData(nameof(AllFormats))]
    public void UpdateCursor_64x64Resource_DisplayGetsBgraPixelsAndHotspot(VirtioGpuFormat format)
    {
        using var rig = DeviceRig.Create();
        CursorResource(rig, 5, format);
        Assert.Equal(0u, rig.Driver.UpdateCursor(0, 100, 200, 5, 7, 9));
        var c = rig.Display.Cursor;
        Assert.NotNull(c);
        Assert.Equal((0u, 100u, 200u, 7u, 9u), (c.Value.Scanout, c.Value.X, c.Value.Y, c.Value.HotX, c.Value.HotY));
        Assert.Equal(64 * 64 * 4, c.Value.Bgra.Length);
        bool alpha = PixelFormats.HasAlpha(format);
        for (uint y = 0; y < 64; y++)
        {
            for (uint x = 0; x < 64; x++)
            {
                uint want = CursorArgb(x, y) | (alpha ? 0 : 0xFF000000u);
                uint got = BitConverter.ToUInt32(c.Value.Bgra, (int)(y * 64 + x) * 4);
                Assert.True(want == got, $"{format} pixel {x},{y}: want 0x{want:x8}, got 0x{got:x8}");
            }
        }
        Assert.Equal(1, rig.CursorProcessor.Completed);
        rig.AssertNoWarnings();
    }

    [Fact]
    public void UpdateCursor_HotspotAtLastPixel_Accepted()
    {
        using var rig = DeviceRig.Create();
        CursorResource(rig, 1, VirtioGpuFormat.B8G8R8A8Unorm);
        rig.Driver.UpdateCursor(0, 0, 0, 1, 63, 63);
        Assert.Equal((63u, 63u), (rig.Display.Cursor!.Value.HotX, rig.Display.Cursor!.Value.HotY));
    }

    [Theory]
    [InlineData(32u, 32u)]
    [InlineData(64u, 63u)]
    [InlineData(65u, 64u)]
    [InlineData(128u, 128u)]
    public void UpdateCursor_NotSixtyFourSquare_IgnoredWithLogLine(uint w, uint h)
    {
        using var rig = DeviceRig.Create();
        CursorResource(rig, 2, VirtioGpuFormat.B8G8R8A8Unorm, w, h);
        Assert.Equal(0u, rig.Driver.UpdateCursor(0, 10, 10, 2, 0, 0));
        Assert.Null(rig.Display.Cursor);
        Assert.Null(rig.Display.CursorPosition);
        rig.AssertOneGuestError("UPDATE_CURSOR", "resource_id 2", $"{w}x{h}");
    }

    [Fact]
    public void UpdateCursor_UnknownResource_IgnoredWithLogLine()
    {
        using var rig = DeviceRig.Create();
        Assert.Equal(0u, rig.Driver.UpdateCursor(0, 10, 10, 77, 0, 0));
        Assert.Null(rig.Display.Cursor);
        rig.AssertOneGuestError("UPDATE_CURSOR", "resource_id 77");
    }

    [Theory]
    [InlineData(64u, 0u)]
    [InlineData(0u, 64u)]
    [InlineData(uint.MaxValue, 0u)]
    public void UpdateCursor_HotspotOutsideCursor_IgnoredWithLogLine(uint hotX, uint hotY)
    {
        using var rig = DeviceRig.Create();
        CursorResource(rig, 1, VirtioGpuFormat.B8G8R8A8Unorm);
        Assert.Equal(0u, rig.Driver.UpdateCursor(0, 10, 10, 1, hotX, hotY));
        Assert.Null(rig.Display.Cursor);
        rig.AssertOneGuestError("UPDATE_CURSOR", $"hotspot {hotX},{hotY}");
    }

    [Theory]
    [InlineData(1, false, 1u)]
    [InlineData(1, true, 16u)]
    [InlineData(2, false, 5u)]
    public void CursorCommands_ScanoutOutOfRange_IgnoredWithLogLine(int scanouts, bool ownsOutputs, uint scanout)
    {
        using var rig = DeviceRig.Create(new GpuDeviceOptions { Scanouts = scanouts });
        rig.Display.OwnsOutputCount = ownsOutputs;
        CursorResource(rig, 1, VirtioGpuFormat.B8G8R8A8Unorm);
        Assert.Equal(0u, rig.Driver.UpdateCursor(scanout, 10, 10, 1, 0, 0));
        Assert.Equal(0u, rig.Driver.MoveCursor(scanout, 10, 10, 1));
        Assert.Null(rig.Display.Cursor);
        Assert.Null(rig.Display.CursorPosition);
        var warnings = rig.Logs.Warnings.ToArray();
        Assert.Equal(2, warnings.Length);
        Assert.Contains("UPDATE_CURSOR", warnings[0]);
        Assert.Contains("MOVE_CURSOR", warnings[1]);
        Assert.All(warnings, w => Assert.Contains($"scanout_id {scanout}", w));
        Assert.All(warnings, w => Assert.Contains(Connection, w));
    }

    [Fact]
    public void UpdateCursor_DisplayOwnsOutputCount_Scanout15Accepted()
    {
        using var rig = DeviceRig.Create();
        rig.Display.OwnsOutputCount = true;
        CursorResource(rig, 1, VirtioGpuFormat.B8G8R8A8Unorm);
        rig.Driver.UpdateCursor(15, 1, 2, 1, 3, 4);
        Assert.Equal(15u, rig.Display.Cursor!.Value.Scanout);
    }

    [Fact]
    public void MoveCursor_WithResource_MovesVisibleCursorWithoutNewImage()
    {
        using var rig = DeviceRig.Create();
        CursorResource(rig, 1, VirtioGpuFormat.B8G8R8A8Unorm);
        rig.Driver.UpdateCursor(0, 1, 1, 1, 0, 0);
        var image = rig.Display.Cursor;
        Assert.Equal(0u, rig.Driver.MoveCursor(0, 300, 400, 1));
        Assert.Equal((0u, 300u, 400u, true), rig.Display.CursorPosition);
        Assert.Same(image!.Value.Bgra, rig.Display.Cursor!.Value.Bgra);
        rig.AssertNoWarnings();
    }

    [Fact]
    public void MoveCursor_UnknownResource_StillOnlyMoves()
    {
        // MOVE_CURSOR uses only the position (spec); the resource id just says "visible".
        using var rig = DeviceRig.Create();
        rig.Driver.MoveCursor(0, 5, 6, 1234);
        Assert.Equal((0u, 5u, 6u, true), rig.Display.CursorPosition);
        Assert.Null(rig.Display.Cursor);
    }

    [Fact]
    public void MoveCursor_ResourceZero_HidesCursor()
    {
        using var rig = DeviceRig.Create();
        Assert.Equal(0u, rig.Driver.MoveCursor(0, 30, 40, 0));
        Assert.Equal((0u, 30u, 40u, false), rig.Display.CursorPosition);
        rig.AssertNoWarnings();
    }

    [Fact]
    public void UpdateCursor_ResourceZero_HidesCursor()
    {
        using var rig = DeviceRig.Create();
        Assert.Equal(0u, rig.Driver.UpdateCursor(0, 30, 40, 0, 0, 0));
        Assert.Equal((0u, 30u, 40u, false), rig.Display.CursorPosition);
        Assert.Null(rig.Display.Cursor);
        rig.AssertNoWarnings();
    }

    private static uint SubmitRawCursor(DeviceRig rig, byte[] command)
    {
        var cmd = rig.Ram.Allocator.Allocate((ulong)Math.Max(command.Length, 1));
        command.CopyTo(rig.Ram.Span(cmd, command.Length));
        var resp = rig.Ram.Allocator.Allocate(24);
        rig.Ram.Span(resp, 24).Fill(0xAB);
        ushort head = rig.CursorDriverQueue.Add([new GuestBuffer(cmd, (uint)command.Length)], [new GuestBuffer(resp, 24)]);
        rig.CursorProcessor.Process();
        Assert.True(rig.CursorDriverQueue.TryTakeUsed(out var used, out var written));
        Assert.Equal(head, used);
        // Nothing is written back on the cursor queue.
        Assert.All(rig.Ram.Span(resp, 24).ToArray(), b => Assert.Equal(0xAB, b));
        return written;
    }

    [Fact]
    public void CursorQueue_ShortCommand_IgnoredWithLogLineUsedLengthZero()
    {
        using var rig = DeviceRig.Create();
        var cmd = Bytes(new VirtioGpuUpdateCursor { Header = Header(VirtioGpuCtrlType.MoveCursor), Pos = new VirtioGpuCursorPos { X = 1, Y = 2 }, ResourceId = 1 });
        Assert.Equal(0u, SubmitRawCursor(rig, cmd[..52]));
        Assert.Null(rig.Display.CursorPosition);
        rig.AssertOneGuestError("cursor", "52 bytes", "56 bytes");
    }

    [Theory]
    [InlineData(VirtioGpuCtrlType.GetDisplayInfo)]
    [InlineData(VirtioGpuCtrlType.ResourceCreate2D)]
    [InlineData(VirtioGpuCtrlType.Undefined)]
    [InlineData((VirtioGpuCtrlType)0x302)]
    public void CursorQueue_NonCursorCommand_IgnoredWithLogLine(VirtioGpuCtrlType type)
    {
        using var rig = DeviceRig.Create();
        var cmd = Bytes(new VirtioGpuUpdateCursor { Header = Header(type), ResourceId = 1 });
        Assert.Equal(0u, SubmitRawCursor(rig, cmd));
        Assert.Null(rig.Display.CursorPosition);
        Assert.Null(rig.Display.Cursor);
        Assert.Empty(rig.Device.Resources);
        rig.AssertOneGuestError("cursor", $"0x{(uint)type:x}");
    }

    [Fact]
    public void CursorQueue_SeveralCommands_AllReturnedWithUsedLengthZero()
    {
        using var rig = DeviceRig.Create();
        CursorResource(rig, 1, VirtioGpuFormat.B8G8R8A8Unorm);
        for (uint i = 0; i < 20; i++)
            Assert.Equal(0u, i % 2 == 0 ? rig.Driver.MoveCursor(0, i, i, 1) : rig.Driver.UpdateCursor(0, i, i, 1, 0, 0));
        Assert.Equal(20, rig.CursorProcessor.Completed);
        Assert.All(rig.UsedElements(rig.CursorDriverQueue), e => Assert.Equal(0u, e.Written));
        Assert.Equal((0u, 18u, 18u, true), rig.Display.CursorPosition);
        Assert.Equal(19u, rig.Display.Cursor!.Value.X);
    }

    [Fact]
    public void UpdateCursor_AfterNewTransfer_ShowsNewPixels()
    {
        using var rig = DeviceRig.Create();
        var fb = CursorResource(rig, 1, VirtioGpuFormat.B8G8R8A8Unorm);
        rig.Driver.UpdateCursor(0, 0, 0, 1, 0, 0);
        fb.FillRect(0, 0, 64, 64, 0x80FF0000);
        rig.Driver.TransferToHost2D(1, new VirtioGpuRect(0, 0, 64, 64), 0).Is(VirtioGpuCtrlType.OkNoData);
        rig.Driver.UpdateCursor(0, 0, 0, 1, 0, 0);
        Assert.All(Enumerable.Range(0, 64 * 64), i => Assert.Equal(0x80FF0000u, BitConverter.ToUInt32(rig.Display.Cursor!.Value.Bgra, i * 4)));
    }
}
