using System.Buffers.Binary;
using System.Runtime.InteropServices;
using VirtioGpuHost.Device;
using VirtioGpuHost.Device.Wire;
using VirtioGpuHost.FrontEnd;
using VirtioGpuHost.TestKit;
using static VirtioGpuHost.UnitTests.Device.DeviceTestHelpers;

namespace VirtioGpuHost.UnitTests.Device;

/// <summary>
/// GET_DISPLAY_INFO: answered from the configured scanouts, or deferred through the display
/// (QEMU answers it on the display socket) with the control queue waiting, falling back to
/// the device's own answer on a bad reply, a timeout, or FinishInFlight.
/// </summary>
public class DisplayInfoTests
{
    private static byte[] GetDisplayInfoCommand(bool fence = false, ulong fenceId = 0, uint ctx = 0) => Bytes(new VirtioGpuCtrlHeader
    {
        Type = VirtioGpuCtrlType.GetDisplayInfo,
        Flags = fence ? VirtioGpuCtrlHeader.FlagFence : 0,
        FenceId = fenceId,
        CtxId = ctx,
    });

    /// <summary>A display-info reply as QEMU sends it on the display socket.</summary>
    private static byte[] DisplayReply(params (uint W, uint H, uint Flags)[] modes)
    {
        var reply = new byte[VirtioGpuResponseSizes.DisplayInfo];
        BinaryPrimitives.WriteUInt32LittleEndian(reply, (uint)VirtioGpuCtrlType.OkDisplayInfo);
        BinaryPrimitives.WriteUInt32LittleEndian(reply.AsSpan(4), 0xDEAD); // flags the device must not copy
        for (int i = 0; i < modes.Length; i++)
        {
            var one = new VirtioGpuDisplayOne { Rect = new VirtioGpuRect((uint)i * 10, 0, modes[i].W, modes[i].H), Enabled = 1, Flags = modes[i].Flags };
            MemoryMarshal.Write(reply.AsSpan(24 + i * 24), in one);
        }
        return reply;
    }

    private static void AssertOwnInfo(GpuReply reply, params (uint W, uint H)[] modes)
    {
        reply.Is(VirtioGpuCtrlType.OkDisplayInfo);
        Assert.Equal((uint)VirtioGpuResponseSizes.DisplayInfo, reply.Written);
        var pm = GpuDriver.ParseDisplayInfo(reply);
        for (int i = 0; i < 16; i++)
        {
            if (i < modes.Length)
            {
                Assert.Equal(new VirtioGpuRect(0, 0, modes[i].W, modes[i].H), pm[i].Rect);
                Assert.Equal(1u, pm[i].Enabled);
                Assert.Equal(0u, pm[i].Flags);
            }
            else
            {
                Assert.Equal(default, pm[i].Rect);
                Assert.Equal(0u, pm[i].Enabled);
            }
        }
    }

    [Fact]
    public void GetDisplayInfo_DefaultOptions_OneScanout1280x800()
    {
        using var rig = DeviceRig.Create();
        AssertOwnInfo(rig.Driver.GetDisplayInfo(), (1280, 800));
        rig.AssertNoWarnings();
    }

    [Fact]
    public void GetDisplayInfo_ConfiguredScanoutsAndModes_LastModeRepeats()
    {
        using var rig = DeviceRig.Create(new GpuDeviceOptions { Scanouts = 3, Modes = [new OutputMode(1920, 1080), new OutputMode(1024, 768, 75)] });
        AssertOwnInfo(rig.Driver.GetDisplayInfo(), (1920, 1080), (1024, 768), (1024, 768));
    }

    [Fact]
    public void GetDisplayInfo_SixteenScanouts_AllReported()
    {
        using var rig = DeviceRig.Create(new GpuDeviceOptions { Scanouts = 16, Modes = Enumerable.Range(0, 16).Select(i => new OutputMode(640 + (uint)i * 8, 480)).ToArray() });
        AssertOwnInfo(rig.Driver.GetDisplayInfo(), Enumerable.Range(0, 16).Select(i => (640 + (uint)i * 8, 480u)).ToArray());
    }

