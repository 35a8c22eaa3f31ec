using System.Buffers.Binary;
using System.Text;
using VirtioGpuHost.Device.Wire;
using VirtioGpuHost.FrontEnd;
using VirtioGpuHost.Interop;
using VirtioGpuHost.VhostUser.Display;
using VirtioGpuHost.VhostUser.Wire;

namespace VirtioGpuHost.UnitTests.VhostUser;

/// <summary>
/// The display socket (GPU_SET_SOCKET) as QEMU's display side sees it: negotiation first,
/// replacement sockets, initialised UPDATE headers, displays that close, never answer,
/// talk garbage or stop reading.
/// </summary>
public class DisplaySocketTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(10);

    private static (ConnectionRig Rig, RawVm Vm) StartGpu(ulong ramSize = 16UL << 20)
    {
        var rig = ConnectionRig.StartGpu();
        rig.Negotiate();
        var vm = new RawVm(rig.FrontEnd, ramSize);
        vm.Start();
        return (rig, vm);
    }

    private static DisplayServer AttachDisplayServer(ConnectionRig rig, DisplayServerOptions? options = null)
    {
        var (mine, theirs) = UnixSocket.CreatePair();
        var display = new DisplayServer(mine, options);
        using (theirs) rig.FrontEnd.GpuSetSocket(theirs);
        Assert.True(display.WaitFor(d => d.AgreedFeatures is not null, Wait), "the back-end never negotiated with the display");
        return display;
    }

    private static FrameBuffer ShowFrame(RawVm vm, uint resourceId, uint scanout, uint w, uint h, uint seed)
    {
        var fb = FrameBuffer.Allocate(vm.Ram, w, h, VirtioGpuFormat.B8G8R8X8Unorm, scattered: true);
        fb.Fill((x, y) => TestPatterns.GradientAt(x, y, w, h, seed));
        vm.Driver.SetUpFrameBuffer(resourceId, fb, scanout);
        vm.Driver.Present(resourceId, fb, new VirtioGpuRect(0, 0, w, h));
        return fb;
    }

    private static void AssertShows(DisplayServer display, uint scanout, FrameBuffer fb)
    {
        Assert.True(display.WaitFor(d => d.Snapshot(scanout) is { } s && Matches(s, fb), Wait), $"scanout {scanout} does not show the frame");
    }

    private static bool Matches((uint Width, uint Height, uint[] Pixels) s, FrameBuffer fb)
    {
        if (s.Width != fb.Width || s.Height != fb.Height) return false;
        for (uint y = 0; y < fb.Height; y++)
            for (uint x = 0; x < fb.Width; x++)
                if ((s.Pixels[y * s.Width + x] & 0xFFFFFF) != (fb.ReadPixelRaw(x, y) & 0xFFFFFF)) return false;
        return true;
    }

    private static byte[] DisplayInfoCommand() => MemoryMarshalBytes(new VirtioGpuCtrlHeader { Type = VirtioGpuCtrlType.GetDisplayInfo });

    private static string EdidText(GpuReply r) => Encoding.ASCII.GetString(GpuDriver.ParseEdid(r));

    [Fact]
    public void GpuSetSocket_BackEndNegotiatesFirst_GetThenSetProtocolFeaturesWithEdid()
    {
        var (rig, vm) = StartGpu();
        using var _r = rig;
        using var _v = vm;
        using var display = new ScriptedDisplay();
        display.HandOver(rig.FrontEnd);
        var get = display.Read();
        Assert.Equal((GpuDisplayRequest.GetProtocolFeatures, 0u, 0), (get.Request, get.Flags, get.Payload.Length));
        display.ReplyProtocolFeatures(GpuDisplayProtocolFeatures.Edid | GpuDisplayProtocolFeatures.Dmabuf2);
        var set = display.Read();
        Assert.Equal((GpuDisplayRequest.SetProtocolFeatures, 0u, 8), (set.Request, set.Flags, set.Payload.Length));
        Assert.Equal((ulong)GpuDisplayProtocolFeatures.Edid, BinaryPrimitives.ReadUInt64LittleEndian(set.Payload));
    }

    [Fact]
    public void GpuSetSocket_DisplayWithoutEdid_EdidIsNeverAskedOfIt()
    {
        var (rig, vm) = StartGpu();
        using var _r = rig;
        using var _v = vm;
        using var display = new ScriptedDisplay();
        display.HandOver(rig.FrontEnd);
        Assert.Equal(GpuDisplayProtocolFeatures.None, display.Negotiate(GpuDisplayProtocolFeatures.None));
        var edid = vm.Driver.GetEdid(0);
        Assert.Equal(VirtioGpuCtrlType.OkEdid, edid.Type);
        Assert.Contains("VirtioGpuHost", EdidText(edid), StringComparison.Ordinal); // the device's own
        // The next thing the display sees is the guest's next query, not a GET_EDID.
        var p = vm.Driver.Queue(DisplayInfoCommand(), VirtioGpuResponseSizes.DisplayInfo);
        vm.Driver.KickControl();
        Assert.Equal(GpuDisplayRequest.GetDisplayInfo, display.Read().Request);
        display.Reply(GpuDisplayRequest.GetDisplayInfo, ScriptedDisplay.DisplayInfo(640, 480));
        Assert.Equal(640u, GpuDriver.ParseDisplayInfo(vm.Driver.Wait(p))[0].Rect.Width);
    }

    [Fact]
    public void ControlQueue_WhileTheDisplayNegotiates_IsHeldSoQueriesGoToTheDisplay()
    {
        var (rig, vm) = StartGpu();
        using var _r = rig;
        using var _v = vm;
        using var display = new ScriptedDisplay();
        display.HandOver(rig.FrontEnd);
        Assert.Equal(GpuDisplayRequest.GetProtocolFeatures, display.Read().Request);
        // The guest asks for display info before the display has answered.
        var p = vm.Driver.Queue(DisplayInfoCommand(), VirtioGpuResponseSizes.DisplayInfo);
        vm.Driver.KickControl();
        Thread.Sleep(200);
        display.ReplyProtocolFeatures(GpuDisplayProtocolFeatures.Edid);
        display.ReadUntil(GpuDisplayRequest.GetDisplayInfo);
        display.Reply(GpuDisplayRequest.GetDisplayInfo, ScriptedDisplay.DisplayInfo(1024, 768));
        var modes = GpuDriver.ParseDisplayInfo(vm.Driver.Wait(p));
        Assert.Equal((1024u, 768u), (modes[0].Rect.Width, modes[0].Rect.Height));
    }

    [Fact]
    public void GpuSetSocket_Again_ReplacesTheDisplayAndTheNewOneGetsScanoutAndFullUpdateOfEveryScanout()
    {
        var (rig, vm) = StartGpu(32UL << 20);
        using var _r = rig;
        using var _v = vm;
        var opts = new DisplayServerOptions { MaxOutputs = 2, EnabledHeads = 2 };
        using var first = AttachDisplayServer(rig, opts);
        var fb0 = ShowFrame(vm, 1, 0, 64, 48, 0);
        var fb1 = ShowFrame(vm, 2, 1, 32, 40, 1);
        AssertShows(first, 0, fb0);
        AssertShows(first, 1, fb1);

        using var second = AttachDisplayServer(rig, opts);
        AssertShows(second, 0, fb0);
        AssertShows(second, 1, fb1);
        foreach (var (scanout, fb) in new[] { (0u, fb0), (1u, fb1) })
        {
            Assert.Contains(second.Updates, u => u.Scanout == scanout && (u.X, u.Y, u.Width, u.Height) == (0u, 0u, fb.Width, fb.Height));
        }
        var requests = second.Requests.Select(r => r.Request).ToList();
        Assert.True(requests.IndexOf(GpuDisplayRequest.Scanout) > requests.IndexOf(GpuDisplayRequest.SetProtocolFeatures));
        Assert.True(requests.IndexOf(GpuDisplayRequest.Update) > requests.IndexOf(GpuDisplayRequest.Scanout));
        // The old socket was closed, and new frames go to the new display only.
        Assert.True(first.WaitFor(d => d.Closed, Wait), "the replaced display socket was not closed");
        long before = second.UpdateCount;
        fb0.FillRect(0, 0, 8, 8, 0xFF00FF00);
        vm.Driver.Present(1, fb0, new VirtioGpuRect(0, 0, 8, 8));
        Assert.True(second.WaitFor(d => d.UpdateCount > before, Wait));
        AssertShows(second, 0, fb0);
    }

    [Fact]
    public void Update_EveryMessage_HasFlagsZero()
    {
        var (rig, vm) = StartGpu();
        using var _r = rig;
        using var _v = vm;
        using var display = AttachDisplayServer(rig);
        var fb = ShowFrame(vm, 1, 0, 50, 30, 0);
        fb.FillRect(3, 4, 5, 6, 0xFF123456);
        vm.Driver.Present(1, fb, new VirtioGpuRect(3, 4, 5, 6));
        vm.Driver.MoveCursor(0, 5, 5, 0);
        Assert.True(display.WaitFor(d => d.Updates.Count >= 2, Wait));
        AssertShows(display, 0, fb);
        Assert.All(display.Updates, u => Assert.Equal(0u, u.Flags));
        Assert.All(display.Requests, r => Assert.Equal(0u, r.Flags));
    }

    [Fact]
    public void Display_ClosingWhileTheGuestDraws_DeviceKeepsWorking()
    {
        var (rig, vm) = StartGpu();
        using var _r = rig;
        using var _v = vm;
        var display = AttachDisplayServer(rig);
        var fb = ShowFrame(vm, 1, 0, 64, 64, 0);
        display.Dispose(); // QEMU went away on the display side
        for (int i = 0; i < 5; i++)
            Assert.Equal(VirtioGpuCtrlType.OkNoData, vm.Driver.Flush(1, new VirtioGpuRect(0, 0, 64, 64)).Type);
        var info = vm.Driver.GetDisplayInfo();
        Assert.Equal(VirtioGpuCtrlType.OkDisplayInfo, info.Type);
        Assert.Equal(1280u, GpuDriver.ParseDisplayInfo(info)[0].Rect.Width); // answered by the device itself now
        rig.AssertLogged(rig.Name, "display socket closed");
        rig.AssertAlive();
    }

    [Fact]
    public void Display_ClosingWhileAQueryWaitsForIt_TheQueryIsAnsweredAtOnce()
    {
        var (rig, vm) = StartGpu();
        using var _r = rig;
        using var _v = vm;
        using var display = new ScriptedDisplay();
        display.HandOver(rig.FrontEnd);
        display.Negotiate();
        var p = vm.Driver.Queue(DisplayInfoCommand(), VirtioGpuResponseSizes.DisplayInfo);
        vm.Driver.KickControl();
        display.ReadUntil(GpuDisplayRequest.GetDisplayInfo);
        display.Close();
        var r = vm.Driver.Wait(p);
        Assert.Equal(VirtioGpuCtrlType.OkDisplayInfo, r.Type);
        Assert.Equal(1280u, GpuDriver.ParseDisplayInfo(r)[0].Rect.Width);
        Assert.Equal(VirtioGpuCtrlType.OkNoData, vm.Driver.CreateResource2D(1, VirtioGpuFormat.B8G8R8X8Unorm, 8, 8).Type);
    }

    [Fact]
    public void GetEdid_ForAScanoutTheDisplayNeverAnswers_IsAnsweredFromTheDevicesOwnEdid()
    {
        var (rig, vm) = StartGpu();
        using var _r = rig;
        using var _v = vm;
        // QEMU drops GET_EDID for scanouts at or above max_outputs: no reply ever comes.
        using var display = AttachDisplayServer(rig, new DisplayServerOptions { MaxOutputs = 1, Width = 1024, Height = 768 });
        var own = vm.Driver.GetEdid(1);
        Assert.Equal(VirtioGpuCtrlType.OkEdid, own.Type);
        Assert.Contains("VirtioGpuHost", EdidText(own), StringComparison.Ordinal);
        rig.AssertLogged(rig.Name, "no reply to GetEdid");
        // The next replies still go to the right requests.
        var info = GpuDriver.ParseDisplayInfo(vm.Driver.GetDisplayInfo());
        Assert.Equal((1024u, 768u), (info[0].Rect.Width, info[0].Rect.Height));
        var fromDisplay = vm.Driver.GetEdid(0);
        Assert.Contains("QEMU Monitor", EdidText(fromDisplay), StringComparison.Ordinal);
    }

    [Fact]
    public void GetEdid_AfterAnAbandonedGetEdid_GetsItsOwnReplyFromTheDisplay()
    {
        var (rig, vm) = StartGpu();
        using var _r = rig;
        using var _v = vm;
        using var display = AttachDisplayServer(rig, new DisplayServerOptions { MaxOutputs = 1, Width = 1024, Height = 768 });
        Assert.Contains("VirtioGpuHost", EdidText(vm.Driver.GetEdid(3)), StringComparison.Ordinal);
        // The reply to this GET_EDID must not be taken for a late reply to the abandoned one.
        var r = vm.Driver.GetEdid(0);
        Assert.Contains("QEMU Monitor", EdidText(r), StringComparison.Ordinal);
        Assert.Contains("QEMU Monitor", EdidText(vm.Driver.GetEdid(0)), StringComparison.Ordinal);
    }

    [Fact]
    public void GetEdid_LateReplyToAnAbandonedRequest_IsDroppedAndLaterRepliesStillMatch()
    {
        var (rig, vm) = StartGpu();
        using var _r = rig;
        using var _v = vm;
        using var display = new ScriptedDisplay();
        display.HandOver(rig.FrontEnd);
        display.Negotiate();
        // GET_EDID(0): the display is slow, the back-end gives up and answers itself.
        var slow = vm.Driver.GetEdid(0);
        Assert.Contains("VirtioGpuHost", EdidText(slow), StringComparison.Ordinal);
        var edidRequest = display.ReadUntil(GpuDisplayRequest.GetEdid);
        Assert.Equal(0u, BinaryPrimitives.ReadUInt32LittleEndian(edidRequest.Payload));
        // Now the late reply, then the guest asks for display info.
        var late = new byte[GpuDisplayWire.EdidReplySize];
        BinaryPrimitives.WriteUInt32LittleEndian(late, (uint)VirtioGpuCtrlType.OkEdid);
        display.Reply(GpuDisplayRequest.GetEdid, late);
        var p = vm.Driver.Queue(DisplayInfoCommand(), VirtioGpuResponseSizes.DisplayInfo);
        vm.Driver.KickControl();
        display.ReadUntil(GpuDisplayRequest.GetDisplayInfo);
        display.Reply(GpuDisplayRequest.GetDisplayInfo, ScriptedDisplay.DisplayInfo(800, 600));
        Assert.Equal(800u, GpuDriver.ParseDisplayInfo(vm.Driver.Wait(p))[0].Rect.Width);
        Assert.False(display.WaitForEof(TimeSpan.FromMilliseconds(100)), "the back-end dropped a display that only answered late");
    }

    private static byte[] EdidReply(string name)
    {
        var r = new byte[GpuDisplayWire.EdidReplySize];
        BinaryPrimitives.WriteUInt32LittleEndian(r, (uint)VirtioGpuCtrlType.OkEdid);
        var edid = VirtioGpuHost.Device.Edid.EdidBuilder.Build(800, 600, name: name);
        BinaryPrimitives.WriteUInt32LittleEndian(r.AsSpan(24), (uint)edid.Length);
        edid.CopyTo(r.AsSpan(32));
        return r;
    }

    [Fact]
    public void GetEdid_AbandonedOneAnsweredAfterTheNextWasSent_EachReplyGoesToItsOwnRequest()
    {
        var (rig, vm) = StartGpu();
        using var _r = rig;
        using var _v = vm;
        using var display = new ScriptedDisplay();
        display.HandOver(rig.FrontEnd);
        display.Negotiate();
        Assert.Contains("VirtioGpuHost", EdidText(vm.Driver.GetEdid(3)), StringComparison.Ordinal); // timed out
        Assert.Equal(3u, BinaryPrimitives.ReadUInt32LittleEndian(display.ReadUntil(GpuDisplayRequest.GetEdid).Payload));
        var p = vm.Driver.Queue(MemoryMarshalBytes(new VirtioGpuGetEdid { Header = vm.Driver.Header(VirtioGpuCtrlType.GetEdid), Scanout = 0 }), VirtioGpuResponseSizes.Edid);
        vm.Driver.KickControl();
        // Whatever comes between, the GET_EDID for scanout 0 is the last request.
        var seen = new List<GpuDisplayRequest>();
        while (true)
        {
            var m = display.Read();
            seen.Add(m.Request);
            if (m.Request == GpuDisplayRequest.GetEdid) break;
        }
        // Only now the slow display answers scanout 3, then everything else in order.
        display.Reply(GpuDisplayRequest.GetEdid, EdidReply("LATE 3"));
        foreach (var r in seen)
        {
            if (r == GpuDisplayRequest.GetProtocolFeatures) display.ReplyProtocolFeatures(GpuDisplayProtocolFeatures.Edid);
            else if (r == GpuDisplayRequest.GetEdid) display.Reply(GpuDisplayRequest.GetEdid, EdidReply("ZERO"));
        }
        Assert.Contains("ZERO", EdidText(vm.Driver.Wait(p)), StringComparison.Ordinal);
        Assert.False(display.WaitForEof(TimeSpan.FromMilliseconds(100)), "the back-end dropped a display that answered in order");
    }

    private static byte[] MemoryMarshalBytes<T>(T value) where T : unmanaged =>
        System.Runtime.InteropServices.MemoryMarshal.AsBytes(new ReadOnlySpan<T>(in value)).ToArray();

    public static TheoryData<string> GarbageKinds => new() { "random", "unsolicited", "wrong-size", "wrong-request", "huge" };

    [Theory]
    [MemberData(nameof(GarbageKinds))]
    public void Display_SendingGarbage_GetsItsSocketClosedAndTheDeviceKeepsWorking(string kind)
    {
        var (rig, vm) = StartGpu();
        using var _r = rig;
        using var _v = vm;
        using var display = new ScriptedDisplay();
        display.HandOver(rig.FrontEnd);
        display.Negotiate();
        PendingCommand? waiting = null;
        if (kind is "wrong-size" or "wrong-request")
        {
            waiting = vm.Driver.Queue(DisplayInfoCommand(), VirtioGpuResponseSizes.DisplayInfo);
            vm.Driver.KickControl();
            display.ReadUntil(GpuDisplayRequest.GetDisplayInfo);
        }
        switch (kind)
        {
            case "random":
                display.SendRaw(Enumerable.Range(0, 64).Select(i => (byte)(i * 37 + 11)).ToArray());
                break;
            case "unsolicited":
                display.Reply(GpuDisplayRequest.GetDisplayInfo, ScriptedDisplay.DisplayInfo(1, 1));
                break;
            case "wrong-size":
                display.Reply(GpuDisplayRequest.GetDisplayInfo, new byte[100]);
                break;
            case "wrong-request":
                display.Reply(GpuDisplayRequest.GetEdid, new byte[GpuDisplayWire.EdidReplySize]);
                break;
            case "huge":
                var h = new byte[VhostUserHeader.Length];
                new VhostUserHeader((uint)GpuDisplayRequest.GetDisplayInfo, VhostUserHeader.FlagReply, 0x7FFFFFFF).Write(h);
                display.SendRaw(h);
                break;
        }
        Assert.True(display.WaitForEof(Wait), "the back-end kept a display that sent garbage");
        rig.AssertLogged(rig.Name, "display socket closed");
        if (waiting is not null)
        {
            var r = vm.Driver.Wait(waiting);
            Assert.Equal(VirtioGpuCtrlType.OkDisplayInfo, r.Type);
            Assert.Equal(1280u, GpuDriver.ParseDisplayInfo(r)[0].Rect.Width);
        }
        Assert.Equal(VirtioGpuCtrlType.OkDisplayInfo, vm.Driver.GetDisplayInfo().Type);
        Assert.Equal(VirtioGpuCtrlType.OkNoData, vm.Driver.CreateResource2D(9, VirtioGpuFormat.B8G8R8X8Unorm, 8, 8).Type);
        rig.AssertAlive();
    }

    [Fact]
    public void Display_NotReading_PausesTheControlQueueWithoutBlockingTheLoop_AndResumesWhenItReads()
    {
        var (rig, vm) = StartGpu(48UL << 20);
        using var _r = rig;
        using var _v = vm;
        DisplaySocketClient? client = null;
        rig.Gpu.DisplayAttached += d => client = d.Client;
        using var display = new ScriptedDisplay(); // held, never read until the end
        display.HandOver(rig.FrontEnd);
        // Negotiation times out (the display does not read), then the display is attached.
        Assert.True(ProcessResources.WaitUntil(() => rig.OnLoop(() => client is not null), Wait), "the display was never attached");

        const uint W = 1024, H = 1024; // 4 MiB per full-frame UPDATE
        var fb = FrameBuffer.Allocate(vm.Ram, W, H, VirtioGpuFormat.B8G8R8X8Unorm, scattered: false);
        fb.Fill((x, y) => 0xFF000000 | (x ^ y));
        vm.Driver.SetUpFrameBuffer(1, fb, 0);
        ushort before = vm.Control.ReadUsedIndex();
        const int Flushes = 8;
        var pending = new List<PendingCommand>();
        for (int i = 0; i < Flushes; i++)
        {
            var f = vm.Driver.FlushCommand(1, new VirtioGpuRect(0, 0, W, H));
            pending.Add(vm.Driver.Queue(System.Runtime.InteropServices.MemoryMarshal.AsBytes(new ReadOnlySpan<VirtioGpuResourceFlush>(in f))));
        }
        vm.Driver.KickControl();
        Assert.True(ProcessResources.WaitUntil(() => rig.OnLoop(() => client!.IsBackpressured), Wait), "the display never pushed back");

        // The loop still answers the front-end while the queue waits for the display.
        Assert.NotNull(rig.FrontEnd.GetConfig(0, 16));
        rig.AssertAlive();
        Thread.Sleep(200);
        rig.AssertAlive();
        Assert.True((ushort)(vm.Control.ReadUsedIndex() - before) < Flushes, "the control queue went on while the display was full");
        Assert.True(rig.OnLoop(() => client!.IsBackpressured));

        // The display starts reading: everything completes.
        var stop = new ManualResetEventSlim();
        var reader = new Thread(() =>
        {
            var buf = new byte[1 << 20];
            while (!stop.IsSet)
            {
                if (!Poller.WaitReadable(display.Socket, 50)) continue;
                if (UnixSocket.Receive(display.Socket, buf, null, out _) == IoStatus.Closed) return;
            }
        }) { IsBackground = true };
        reader.Start();
        try
        {
            foreach (var p in pending) Assert.Equal(VirtioGpuCtrlType.OkNoData, vm.Driver.Wait(p).Type);
            Assert.True(ProcessResources.WaitUntil(() => !rig.OnLoop(() => client!.IsBackpressured), Wait));
        }
        finally
        {
            stop.Set();
            Assert.True(reader.Join(Wait));
        }
    }

    [Fact]
    public void Display_NotReading_RingStopAndResumeStillWork_AndTheRestIsProcessedAfterResume()
    {
        var (rig, vm) = StartGpu(48UL << 20);
        using var _r = rig;
        using var _v = vm;
        DisplaySocketClient? client = null;
        rig.Gpu.DisplayAttached += d => client = d.Client;
        using var stuck = new ScriptedDisplay();
        stuck.HandOver(rig.FrontEnd);
        Assert.True(ProcessResources.WaitUntil(() => rig.OnLoop(() => client is not null), Wait));
        const uint W = 1024, H = 1024;
        var fb = FrameBuffer.Allocate(vm.Ram, W, H, VirtioGpuFormat.B8G8R8X8Unorm, scattered: false);
        vm.Driver.SetUpFrameBuffer(1, fb, 0);
        ushort before = vm.Control.AvailIndex;
        var pending = new List<PendingCommand>();
        for (int i = 0; i < 8; i++)
            pending.Add(vm.Driver.Queue(MemoryMarshalBytes(vm.Driver.FlushCommand(1, new VirtioGpuRect(0, 0, W, H)))));
        vm.Driver.KickControl();
        var old = client;
        Assert.True(ProcessResources.WaitUntil(() => rig.OnLoop(() => old!.IsBackpressured), Wait));
        // The VM is paused while the display is stuck: the ring stops at once, where it got to.
        Assert.True(rig.FrontEnd.SetVringEnable(0, false));
        uint stoppedAt = rig.FrontEnd.GetVringBase(0);
        Assert.InRange(stoppedAt, before + 1u, before + 7u);
        Assert.Equal((ushort)stoppedAt, vm.Control.ReadUsedIndex());
        // Resumed with a display that reads: the rest of the work is done.
        using var fresh = AttachDisplayServer(rig, new DisplayServerOptions { Width = W, Height = H });
        vm.SetUpRing(0, baseIndex: stoppedAt);
        foreach (var p in pending) Assert.Equal(VirtioGpuCtrlType.OkNoData, vm.Driver.Wait(p).Type);
        Assert.True(fresh.WaitFor(d => d.UpdateCount > 0, Wait));
    }

    [Fact]
    public void Display_NotReading_CursorUpdatesStopQueueingOnceTheDisplayIsFull()
    {
        var (rig, vm) = StartGpu();
        using var _r = rig;
        using var _v = vm;
        DisplaySocketClient? client = null;
        rig.Gpu.DisplayAttached += d => client = d.Client;
        using var display = new ScriptedDisplay(); // never read
        display.HandOver(rig.FrontEnd);
        Assert.True(ProcessResources.WaitUntil(() => rig.OnLoop(() => client is not null), Wait), "the display was never attached");
        var cursor = FrameBuffer.Allocate(vm.Ram, 64, 64, VirtioGpuFormat.B8G8R8A8Unorm, scattered: false);
        vm.Driver.SetUpFrameBuffer(7, cursor);
        vm.Driver.TransferToHost2D(7, new VirtioGpuRect(0, 0, 64, 64), 0);
        // Each UPDATE_CURSOR is a 16 KiB CURSOR_UPDATE for the display. A guest that keeps moving
        // its cursor image must not make the back-end buffer without limit for a display that
        // does not read: the cursor queue waits, like the control queue.
        vm.Driver.Timeout = TimeSpan.FromSeconds(2);
        int done = 0;
        try
        {
            for (; done < 10000; done++) vm.Driver.UpdateCursor(0, (uint)done % 100, 0, 7, 0, 0);
        }
        catch (TimeoutException)
        {
            // The cursor queue paused: expected.
        }
        long queued = rig.OnLoop(() => client!.QueuedBytes);
        Assert.True(queued <= DisplaySocketClient.BackpressureBytes + (1 << 20), $"{queued} bytes queued for the display after {done} cursor updates");
        Assert.True(done < 10000, "the cursor queue never paused"); // 10000 x 16 KiB is well above the socket buffer (up to 32 MiB) plus our 32 MiB
        // The display reads again: the waiting cursor update goes through.
        var reader = new Thread(() =>
        {
            var buf = new byte[1 << 20];
            while (UnixSocket.Receive(display.Socket, buf, null, out _) == IoStatus.Ok) { }
        }) { IsBackground = true };
        reader.Start();
        Assert.True(vm.WaitForUsed(1, (ushort)(done + 1), Wait), "the cursor queue did not resume");
        display.Close();
        Assert.True(reader.Join(Wait));
    }

    [Fact]
    public void GpuSetSocket_WhileTheOldDisplayIsBackpressured_TheQueueResumesOnTheNewDisplay()
    {
        var (rig, vm) = StartGpu(48UL << 20);
        using var _r = rig;
        using var _v = vm;
        DisplaySocketClient? client = null;
        rig.Gpu.DisplayAttached += d => client = d.Client;
        using var stuck = new ScriptedDisplay();
        stuck.HandOver(rig.FrontEnd);
        Assert.True(ProcessResources.WaitUntil(() => rig.OnLoop(() => client is not null), Wait));
        const uint W = 1024, H = 1024;
        var fb = FrameBuffer.Allocate(vm.Ram, W, H, VirtioGpuFormat.B8G8R8X8Unorm, scattered: false);
        vm.Driver.SetUpFrameBuffer(1, fb, 0);
        var pending = new List<PendingCommand>();
        for (int i = 0; i < 8; i++)
        {
            var f = vm.Driver.FlushCommand(1, new VirtioGpuRect(0, 0, W, H));
            pending.Add(vm.Driver.Queue(System.Runtime.InteropServices.MemoryMarshal.AsBytes(new ReadOnlySpan<VirtioGpuResourceFlush>(in f))));
        }
        vm.Driver.KickControl();
        var old = client;
        Assert.True(ProcessResources.WaitUntil(() => rig.OnLoop(() => old!.IsBackpressured), Wait));
        // QEMU hands over a new display socket (the guest reset and set DRIVER_OK again).
        using var fresh = AttachDisplayServer(rig, new DisplayServerOptions { Width = 1024, Height = 1024 });
        foreach (var p in pending) Assert.Equal(VirtioGpuCtrlType.OkNoData, vm.Driver.Wait(p).Type);
        Assert.True(fresh.WaitFor(d => d.UpdateCount > 0, Wait));
        Assert.True(rig.OnLoop(() => old!.IsClosed));
    }
}
