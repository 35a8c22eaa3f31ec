using VirtioGpuHost.Device;
using VirtioGpuHost.Device.Wire;
using VirtioGpuHost.FrontEnd;
using VirtioGpuHost.TestKit;
using static VirtioGpuHost.UnitTests.Device.DeviceTestHelpers;

namespace VirtioGpuHost.UnitTests.Device;

/// <summary>Command dispatch (unknown, 3D/blob, capset, cursor commands on the control queue) and fences.</summary>
public class CommandTests
{
    /// <summary>A command of the given type, padded to <paramref name="length"/> bytes (room for any struct).</summary>
    private static byte[] Command(VirtioGpuCtrlType type, int length = 96, uint flags = 0, ulong fence = 0, uint ctx = 0, byte ringIdx = 0)
    {
        var bytes = new byte[length];
        Bytes(new VirtioGpuCtrlHeader { Type = type, Flags = flags, FenceId = fence, CtxId = ctx, RingIdx = ringIdx }).CopyTo(bytes, 0);
        // Plausible ids after the header (resource 1, scanout 0), so that only the type is wrong.
        if (length >= 28) BitConverter.GetBytes(1u).CopyTo(bytes, 24);
        return bytes;
    }

    public static TheoryData<VirtioGpuCtrlType> UnsupportedFeatureCommands => new()
    {
        VirtioGpuCtrlType.ResourceAssignUuid,
        VirtioGpuCtrlType.ResourceCreateBlob,
        VirtioGpuCtrlType.SetScanoutBlob,
        VirtioGpuCtrlType.CtxCreate,
        VirtioGpuCtrlType.CtxDestroy,
        VirtioGpuCtrlType.CtxAttachResource,
        VirtioGpuCtrlType.CtxDetachResource,
        VirtioGpuCtrlType.ResourceCreate3D,
        VirtioGpuCtrlType.TransferToHost3D,
        VirtioGpuCtrlType.TransferFromHost3D,
        VirtioGpuCtrlType.Submit3D,
        VirtioGpuCtrlType.ResourceMapBlob,
        VirtioGpuCtrlType.ResourceUnmapBlob,
    };

    [Theory]
    [MemberData(nameof(UnsupportedFeatureCommands))]
    public void Execute_3DOrBlobCommand_ErrUnspecAndNoStateChange(VirtioGpuCtrlType type)
    {
        using var rig = DeviceRig.Create();
        rig.NewFrameBuffer(1, 8, 8, scanout: 0);
        var events = rig.Display.ScanoutEvents.Count;
        var reply = rig.Driver.Submit(Command(type), responseBytes: 64).Is(VirtioGpuCtrlType.ErrUnspec);
        Assert.Equal(24u, reply.Written);
        Assert.True(rig.Device.Resources.ContainsKey(1));
        Assert.NotNull(rig.Device.Res2D(1).Backing);
        Assert.Equal(events, rig.Display.ScanoutEvents.Count);
        rig.AssertOneGuestError(type.ToString(), "not supported");
    }

    [Theory]
    [InlineData(0u)]
    [InlineData(0x00FFu)]
    [InlineData(0x010Eu)]
    [InlineData(0x020Au)]
    [InlineData(0x0302u)]
    [InlineData(0x1100u)]
    [InlineData(0x1205u)]
    [InlineData(0xFFFFFFFFu)]
    public void Execute_UnknownCommandType_ErrUnspec(uint type)
    {
        using var rig = DeviceRig.Create();
        rig.Driver.Submit(Command((VirtioGpuCtrlType)type)).Is(VirtioGpuCtrlType.ErrUnspec);
        Assert.Empty(rig.Device.Resources);
        rig.AssertOneGuestError();
    }

    [Theory]
    [InlineData(0u)]
    [InlineData(0x0302u)]
    [InlineData(0x1100u)]
    [InlineData(0xFFFFFFFFu)]
    public void Execute_TypeOutsideCommandRanges_LogNamesTheType(uint type)
    {
        using var rig = DeviceRig.Create();
        rig.Driver.Submit(Command((VirtioGpuCtrlType)type)).Is(VirtioGpuCtrlType.ErrUnspec);
        rig.AssertOneGuestError("unknown command type", $"0x{type:x}");
    }

