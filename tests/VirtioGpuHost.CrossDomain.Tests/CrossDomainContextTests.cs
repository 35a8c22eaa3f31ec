using System.Buffers.Binary;
using System.Text;
using VirtioGpuHost.Device.Blobs;
using VirtioGpuHost.Device.Wire;
using VirtioGpuHost.FrontEnd;
using VirtioGpuHost.Interop;
using static VirtioGpuHost.FrontEnd.CrossDomain.CrossDomainGuestWire;

namespace VirtioGpuHost.CrossDomain.Tests;

/// <summary>The cross-domain context in-process: every command, the item rules, fences and fds.</summary>
public class CrossDomainContextTests
{
    private const uint Ctx = 3;

    [Fact]
    public void Capset5_IsReportedWithWaylandChannel()
    {
        using var x = new XdRig();
        var info = x.Driver.GetCapsetInfo(0).CapsetInfo;
        Assert.Equal(5u, info.CapsetId);
        Assert.Equal(16u, info.CapsetMaxSize);
        var data = x.Driver.GetCapset(5, 0).Bytes.AsSpan(24, 16);
        Assert.Equal(1u, BinaryPrimitives.ReadUInt32LittleEndian(data));      // version
        Assert.Equal(2u, BinaryPrimitives.ReadUInt32LittleEndian(data[4..])); // 1 << Wayland
    }

    [Fact]
    public void Init_OpensOneChannelPerContext_AndDestroyClosesIt()
    {
        using var x = new XdRig();
        var ctx = x.Open(Ctx);
        Assert.True(ctx.Initialized);
        Assert.True(ctx.HasChannel);
        Assert.Single(x.Peers);
        GpuDriver.Expect(x.Driver.CtxDestroy(Ctx), "CTX_DESTROY");
        // The server sees the connection end.
        Assert.True(Poller.WaitReadable(x.Peers[0], 5000));
        Assert.Equal(IoStatus.Closed, UnixSocket.Receive(x.Peers[0], new byte[16], null, out _));
    }

    [Fact]
    public void InitLegacy_OnePageServesBothRings()
    {
        using var x = new XdRig();
        GpuDriver.Expect(x.Driver.CtxCreate(Ctx, CapsetId), "CTX_CREATE");
        x.NewRing(Ctx, 77);
        GpuDriver.Expect(x.Submit(Ctx, InitLegacy(77)), "INIT legacy");
        var poll = x.QueuePoll(Ctx);
        Assert.True(UnixSocket.Send(x.Peers[0], "hi"u8, [], out _) == IoStatus.Ok);
        Assert.True(x.WaitPoll(poll)!.IsOk);
        var m = ChannelMessage.Parse(x.Ring(77), out _)!;
        Assert.Equal("hi", Encoding.ASCII.GetString(m.Data));
    }

    [Fact]
    public void ImageRequirements_AreLinearCanonical_AndTheBlobIdAllocatesZeroedHostMemory()
    {
        using var x = new XdRig();
        x.Open(Ctx);
        var r = x.Requirements(Ctx, 250, 250, DrmFormatXrgb8888);
        Assert.Equal(1000u, r.Stride0);
        Assert.Equal((250UL * 1000 + 4095) & ~4095UL, r.Size);
        Assert.Equal(2u, r.BlobId); // ordinary items count from 2
        Assert.Equal(1u, r.MapInfo); // CACHED
        // The same request reuses its item.
        Assert.Equal(r.BlobId, x.Requirements(Ctx, 250, 250, DrmFormatXrgb8888).BlobId);
        Assert.Equal(3u, x.Requirements(Ctx, 64, 64, DrmFormatXrgb8888).BlobId);

        GpuDriver.Expect(x.CreateHostBlob(Ctx, 10, r.BlobId, r.Size), "HOST3D");
        GpuDriver.Expect(x.CreateHostBlob(Ctx, 11, r.BlobId, r.Size), "HOST3D again (requirements are reusable)");
        var blob = x.Blob(10);
        Assert.Equal(BlobMemory.Host3D, blob.Kind);
        Assert.All(blob.HostMemory!.AsSpan(0, (int)r.Size).ToArray(), b => Assert.Equal(0, b));

        // A size other than the requirements', and an id that names nothing, are refused.
        Assert.Equal(VirtioGpuCtrlType.ErrInvalidParameter, x.CreateHostBlob(Ctx, 12, r.BlobId, r.Size + 4096).Type);
        Assert.Equal(VirtioGpuCtrlType.ErrInvalidParameter, x.CreateHostBlob(Ctx, 13, 999, 4096).Type);
        Assert.Contains("blob_id 999 names no item", x.Log);
    }