    [Fact]
    public void GetDisplayInfo_DisplayAnswersLater_ControlQueueWaitsAndPassesReplyOn()
    {
        using var rig = DeviceRig.Create();
        var tcs = new TaskCompletionSource<byte[]?>();
        int asked = 0;
        rig.Display.DisplayInfoQuery = () => { asked++; return tcs.Task; };
        rig.Driver.Timeout = ContinuationTimeout; // the reply resumes the queue through a thread-pool continuation

        var info = rig.Driver.Queue(GetDisplayInfoCommand(fence: true, fenceId: 77, ctx: 3), VirtioGpuResponseSizes.DisplayInfo);
        var create = rig.Driver.Queue(Bytes(new VirtioGpuResourceCreate2D
        {
            Header = new VirtioGpuCtrlHeader { Type = VirtioGpuCtrlType.ResourceCreate2D, Flags = VirtioGpuCtrlHeader.FlagFence, FenceId = 78 },
            ResourceId = 1, Format = VirtioGpuFormat.B8G8R8X8Unorm, Width = 8, Height = 8,
        }));
        rig.Driver.KickControl();
        rig.Driver.KickControl(); // a second kick while waiting changes nothing
        rig.Scheduler.RunPending();

        // Nothing answered, and the command behind it did not run (fences stay in order).
        Assert.Equal(1, asked);
        Assert.Equal(0, rig.ControlDriverQueue.ReadUsedIndex());
        Assert.Empty(rig.Device.Resources);
        Assert.True(rig.ControlProcessor.IsWaiting);

        var displayReply = DisplayReply((1600, 900, 0), (800, 600, 0));
        tcs.SetResult(displayReply);
        var r1 = rig.Driver.Wait(info).Is(VirtioGpuCtrlType.OkDisplayInfo);
        var r2 = rig.Driver.Wait(create).Is(VirtioGpuCtrlType.OkNoData);

        Assert.Equal(displayReply[24..], r1.Bytes[24..]);
        Assert.Equal((uint)VirtioGpuResponseSizes.DisplayInfo, r1.Written);
        Assert.Equal((VirtioGpuCtrlHeader.FlagFence, 77UL, 3u), (r1.Header.Flags, r1.Header.FenceId, r1.Header.CtxId));
        Assert.Equal((VirtioGpuCtrlHeader.FlagFence, 78UL), (r2.Header.Flags, r2.Header.FenceId));
        Assert.Equal([info.Head, create.Head], rig.UsedElements(rig.ControlDriverQueue).Select(e => (ushort)e.Head));
        Assert.True(rig.Device.Resources.ContainsKey(1));
        Assert.False(rig.ControlProcessor.IsWaiting);
        rig.AssertNoWarnings();
    }

    [Fact]
    public void GetDisplayInfo_DisplayAnswersAtOnce_ReplyPassedOn()
    {
        using var rig = DeviceRig.Create();
        var displayReply = DisplayReply((1920, 1200, 0));
        rig.Display.DisplayInfoQuery = () => Task.FromResult<byte[]?>(displayReply);
        rig.Driver.Timeout = ContinuationTimeout; // the reply resumes the queue through a thread-pool continuation
        var reply = rig.Driver.GetDisplayInfo().Is(VirtioGpuCtrlType.OkDisplayInfo);
        Assert.Equal(displayReply[24..], reply.Bytes[24..]);
        Assert.Equal(0u, reply.Header.Flags); // the display's header is not copied
    }

    public static TheoryData<string> BadReplies => new() { "null", "short", "long", "empty", "type-nodata", "type-edid", "faulted", "cancelled" };