    [Theory]
    [InlineData(VirtioGpuCtrlType.UpdateCursor)]
    [InlineData(VirtioGpuCtrlType.MoveCursor)]
    public void Execute_CursorCommandOnControlQueue_ErrUnspecAndCursorUntouched(VirtioGpuCtrlType type)
    {
        using var rig = DeviceRig.Create();
        rig.Driver.Submit(Command(type, 56)).Is(VirtioGpuCtrlType.ErrUnspec);
        Assert.Null(rig.Display.Cursor);
        Assert.Null(rig.Display.CursorPosition);
        rig.AssertOneGuestError(type.ToString(), "cursor queue");
    }

    [Theory]
    [InlineData(VirtioGpuCtrlType.GetCapsetInfo, "capset_index")]
    [InlineData(VirtioGpuCtrlType.GetCapset, "capsets")]
    public void Execute_CapsetQueries_NoCapsetsErrInvalidParameter(VirtioGpuCtrlType type, string field)
    {
        using var rig = DeviceRig.Create();
        Assert.Equal(0u, rig.Device.Config.NumCapsets);
        rig.Driver.Submit(Command(type, 32), responseBytes: 64).Is(VirtioGpuCtrlType.ErrInvalidParameter);
        rig.AssertOneGuestError(field);
    }

    // ---- fences ----

    [Fact]
    public void Fence_OkResponse_EchoesFlagFenceIdAndCtxId()
    {
        using var rig = DeviceRig.Create();
        var cmd = Bytes(new VirtioGpuResourceCreate2D
        {
            Header = new VirtioGpuCtrlHeader { Type = VirtioGpuCtrlType.ResourceCreate2D, Flags = VirtioGpuCtrlHeader.FlagFence, FenceId = 0x1122334455667788, CtxId = 42 },
            ResourceId = 1, Format = VirtioGpuFormat.B8G8R8X8Unorm, Width = 4, Height = 4,
        });
        var h = rig.Driver.Submit(cmd).Is(VirtioGpuCtrlType.OkNoData).Header;
        Assert.Equal(VirtioGpuCtrlHeader.FlagFence, h.Flags);
        Assert.Equal(0x1122334455667788UL, h.FenceId);
        Assert.Equal(42u, h.CtxId);
        Assert.Equal(0, h.RingIdx);
    }

    [Fact]
    public void Fence_ErrorResponse_StillEchoesFence()
    {
        using var rig = DeviceRig.Create();
        var h = rig.Driver.Submit(Command(VirtioGpuCtrlType.ResourceUnref, 32, VirtioGpuCtrlHeader.FlagFence, fence: 999, ctx: 7))
            .Is(VirtioGpuCtrlType.ErrInvalidResourceId).Header;
        Assert.Equal((VirtioGpuCtrlHeader.FlagFence, 999UL, 7u), (h.Flags, h.FenceId, h.CtxId));
    }

    [Fact]
    public void Fence_Unfenced_ResponseHasNoFenceFieldsEvenIfRequestHadThem()
    {
        using var rig = DeviceRig.Create();
        var h = rig.Driver.Submit(Command(VirtioGpuCtrlType.GetDisplayInfo, 24, flags: 0, fence: 1234, ctx: 5, ringIdx: 3), VirtioGpuResponseSizes.DisplayInfo)
            .Is(VirtioGpuCtrlType.OkDisplayInfo).Header;
        Assert.Equal((0u, 0UL, 0u, (byte)0), (h.Flags, h.FenceId, h.CtxId, h.RingIdx));
    }

    [Fact]
    public void Fence_InfoRingIdx_RingIdxEchoedWithFence()
    {
        using var rig = DeviceRig.Create();
        const uint flags = VirtioGpuCtrlHeader.FlagFence | VirtioGpuCtrlHeader.FlagInfoRingIdx;
        var h = rig.Driver.Submit(Command(VirtioGpuCtrlType.GetDisplayInfo, 24, flags, fence: 3, ctx: 2, ringIdx: 5), VirtioGpuResponseSizes.DisplayInfo)
            .Is(VirtioGpuCtrlType.OkDisplayInfo).Header;
        Assert.Equal((flags, 3UL, 2u, (byte)5), (h.Flags, h.FenceId, h.CtxId, h.RingIdx));
        // Without INFO_RING_IDX the ring index is not echoed.
        h = rig.Driver.Submit(Command(VirtioGpuCtrlType.GetDisplayInfo, 24, VirtioGpuCtrlHeader.FlagFence, fence: 4, ctx: 2, ringIdx: 5), VirtioGpuResponseSizes.DisplayInfo).Header;
        Assert.Equal((VirtioGpuCtrlHeader.FlagFence, 4UL, (byte)0), (h.Flags, h.FenceId, h.RingIdx));
    }