    [Fact]
    public void Send_ForwardsDataAndTheHostFdOfABlob()
    {
        using var x = new XdRig();
        var ctx = x.Open(Ctx);
        var blob = x.ImageBlob(Ctx, 20, 64, 64, fill: 0x5A);
        GpuDriver.Expect(x.Submit(Ctx, Send([(20u, IdBlob)], "wl_shm.create_pool"u8)), "SEND");
        var (data, fds) = XdRig.ReadPeer(x.Peers[0]);
        Assert.Equal("wl_shm.create_pool", Encoding.ASCII.GetString(data));
        var fd = Assert.Single(fds);
        using (fd)
        {
            Assert.Equal(FdKind.RegularFile, FdFiles.KindOf(fd));
            using var view = MappedMemory.Map(fd, 0, 4096, writable: false);
            Assert.All(view.AsSpan(0, 4096).ToArray(), b => Assert.Equal(0x5A, b));
            // Shared memory, not a copy: a later write by the guest is seen through the server's fd.
            blob.HostMemory!.AsSpan(0, 1)[0] = 0x11;
            Assert.Equal(0x11, view.AsSpan(0, 1)[0]);
        }
        Assert.Equal(1, ctx.Sends);
    }

    [Fact]
    public void Poll_IsHeldUntilTheServerWrites_ThenReceiveCarriesDataBlobAndWritePipe()
    {
        using var x = new XdRig();
        var ctx = x.Open(Ctx);
        var poll = x.QueuePoll(Ctx);
        Assert.Null(x.WaitPoll(poll, seconds: 0.3)); // nothing to read: the fence is held
        Assert.Equal(1, ctx.PendingPollFences);

        using var keymap = MemFd.Create("keymap", 5000);
        using (var v = MappedMemory.Map(keymap, 0, 5000)) v.AsSpan(0, 5000).Fill(0x42);
        var (read, write) = FdFiles.CreatePipe();
        using var readEnd = read;
        using (write) Assert.Equal(IoStatus.Ok, UnixSocket.Send(x.Peers[0], "events"u8, [keymap, write], out _));

        var reply = x.WaitPoll(poll);
        Assert.NotNull(reply);
        Assert.True(reply!.IsOk);
        var m = x.ChannelMessageOf(Ctx);
        Assert.Equal(CmdReceive, m.Command);
        Assert.Equal("events", Encoding.ASCII.GetString(m.Data));
        Assert.Equal(2, m.Identifiers.Length);
        Assert.Equal((IdBlob, 5000u), (m.Identifiers[0].Type, m.Identifiers[0].Size));
        Assert.Equal(IdWritePipe, m.Identifiers[1].Type);
        Assert.Equal(2, ctx.ItemCount);

        // The blob item becomes a HOST3D blob with the server's bytes (used once).
        GpuDriver.Expect(x.CreateHostBlob(Ctx, 30, m.Identifiers[0].Id, 5000), "HOST3D from a received fd");
        Assert.All(x.Blob(30).HostMemory!.AsSpan(0, 5000).ToArray(), b => Assert.Equal(0x42, b));
        Assert.Equal(VirtioGpuCtrlType.ErrInvalidParameter, x.CreateHostBlob(Ctx, 31, m.Identifiers[0].Id, 5000).Type);

        // WRITE feeds the write pipe; hang_up closes it after the data.
        uint pipeId = m.Identifiers[1].Id;
        GpuDriver.Expect(x.Submit(Ctx, Write(pipeId, "clipboard"u8, hangUp: false)), "WRITE");
        GpuDriver.Expect(x.Submit(Ctx, Write(pipeId, "!"u8, hangUp: true)), "WRITE hang_up");
        Assert.Equal("clipboard!", ReadToEnd(read));
        Assert.Equal(VirtioGpuCtrlType.ErrInvalidParameter, x.Submit(Ctx, Write(pipeId, "late"u8, hangUp: false)).Type);
    }