    [Theory]
    [MemberData(nameof(BadReplies))]
    public void GetDisplayInfo_DisplayReplyUnusable_FallsBackToOwnInfo(string kind)
    {
        using var rig = DeviceRig.Create(new GpuDeviceOptions { Scanouts = 2, Modes = [new OutputMode(1024, 768)] });
        var good = DisplayReply((555, 444, 0));
        byte[] WithType(VirtioGpuCtrlType t) { var b = (byte[])good.Clone(); BinaryPrimitives.WriteUInt32LittleEndian(b, (uint)t); return b; }
        var tcs = new TaskCompletionSource<byte[]?>();
        rig.Display.DisplayInfoQuery = () => tcs.Task;
        rig.Driver.Timeout = ContinuationTimeout; // the reply resumes the queue through a thread-pool continuation
        var p = rig.Driver.Queue(GetDisplayInfoCommand(), VirtioGpuResponseSizes.DisplayInfo);
        rig.Driver.KickControl();
        switch (kind)
        {
            case "null": tcs.SetResult(null); break;
            case "short": tcs.SetResult(good[..407]); break;
            case "long": tcs.SetResult([.. good, 0]); break;
            case "empty": tcs.SetResult([]); break;
            case "type-nodata": tcs.SetResult(WithType(VirtioGpuCtrlType.OkNoData)); break;
            case "type-edid": tcs.SetResult(WithType(VirtioGpuCtrlType.OkEdid)); break;
            case "faulted": tcs.SetException(new IOException("display socket closed")); break;
            default: tcs.SetCanceled(); break;
        }
        AssertOwnInfo(rig.Driver.Wait(p), (1024, 768), (1024, 768));
    }

    [Fact]
    public void GetDisplayInfo_DisplayNeverAnswers_TimeoutFallsBackAndQueueMovesOn()
    {
        using var rig = DeviceRig.Create(new GpuDeviceOptions { Modes = [new OutputMode(800, 600)] });
        var tcs = new TaskCompletionSource<byte[]?>();
        rig.Display.DisplayInfoQuery = () => tcs.Task;
        rig.Driver.Timeout = ContinuationTimeout; // the reply resumes the queue through a thread-pool continuation
        var info = rig.Driver.Queue(GetDisplayInfoCommand(fence: true, fenceId: 5), VirtioGpuResponseSizes.DisplayInfo);
        var create = rig.Driver.Queue(Bytes(new VirtioGpuResourceCreate2D { Header = Header(VirtioGpuCtrlType.ResourceCreate2D), ResourceId = 1, Format = VirtioGpuFormat.B8G8R8X8Unorm, Width = 8, Height = 8 }));
        rig.Driver.KickControl();

        rig.Scheduler.Advance(TimeSpan.FromSeconds(2.5));
        Assert.Equal(0, rig.ControlDriverQueue.ReadUsedIndex());
        Assert.Empty(rig.Device.Resources);

        rig.Scheduler.Advance(TimeSpan.FromSeconds(0.6));
        Assert.Equal(2, rig.ControlDriverQueue.ReadUsedIndex()); // the timeout answered, then the queue went on
        var r = rig.Driver.Wait(info);
        AssertOwnInfo(r, (800, 600));
        Assert.Equal((VirtioGpuCtrlHeader.FlagFence, 5UL), (r.Header.Flags, r.Header.FenceId));
        rig.Driver.Wait(create).Is(VirtioGpuCtrlType.OkNoData);
        var warning = Assert.Single(rig.Logs.Warnings);
        Assert.Contains(Connection, warning);
        Assert.Contains("did not answer", warning);

        // A reply arriving after the timeout is dropped: no second used element.
        tcs.SetResult(DisplayReply((1, 1, 0)));
        Assert.True(SpinWait.SpinUntil(() => rig.Scheduler.RunPending() > 0, TimeSpan.FromSeconds(10)));
        Assert.Equal(2, rig.ControlDriverQueue.ReadUsedIndex());
    }