    [Fact]
    public void Fence_UnknownFlagBits_NotEchoed()
    {
        using var rig = DeviceRig.Create();
        var h = rig.Driver.Submit(Command(VirtioGpuCtrlType.GetDisplayInfo, 24, 0xFFFFFFF1, fence: 8), VirtioGpuResponseSizes.DisplayInfo).Header;
        Assert.Equal((VirtioGpuCtrlHeader.FlagFence, 8UL), (h.Flags, h.FenceId));
    }

    [Fact]
    public void Fence_ManyInFlight_CompletedInSubmissionOrderWithTheirIds()
    {
        using var rig = DeviceRig.Create();
        var fb = FrameBuffer.Allocate(rig.Ram, 16, 16, VirtioGpuFormat.B8G8R8X8Unorm, scattered: false);
        var pending = new List<(PendingCommand P, ulong Fence)>();
        for (uint i = 1; i <= 10; i++)
        {
            var create = new VirtioGpuResourceCreate2D { Header = rig.Driver.Header(VirtioGpuCtrlType.ResourceCreate2D, fence: i % 2 == 0), ResourceId = i, Format = VirtioGpuFormat.B8G8R8X8Unorm, Width = 16, Height = 16 };
            pending.Add((rig.Driver.Queue(Bytes(create)), create.Header.FenceId));
        }
        rig.Driver.KickControl();
        Assert.Equal(pending.Select(p => p.P.Head), rig.UsedElements(rig.ControlDriverQueue).Select(e => (ushort)e.Head));
        foreach (var (p, fence) in pending)
        {
            var h = rig.Driver.Wait(p).Is(VirtioGpuCtrlType.OkNoData).Header;
            Assert.Equal(fence, h.FenceId);
            Assert.Equal(fence != 0 ? VirtioGpuCtrlHeader.FlagFence : 0u, h.Flags);
        }
        Assert.Equal(10, rig.Device.Resources.Count);
        Assert.Equal(10, rig.ControlProcessor.Completed);
    }

    [Fact]
    public void Response_Padding_IsZero()
    {
        using var rig = DeviceRig.Create();
        var reply = rig.Driver.Submit(Command(VirtioGpuCtrlType.ResourceFlush, 48, VirtioGpuCtrlHeader.FlagFence, fence: 1, ctx: 1, ringIdx: 9));
        Assert.Equal(VirtioGpuCtrlType.ErrInvalidResourceId, reply.Type);
        Assert.Equal(new byte[3], reply.Bytes[21..24]);
        Assert.Equal(0, reply.Header.RingIdx);
    }

    [Fact]
    public void Execute_CommandsExecuted_CountsEveryCommand()
    {
        using var rig = DeviceRig.Create();
        rig.Driver.GetDisplayInfo();
        rig.Driver.Submit(Command((VirtioGpuCtrlType)0x9999));
        rig.Driver.MoveCursor(0, 1, 1, 0);
        Assert.Equal(3, rig.Device.CommandsExecuted);
        Assert.Equal(1L, rig.Device.Errors.Count);
    }

    // ---- every error leaves the device as it was ----

    public static TheoryData<string> BadCommands => new()
    {
        "short-header", "create-id0", "create-dup", "create-format", "create-size", "create-short", "unref-unknown",
        "attach-twice", "attach-too-many", "attach-outside", "attach-truncated", "detach-unknown",
        "scanout-id", "scanout-rect", "scanout-empty", "scanout-resource", "flush-rect", "flush-unknown",
        "transfer-rect", "transfer-past-end", "transfer-overflow", "transfer-unknown", "edid-scanout", "unknown-type", "3d", "cursor-on-control",
    };

    private static string Snapshot(DeviceRig rig)
    {
        var sb = new System.Text.StringBuilder();
        sb.Append($"mem={rig.Device.HostMemoryInUse};");
        foreach (var (id, any) in rig.Device.Resources.OrderBy(kv => kv.Key))
        {
            var r = (Resource2D)any;
            sb.Append($"res {id} {r.Format} {r.Width}x{r.Height} backing=");
            sb.Append(r.Backing is null ? "none" : string.Join(",", r.Backing.Select(e => $"{e.Address:x}+{e.Length}")));
            sb.Append($" pixels={Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(rig.HostBytes(id)))};");
        }
        for (uint i = 0; i < 16; i++) sb.Append($"s{i}={rig.Device.GetScanout(i).Resource?.Id}/{rig.Device.GetScanout(i).Source};");
        sb.Append($"events={rig.Display.ScanoutEvents.Count};flushes={rig.Display.Flushes.Count};cursor={rig.Display.Cursor is null}");
        return sb.ToString();
    }