    [Fact]
    public void ReadPipe_TheGuestPredictsTheId_ServerDataComesBackAsRead_EofAsHangUp()
    {
        using var x = new XdRig();
        var ctx = x.Open(Ctx);
        Assert.Equal(VirtioGpuCtrlType.ErrInvalidParameter, x.Submit(Ctx, Send([(ReadPipeIdBase + 2, IdReadPipe)], "x"u8)).Type);
        Assert.Contains("the next read-pipe id is 0x80000001", x.Log);
        GpuDriver.Expect(x.Submit(Ctx, Send([(ReadPipeIdBase + 1, IdReadPipe)], "wl_data_offer.receive"u8)), "SEND read pipe");
        var (_, fds) = XdRig.ReadPeer(x.Peers[0]);
        using (var serverEnd = Assert.Single(fds))
        {
            Assert.True(FdFiles.IsWriteOnly(serverEnd));
            Assert.True(FdFiles.WriteAll(serverEnd, "text/plain data"u8));
        }
        var poll = x.QueuePoll(Ctx);
        Assert.True(x.WaitPoll(poll)!.IsOk);
        var m = x.ChannelMessageOf(Ctx);
        Assert.Equal(CmdRead, m.Command);
        Assert.Equal(ReadPipeIdBase + 1, m.ReadIdentifier);
        Assert.Equal("text/plain data", Encoding.ASCII.GetString(m.Data));
        Assert.False(m.HangUp);

        poll = x.QueuePoll(Ctx);
        Assert.True(x.WaitPoll(poll)!.IsOk);
        m = x.ChannelMessageOf(Ctx);
        Assert.Equal((CmdRead, true, 0), (m.Command, m.HangUp, m.Data.Length));
        Assert.Equal(0, ctx.ItemCount); // the pipe is gone
        // The next prediction goes on from there.
        GpuDriver.Expect(x.Submit(Ctx, Send([(ReadPipeIdBase + 2, IdReadPipe)], "again"u8)), "second read pipe");
        foreach (var fd in XdRig.ReadPeer(x.Peers[0]).Fds) fd.Dispose();
    }

    [Fact]
    public void ClosedHostSocket_GivesTheEmptyReceive_ThenSendFails()
    {
        using var x = new XdRig();
        var ctx = x.Open(Ctx);
        var poll = x.QueuePoll(Ctx);
        x.Peers[0].Dispose();
        Assert.True(x.WaitPoll(poll)!.IsOk);
        var m = x.ChannelMessageOf(Ctx);
        Assert.Equal(CmdReceive, m.Command);
        Assert.True(m.HangUp); // num_identifiers 0 and opaque_data_size 0, as rutabaga writes at EOF
        Assert.True(ctx.ChannelHungUp);
        var r = x.Submit(Ctx, Send([], "late"u8));
        Assert.Equal(VirtioGpuCtrlType.ErrUnspec, r.Type);
        Assert.Contains("closed by the host side", x.Log);
        // A further POLL is held (nothing more will come) and released when the context goes.
        var again = x.QueuePoll(Ctx);
        Assert.Null(x.WaitPoll(again, seconds: 0.2));
        GpuDriver.Expect(x.Driver.CtxDestroy(Ctx), "CTX_DESTROY");
        Assert.NotNull(x.WaitPoll(again));
    }

    [Fact]
    public void ChannelRefused_InitFailsCleanly()
    {
        using var x = new XdRig { RefuseChannel = true };
        GpuDriver.Expect(x.Driver.CtxCreate(Ctx, CapsetId), "CTX_CREATE");
        x.NewRing(Ctx, 1);
        x.NewRing(Ctx, 2);
        Assert.Equal(VirtioGpuCtrlType.ErrUnspec, x.Submit(Ctx, Init(1, 2)).Type);
        Assert.Contains("opening the Wayland channel failed", x.Log);
        Assert.False(x.Contexts[0].Initialized);
    }