    [Fact]
    public void FinishInFlight_DisplayHasNotAnswered_AnswersAtOnceFromOwnInfo()
    {
        using var rig = DeviceRig.Create(new GpuDeviceOptions { Modes = [new OutputMode(1280, 720)] });
        var tcs = new TaskCompletionSource<byte[]?>();
        rig.Display.DisplayInfoQuery = () => tcs.Task;
        rig.Driver.Timeout = ContinuationTimeout; // the reply resumes the queue through a thread-pool continuation
        var info = rig.Driver.Queue(GetDisplayInfoCommand(fence: true, fenceId: 9), VirtioGpuResponseSizes.DisplayInfo);
        rig.Driver.KickControl();
        Assert.Equal(0, rig.ControlDriverQueue.ReadUsedIndex());

        rig.ControlProcessor.FinishInFlight();
        Assert.Equal(1, rig.ControlDriverQueue.ReadUsedIndex());
        Assert.False(rig.ControlProcessor.IsWaiting);
        var r = rig.Driver.Wait(info);
        AssertOwnInfo(r, (1280, 720));
        Assert.Equal(9UL, r.Header.FenceId);

        // The timer and a late reply change nothing.
        rig.Scheduler.Advance(TimeSpan.FromSeconds(5));
        tcs.SetResult(DisplayReply((1, 1, 0)));
        Assert.True(SpinWait.SpinUntil(() => rig.Scheduler.RunPending() > 0, TimeSpan.FromSeconds(10)));
        Assert.Equal(1, rig.ControlDriverQueue.ReadUsedIndex());
        rig.ControlProcessor.FinishInFlight(); // nothing in flight: no-op
        Assert.Equal(1, rig.ControlDriverQueue.ReadUsedIndex());
    }

    [Fact]
    public void FinishInFlight_ReplyAlreadyArrived_UsesTheReply()
    {
        using var rig = DeviceRig.Create();
        var tcs = new TaskCompletionSource<byte[]?>();
        rig.Display.DisplayInfoQuery = () => tcs.Task;
        rig.Driver.Timeout = ContinuationTimeout; // the reply resumes the queue through a thread-pool continuation
        var info = rig.Driver.Queue(GetDisplayInfoCommand(), VirtioGpuResponseSizes.DisplayInfo);
        rig.Driver.KickControl();
        var displayReply = DisplayReply((3000, 2000, 0));
        tcs.SetResult(displayReply);
        rig.ControlProcessor.FinishInFlight(); // before the posted resume ran
        Assert.Equal(1, rig.ControlDriverQueue.ReadUsedIndex());
        var r = rig.Driver.Wait(info).Is(VirtioGpuCtrlType.OkDisplayInfo);
        Assert.Equal(displayReply[24..], r.Bytes[24..]);
        SpinWait.SpinUntil(() => rig.Scheduler.RunPending() > 0, TimeSpan.FromSeconds(10));
        Assert.Equal(1, rig.ControlDriverQueue.ReadUsedIndex());
    }

    [Fact]
    public void FinishInFlight_LaterCommandsRunOnNextKick()
    {
        using var rig = DeviceRig.Create();
        rig.Display.DisplayInfoQuery = () => new TaskCompletionSource<byte[]?>().Task;
        rig.Driver.Timeout = ContinuationTimeout; // the reply resumes the queue through a thread-pool continuation
        var info = rig.Driver.Queue(GetDisplayInfoCommand(), VirtioGpuResponseSizes.DisplayInfo);
        var create = rig.Driver.Queue(Bytes(new VirtioGpuResourceCreate2D { Header = Header(VirtioGpuCtrlType.ResourceCreate2D), ResourceId = 1, Format = VirtioGpuFormat.B8G8R8X8Unorm, Width = 8, Height = 8 }));
        rig.Driver.KickControl();
        rig.ControlProcessor.FinishInFlight();
        rig.Driver.Wait(info).Is(VirtioGpuCtrlType.OkDisplayInfo);
        rig.Display.DisplayInfoQuery = null;
        rig.Driver.KickControl();
        rig.Driver.Wait(create).Is(VirtioGpuCtrlType.OkNoData);
        Assert.Equal([info.Head, create.Head], rig.UsedElements(rig.ControlDriverQueue).Select(e => (ushort)e.Head));
    }

    [Fact]
    public void GetDisplayInfo_ResponseBufferTooSmall_ErrorLoggedAndShortWrite()
    {
        using var rig = DeviceRig.Create();
        var reply = rig.Driver.Submit(GetDisplayInfoCommand(), responseBytes: 24);
        Assert.Equal(VirtioGpuCtrlType.OkDisplayInfo, reply.Type);
        Assert.Equal(24u, reply.Written);
        rig.AssertOneGuestError("GetDisplayInfo", "408 bytes", "24");
    }
}