    [Theory]
    [MemberData(nameof(BadCommands))]
    public void ErrorResponse_AnyBadCommand_StateUnchangedAndOneWarning(string kind)
    {
        using var rig = DeviceRig.Create(new GpuDeviceOptions { Scanouts = 2 });
        var fb = rig.NewFrameBuffer(1, 32, 16, scanout: 0);
        fb.Fill(Colour);
        rig.Driver.Present(1, fb, new VirtioGpuRect(0, 0, 32, 16));
        rig.Driver.CreateResource2D(2, VirtioGpuFormat.R8G8B8A8Unorm, 8, 8).Is(VirtioGpuCtrlType.OkNoData);
        var page = rig.Ram.Allocator.Allocate(4096);
        var before = Snapshot(rig);
        Assert.Empty(rig.Logs.Warnings);

        var d = rig.Driver;
        GpuReply reply = kind switch
        {
            "short-header" => d.Submit(new byte[10]),
            "create-id0" => d.CreateResource2D(0, VirtioGpuFormat.B8G8R8X8Unorm, 4, 4),
            "create-dup" => d.CreateResource2D(1, VirtioGpuFormat.B8G8R8X8Unorm, 4, 4),
            "create-format" => d.CreateResource2D(3, (VirtioGpuFormat)7, 4, 4),
            "create-size" => d.CreateResource2D(3, VirtioGpuFormat.B8G8R8X8Unorm, 0, 4),
            "create-short" => d.Submit(Bytes(new VirtioGpuResourceCreate2D { Header = Header(VirtioGpuCtrlType.ResourceCreate2D), ResourceId = 3, Format = VirtioGpuFormat.B8G8R8X8Unorm, Width = 4, Height = 4 })[..36]),
            "unref-unknown" => d.Unref(3),
            "attach-twice" => d.AttachBacking(1, [new GuestBuffer(page, 4096)]),
            "attach-too-many" => d.Submit(Bytes(new VirtioGpuResourceAttachBacking { Header = Header(VirtioGpuCtrlType.ResourceAttachBacking), ResourceId = 2, NrEntries = 16385 })),
            "attach-outside" => d.AttachBacking(2, [new GuestBuffer(new VirtioGpuHost.GuestMemory.GuestAddress(1UL << 40), 256)]),
            "attach-truncated" => d.Submit(Bytes(new VirtioGpuResourceAttachBacking { Header = Header(VirtioGpuCtrlType.ResourceAttachBacking), ResourceId = 2, NrEntries = 2 })),
            "detach-unknown" => d.DetachBacking(3),
            "scanout-id" => d.SetScanout(2, 2, new VirtioGpuRect(0, 0, 8, 8)),
            "scanout-rect" => d.SetScanout(1, 2, new VirtioGpuRect(1, 1, 8, 8)),
            "scanout-empty" => d.SetScanout(0, 2, new VirtioGpuRect(0, 0, 0, 8)),
            "scanout-resource" => d.SetScanout(0, 3, new VirtioGpuRect(0, 0, 8, 8)),
            "flush-rect" => d.Flush(1, new VirtioGpuRect(0, 0, 33, 16)),
            "flush-unknown" => d.Flush(3, new VirtioGpuRect(0, 0, 1, 1)),
            "transfer-rect" => d.TransferToHost2D(1, new VirtioGpuRect(0, 15, 32, 2), 0),
            "transfer-past-end" => d.TransferToHost2D(1, new VirtioGpuRect(0, 0, 32, 16), 4),
            "transfer-overflow" => d.TransferToHost2D(1, new VirtioGpuRect(0, 0, 32, 16), ulong.MaxValue - 8),
            "transfer-unknown" => d.TransferToHost2D(3, new VirtioGpuRect(0, 0, 1, 1), 0),
            "edid-scanout" => d.GetEdid(2),
            "unknown-type" => d.Submit(Command((VirtioGpuCtrlType)0x4242)),
            "3d" => d.Submit(Command(VirtioGpuCtrlType.ResourceCreate3D, 72)),
            _ => d.Submit(Command(VirtioGpuCtrlType.UpdateCursor, 56)),
        };

        Assert.True(reply.Type >= VirtioGpuCtrlType.ErrUnspec, $"{kind}: {reply.Type}");
        Assert.Equal(24u, reply.Written);
        Assert.Equal(before, Snapshot(rig));
        rig.AssertOneGuestError();
    }
}