    public static TheoryData<string, byte[], VirtioGpuCtrlType, string> Malformed()
    {
        static byte[] Hdr(byte cmd, int size, int total)
        {
            var b = new byte[total];
            b[0] = cmd;
            BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(2), (ushort)size);
            return b;
        }
        var send = Send([], "abc"u8);
        var tooMany = (byte[])send.Clone();
        BinaryPrimitives.WriteUInt32LittleEndian(tooMany.AsSpan(8), 29);
        var pastData = (byte[])send.Clone();
        BinaryPrimitives.WriteUInt32LittleEndian(pastData.AsSpan(12), 4);
        var big = Send([], new byte[3745]);
        var write = Write(55, "x"u8, false);
        BinaryPrimitives.WriteUInt32LittleEndian(write.AsSpan(16), 2);
        return new()
        {
            { "short stream", new byte[4], VirtioGpuCtrlType.ErrInvalidParameter, "less than a command header" },
            { "cmd_size below header", Hdr(CmdPoll, 4, 16), VirtioGpuCtrlType.ErrInvalidParameter, "cmd_size 4 is smaller than the 8-byte header" },
            { "cmd_size past stream", Hdr(CmdPoll, 64, 16), VirtioGpuCtrlType.ErrInvalidParameter, "cmd_size 64 runs past the end of the 16-byte stream" },
            { "unknown cmd", Hdr(99, 16, 16), VirtioGpuCtrlType.ErrInvalidParameter, "cmd 99 at offset 0" },
            { "host-only cmd", Hdr(CmdReceive, 352, 352), VirtioGpuCtrlType.ErrInvalidParameter, "RECEIVE at offset 0: not a command the guest may send" },
            { "INIT size", Hdr(CmdInit, 24, 24), VirtioGpuCtrlType.ErrInvalidParameter, "INIT: cmd_size 24 is none of 16, 20, 36" },
            { "INIT twice", Init(XdRig.QueryRingOf(Ctx), XdRig.ChannelRingOf(Ctx)), VirtioGpuCtrlType.ErrInvalidParameter, "initialized already" },
            { "num_identifiers", tooMany, VirtioGpuCtrlType.ErrInvalidParameter, "num_identifiers 29 exceeds 28" },
            { "opaque size past command", pastData, VirtioGpuCtrlType.ErrInvalidParameter, "opaque_data_size 4 runs past the 355-byte command" },
            { "ring overflow", big, VirtioGpuCtrlType.ErrInvalidParameter, "opaque_data_size 3745 exceeds 3744" },
            { "unknown identifier type", Send([(1u, 9u)], "x"u8), VirtioGpuCtrlType.ErrInvalidParameter, "identifier_types[0] = 9" },
            { "sync identifier", Send([(1u, IdSync)], "x"u8), VirtioGpuCtrlType.ErrInvalidParameter, "VIRTGPU_SYNC" },
            { "blob not attached", Send([(4242u, IdBlob)], "x"u8), VirtioGpuCtrlType.ErrInvalidResourceId, "resource 4242 is not attached" },
            { "guest blob in SEND", Send([(XdRig.QueryRingOf(Ctx), IdBlob)], "x"u8), VirtioGpuCtrlType.ErrInvalidParameter, "guest-memory blob" },
            { "two read pipes", Send([(ReadPipeIdBase + 1, IdReadPipe), (ReadPipeIdBase + 2, IdReadPipe)], "x"u8), VirtioGpuCtrlType.ErrInvalidParameter, "more than one read pipe" },
            { "format", GetImageRequirements(16, 16, 0x12345678), VirtioGpuCtrlType.ErrInvalidParameter, "drm_format 0x12345678 is not supported" },
            { "zero width", GetImageRequirements(0, 16, DrmFormatXrgb8888), VirtioGpuCtrlType.ErrInvalidParameter, "size 0x16" },
            { "huge image", GetImageRequirements(32768, 32768, DrmFormatXrgb8888), VirtioGpuCtrlType.ErrInvalidParameter, "more than 2147483648" },
            { "WRITE unknown id", Write(55, "x"u8, false), VirtioGpuCtrlType.ErrInvalidParameter, "identifier 55 names no item" },
            { "WRITE size", write, VirtioGpuCtrlType.ErrInvalidParameter, "WRITE: opaque_data_size 2 runs past" },
            { "POLL short", Hdr(CmdPoll, 8, 8), VirtioGpuCtrlType.ErrInvalidParameter, "POLL: cmd_size 8 is below 16" },
        };
    }

    [Theory]
    [MemberData(nameof(Malformed))]
    public void MalformedCommand_IsRefusedWithAnErrorNamingTheField(string what, byte[] stream, VirtioGpuCtrlType expected, string logged)
    {
        using var x = new XdRig();
        var ctx = x.Open(Ctx);
        var r = x.Submit(Ctx, stream);
        Assert.True(expected == r.Type, $"{what}: {r.Type}, expected {expected}\n{x.Log}");
        Assert.Contains(logged, x.Log);
        // The context goes on working.
        GpuDriver.Expect(x.Submit(Ctx, Send([], "ok"u8)), "SEND after the error");
        Assert.Equal("ok", Encoding.ASCII.GetString(XdRig.ReadPeer(x.Peers[0]).Data));
        Assert.Equal(0, ctx.ItemCount); // a refused SEND leaves no pipe behind
    }

    [Fact]
    public void CommandsBeforeInit_AreRefused()
    {
        using var x = new XdRig();
        GpuDriver.Expect(x.Driver.CtxCreate(Ctx, CapsetId), "CTX_CREATE");
        Assert.Equal(VirtioGpuCtrlType.ErrInvalidParameter, x.Submit(Ctx, Send([], "x"u8)).Type);
        Assert.Contains("SEND before INIT", x.Log);
        Assert.Equal(VirtioGpuCtrlType.ErrInvalidParameter, x.Submit(Ctx, Poll()).Type);
        Assert.Contains("POLL before INIT", x.Log);
        Assert.Equal(VirtioGpuCtrlType.ErrInvalidParameter, x.Submit(Ctx, GetImageRequirements(4, 4, DrmFormatXrgb8888)).Type);
        Assert.Contains("GET_IMAGE_REQUIREMENTS before INIT", x.Log);
    }

    [Fact]
    public void RingResources_MustBeAttachedGuestPagesOfAPage()
    {
        using var x = new XdRig();
        GpuDriver.Expect(x.Driver.CtxCreate(Ctx, CapsetId), "CTX_CREATE");
        x.NewRing(Ctx, 1);
        x.NewRing(Ctx, 2, attach: false);
        Assert.Equal(VirtioGpuCtrlType.ErrInvalidResourceId, x.Submit(Ctx, Init(1, 2)).Type);
        Assert.Contains("channel_ring_id 2 is not a resource attached", x.Log);
        x.NewRing(Ctx, 3, size: 1024);
        Assert.Equal(VirtioGpuCtrlType.ErrInvalidParameter, x.Submit(Ctx, Init(1, 3)).Type);
        Assert.Contains("channel_ring_id 3: its first memory entry has 1024 bytes; the ring needs 4096", x.Log);
        Assert.Equal(VirtioGpuCtrlType.ErrInvalidParameter, x.Submit(Ctx, Init(1, 2, channelType: 2)).Type);
        Assert.Contains("channel_type 2 is not supported", x.Log);
        Assert.Empty(x.Peers); // nothing was opened for refused INITs
        GpuDriver.Expect(x.Submit(Ctx, Init(1, 3, channelType: 0)), "INIT without a channel (query ring only)");
        Assert.Equal(VirtioGpuCtrlType.ErrInvalidParameter, x.Submit(Ctx, Poll()).Type);
    }

    [Fact]
    public void DetachedChannelRing_TheEventIsLostWithALogLine_AndTheFenceStillSignals()
    {
        using var x = new XdRig();
        x.Open(Ctx);
        GpuDriver.Expect(x.Driver.CtxDetachResource(Ctx, XdRig.ChannelRingOf(Ctx)), "detach ring");
        var poll = x.QueuePoll(Ctx);
        Assert.Equal(IoStatus.Ok, UnixSocket.Send(x.Peers[0], "x"u8, [], out _));
        Assert.NotNull(x.WaitPoll(poll));
        Assert.Contains("is no longer an attached guest blob; the event is lost", x.Log);
    }

    [Fact]
    public void BadFences_AreSignalledAtOnce_WithALogLine()
    {
        using var x = new XdRig();
        x.Open(Ctx);
        Assert.True(x.Submit(Ctx, GetImageRequirements(4, 4, DrmFormatXrgb8888), fence: true, ring: 5).IsOk);
        Assert.Contains("ring_idx 5, which is neither 0 (query) nor 1 (channel)", x.Log);
        Assert.True(x.Submit(Ctx, GetImageRequirements(4, 4, DrmFormatXrgb8888), fence: true).IsOk);
        Assert.Contains("has no ring_idx", x.Log);
        Assert.Equal(0, x.Rig.Device.Fences.Count);
    }

    [Fact]
    public void OneEventPerFence_TwoPipesReady_TwoPollsNeeded()
    {
        using var x = new XdRig();
        var ctx = x.Open(Ctx);
        var ends = new List<FdHandle>();
        for (uint i = 1; i <= 2; i++)
        {
            GpuDriver.Expect(x.Submit(Ctx, Send([(ReadPipeIdBase + i, IdReadPipe)], "r"u8)), "SEND");
            ends.AddRange(XdRig.ReadPeer(x.Peers[0]).Fds);
        }
        foreach (var e in ends) Assert.True(FdFiles.WriteAll(e, "data"u8));
        var poll = x.QueuePoll(Ctx);
        Assert.True(x.WaitPoll(poll)!.IsOk);
        Assert.Equal(1, ctx.ReadEvents);
        Thread.Sleep(100);
        x.Rig.Scheduler.RunPending();
        Assert.Equal(1, ctx.ReadEvents); // the second waits for the next POLL
        poll = x.QueuePoll(Ctx);
        Assert.True(x.WaitPoll(poll)!.IsOk);
        Assert.Equal(2, ctx.ReadEvents);
        foreach (var e in ends) e.Dispose();
    }

    [Fact]
    public void ItemLimit_RefusesNewRequirements()
    {
        using var x = new XdRig(maxItems: 3);
        x.Open(Ctx);
        for (uint w = 1; w <= 3; w++) x.Requirements(Ctx, w, 1, DrmFormatXrgb8888);
        Assert.Equal(VirtioGpuCtrlType.ErrOutOfMemory, x.Submit(Ctx, GetImageRequirements(9, 1, DrmFormatXrgb8888), fence: true, ring: QueryRing).Type);
        Assert.Contains("limit 3", x.Log);
    }

    [Fact]
    public void ManyContexts_LeakNoFds()
    {
        // Warm up once (runtime, thread pool, first-use allocations), then count.
        RunContexts(2);
        var before = XdRig.OpenFds();
        RunContexts(40);
        var after = XdRig.OpenFds();
        for (int i = 0; i < 100 && after.Count > before.Count; i++)
        {
            Thread.Sleep(20);
            after = XdRig.OpenFds();
        }
        Assert.True(after.Count <= before.Count, $"{after.Count} fds open after 40 contexts, {before.Count} before; new: {string.Join(", ", after.Except(before))}");
    }

    private static void RunContexts(int n)
    {
        using var x = new XdRig();
        for (uint c = 1; c <= n; c++)
        {
            x.Open(c);
            x.ImageBlob(c, 1000 + c, 32, 32, 1);
            GpuDriver.Expect(x.Submit(c, Send([(1000 + c, IdBlob), (ReadPipeIdBase + 1, IdReadPipe)], "x"u8)), "SEND");
            var (_, fds) = XdRig.ReadPeer(x.Peers[^1]);
            using var mem = MemFd.Create("item", 100);
            var (r, w) = FdFiles.CreatePipe();
            UnixSocket.Send(x.Peers[^1], "y"u8, [mem, w], out _);
            r.Dispose();
            w.Dispose();
            var poll = x.QueuePoll(c);
            Assert.True(x.WaitPoll(poll)!.IsOk);
            x.QueuePoll(c); // left held: destroy releases it
            GpuDriver.Expect(x.Driver.CtxDestroy(c), "CTX_DESTROY");
            GpuDriver.Expect(x.Driver.Unref(1000 + c), "UNREF");
            foreach (var fd in fds) fd.Dispose();
            x.Rig.Scheduler.RunPending();
        }
    }

    private static string ReadToEnd(FdHandle read)
    {
        var sb = new StringBuilder();
        var buf = new byte[256];
        while (true)
        {
            Assert.True(Poller.WaitReadable(read, 5000), "the pipe got nothing");
            var s = FdFiles.Read(read, buf, out int n);
            if (s == IoStatus.Closed) return sb.ToString();
            sb.Append(Encoding.ASCII.GetString(buf, 0, n));
        }
    }
}
