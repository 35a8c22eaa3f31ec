using System.Diagnostics;
using System.Text;
using VirtioGpuHost.Device;
using VirtioGpuHost.Device.Capsets;
using VirtioGpuHost.Device.Wire;
using VirtioGpuHost.FrontEnd;
using VirtioGpuHost.FrontEnd.CrossDomain;
using VirtioGpuHost.Interop;
using VirtioGpuHost.TestKit;
using static VirtioGpuHost.FrontEnd.CrossDomain.CrossDomainGuestWire;

namespace VirtioGpuHost.CrossDomain.Tests;

/// <summary>
/// Our back-end over its real vhost-user socket, driven by the reference front-end (GpuVm):
/// capset 5, context creation, HOST3D blobs mapped into the host-visible region, SEND/RECEIVE
/// with blob fds and pipes against a Unix-socket "Wayland server" the test plays; then the guest
/// Wayland proxy with a fake client on one side and that server on the other.
/// </summary>
public class CrossDomainSocketTests
{
    private const ulong Region = 64UL << 20;

    /// <summary>Back-end (external socket mode: connects to <paramref name="serverPath"/>) + VM.</summary>
    internal static (InProcessBackend Backend, GpuVm Vm) Start(string serverPath)
    {
        var backend = new InProcessBackend(new GpuDeviceOptions
        {
            Blob = true,
            Capsets = [new CrossDomainCapset(host => new CrossDomainContext(host, new CrossDomainOptions { WaylandSocketPath = serverPath }))],
        });
        backend.Server.HostVisibleSize = Region;
        try
        {
            var vm = GpuVm.Connect(backend.SocketPath, new GpuVmOptions { Blob = true, HostVisibleSize = Region });
            return (backend, vm);
        }
        catch
        {
            backend.Dispose();
            throw;
        }
    }

    private static GpuReply WaitPoll(GpuDriver d, PendingCommand p)
    {
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < TimeSpan.FromSeconds(10))
        {
            if (d.TryWait(p) is { } r) return r;
            Thread.Sleep(2);
        }
        throw new TimeoutException("the POLL did not come back");
    }

    [Fact]
    public void ThroughTheSocket_CapsetContextBlobsSendReceiveAndPipes()
    {
        using var dir = new TempDir();
        using var listener = UnixSocket.Listen(dir.File("wl"));
        var (backend, vm) = Start(dir.File("wl"));
        using var _b = backend;
        using var _v = vm;
        var d = vm.Driver;
        Assert.Equal(1u, vm.Config.NumCapsets);
        Assert.Equal(5u, d.GetCapsetInfo(0).CapsetInfo.CapsetId);
        Assert.Equal(2u, BitConverter.ToUInt32(d.GetCapset(5, 0).Bytes, 24 + 4));

        const uint ctx = 7;
        GpuDriver.Expect(d.CtxCreate(ctx, CapsetId, "test"), "CTX_CREATE");
        var pages = new Dictionary<uint, VirtioGpuHost.GuestMemory.GuestAddress>();
        foreach (uint ring in new uint[] { 1, 2 })
        {
            var page = vm.Ram.Allocator.Allocate(4096);
            pages[ring] = page;
            GpuDriver.Expect(d.CreateBlob(ring, VirtioGpuResourceCreateBlob.MemGuest, VirtioGpuResourceCreateBlob.FlagUseMappable, 4096, [new GuestBuffer(page, 4096)]), "ring");
            GpuDriver.Expect(d.CtxAttachResource(ctx, ring), "attach");
        }
        GpuDriver.Expect(d.Submit3D(ctx, Init(1, 2)), "INIT");
        using var server = UnixSocket.Accept(listener, 5000) ?? throw new TimeoutException("INIT did not connect");

        // A shm-style buffer: HOST3D blob, mapped, written by the guest.
        GpuDriver.Expect(d.Submit3D(ctx, GetImageRequirements(64, 64, DrmFormatXrgb8888), fence: true, ringIdx: QueryRing), "GET_IMAGE_REQUIREMENTS");
        var reqs = ImageRequirementsReply.Parse(vm.Ram.Span(pages[1], 64));
        Assert.Equal(256u, reqs.Stride0);
        GpuDriver.Expect(d.CreateBlob(10, VirtioGpuResourceCreateBlob.MemHost3D, VirtioGpuResourceCreateBlob.FlagUseMappable | VirtioGpuResourceCreateBlob.FlagUseShareable, reqs.Size, blobId: reqs.BlobId, ctxId: ctx), "HOST3D");
        GpuDriver.Expect(d.CtxAttachResource(ctx, 10), "attach blob");
        Assert.Equal(VirtioGpuCtrlType.OkMapInfo, d.MapBlob(10, 0).Type);
        var pattern = Enumerable.Range(0, 4096).Select(i => (byte)(i * 13)).ToArray();
        Assert.Equal(HostVisibleAccess.Mapped, vm.HostVisible!.Write(0, pattern));

        GpuDriver.Expect(d.Submit3D(ctx, Send([(10u, IdBlob), (ReadPipeIdBase + 1, IdReadPipe)], "create_pool"u8)), "SEND");
        var (data, fds) = XdRig.ReadPeer(server);
        Assert.Equal("create_pool", Encoding.ASCII.GetString(data));
        Assert.Equal(2, fds.Count);
        using (var pool = MappedMemory.Map(fds[0], 0, 4096, writable: false)) Assert.Equal(pattern, pool.AsSpan(0, 4096).ToArray());
        Assert.True(FdFiles.WriteAll(fds[1], "paste"u8));
        foreach (var fd in fds) fd.Dispose();

        var poll = d.Queue(d.Submit3DCommand(ctx, Poll(), fence: true, ringIdx: ChannelRing));
        d.KickControl();
        Assert.True(WaitPoll(d, poll).IsOk);
        var m = ChannelMessage.Parse(vm.Ram.Span(pages[2], 4096), out _)!;
        Assert.Equal((CmdRead, ReadPipeIdBase + 1, "paste"), (m.Command, m.ReadIdentifier, Encoding.ASCII.GetString(m.Data)));

        // The server answers with a keymap-like memfd and a pipe write end.
        using var keymap = MemFd.Create("keymap", 3000);
        using (var v = MappedMemory.Map(keymap, 0, 3000)) v.AsSpan(0, 3000).Fill(0x6B);
        var (read, write) = FdFiles.CreatePipe();
        using var readEnd = read;
        using (write) Assert.Equal(IoStatus.Ok, UnixSocket.Send(server, "keymap"u8, [keymap, write], out _));
        poll = d.Queue(d.Submit3DCommand(ctx, Poll(), fence: true, ringIdx: ChannelRing));
        d.KickControl();
        Assert.True(WaitPoll(d, poll).IsOk);
        m = ChannelMessage.Parse(vm.Ram.Span(pages[2], 4096), out _)!;
        Assert.Equal(CmdReceive, m.Command);
        Assert.Equal("keymap", Encoding.ASCII.GetString(m.Data));
        Assert.Equal([(IdBlob, 3000u), (IdWritePipe, 0u)], m.Identifiers.Select(i => (i.Type, i.Size)).ToArray());
        GpuDriver.Expect(d.CreateBlob(11, VirtioGpuResourceCreateBlob.MemHost3D, VirtioGpuResourceCreateBlob.FlagUseMappable, 3000, blobId: m.Identifiers[0].Id, ctxId: ctx), "HOST3D of the item");
        Assert.Equal(VirtioGpuCtrlType.OkMapInfo, d.MapBlob(11, 0x100000).Type);
        var back = new byte[3000];
        Assert.Equal(HostVisibleAccess.Mapped, vm.HostVisible.Read(0x100000, back));
        Assert.All(back, b => Assert.Equal(0x6B, b));
        GpuDriver.Expect(d.Submit3D(ctx, Write(m.Identifiers[1].Id, "copied"u8, hangUp: true)), "WRITE");
        Assert.True(Poller.WaitReadable(read, 5000));
        var buf = new byte[64];
        Assert.Equal(IoStatus.Ok, FdFiles.Read(read, buf, out int n));
        Assert.Equal("copied", Encoding.ASCII.GetString(buf, 0, n));

        GpuDriver.Expect(d.UnmapBlob(10), "unmap");
        GpuDriver.Expect(d.UnmapBlob(11), "unmap");
        GpuDriver.Expect(d.CtxDestroy(ctx), "CTX_DESTROY");
        Assert.True(Poller.WaitReadable(server, 5000));
        Assert.Equal(IoStatus.Closed, UnixSocket.Receive(server, buf, null, out _));
    }

    [Fact]
    public void Proxy_CarriesAClientsBytesPoolsKeymapsAndPipes()
    {
        using var dir = new TempDir();
        using var listener = UnixSocket.Listen(dir.File("wl"));
        var (backend, vm) = Start(dir.File("wl"));
        using var _b = backend;
        using var _v = vm;
        using var proxy = new WaylandGuestProxy(vm, dir.File("guest"));
        using var client = UnixSocket.Connect(dir.File("guest"));
        using var server = UnixSocket.Accept(listener, 5000) ?? throw new TimeoutException("the proxy's INIT did not connect");

        // Client → server: bytes with a pool fd; the server sees the pool's pixels through its fd.
        using var pool = MemFd.Create("pool", 10000);
        using (var v = MappedMemory.Map(pool, 0, 10000)) v.AsSpan(0, 10000).Fill(0x3C);
        Assert.Equal(IoStatus.Ok, UnixSocket.Send(client, "create_pool"u8, [pool], out _));
        var (data, fds) = XdRig.ReadPeer(server);
        Assert.Equal("create_pool", Encoding.ASCII.GetString(data));
        using (var fd = Assert.Single(fds))
        using (var v = MappedMemory.Map(fd, 0, 10000, writable: false))
            Assert.All(v.AsSpan(0, 10000).ToArray(), b => Assert.Equal(0x3C, b));
        // The client draws again; the next message carries the new pixels along (copied before each SEND).
        using (var v = MappedMemory.Map(pool, 0, 10000)) v.AsSpan(0, 10000).Fill(0x77);
        Assert.Equal(IoStatus.Ok, UnixSocket.Send(client, "commit"u8, [], out _));
        Assert.Equal("commit", Encoding.ASCII.GetString(XdRig.ReadPeer(server).Data));

        // Server → client: a keymap memfd and a selection pipe.
        using var keymap = MemFd.Create("keymap", 2222);
        using (var v = MappedMemory.Map(keymap, 0, 2222)) v.AsSpan(0, 2222).Fill(0x4B);
        var (read, write) = FdFiles.CreatePipe();
        using var readEnd = read;
        using (write) Assert.Equal(IoStatus.Ok, UnixSocket.Send(server, "keymap+send"u8, [keymap, write], out _));
        var (cdata, cfds) = XdRig.ReadPeer(client);
        Assert.Equal("keymap+send", Encoding.ASCII.GetString(cdata));
        Assert.Equal(2, cfds.Count);
        Assert.Equal(2222UL, FdFiles.SizeOf(cfds[0]));
        using (var v = MappedMemory.Map(cfds[0], 0, 2222, writable: false)) Assert.All(v.AsSpan(0, 2222).ToArray(), b => Assert.Equal(0x4B, b));
        Assert.True(FdFiles.WriteAll(cfds[1], "selection"u8));
        foreach (var fd in cfds) fd.Dispose();
        var got = new StringBuilder();
        var buf = new byte[64];
        while (Poller.WaitReadable(read, 5000) && FdFiles.Read(read, buf, out int n) == IoStatus.Ok) got.Append(Encoding.ASCII.GetString(buf, 0, n));
        Assert.Equal("selection", got.ToString());

        // The client leaves: its context goes, the server sees the end.
        client.Dispose();
        Assert.True(Poller.WaitReadable(server, 5000));
        Assert.Equal(IoStatus.Closed, UnixSocket.Receive(server, buf, null, out _));
        Assert.True(SpinWait.SpinUntil(() => proxy.ActiveSessions == 0, 5000));
        Assert.Empty(proxy.Errors);
        Assert.True(proxy.PoolCopies >= 2);
    }

    [Fact]
    public void Proxy_ServerHangUp_DisconnectsTheClient()
    {
        using var dir = new TempDir();
        using var listener = UnixSocket.Listen(dir.File("wl"));
        var (backend, vm) = Start(dir.File("wl"));
        using var _b = backend;
        using var _v = vm;
        using var proxy = new WaylandGuestProxy(vm, dir.File("guest"));
        using var client = UnixSocket.Connect(dir.File("guest"));
        var server = UnixSocket.Accept(listener, 5000) ?? throw new TimeoutException("no connection");
        server.Dispose();
        Assert.True(Poller.WaitReadable(client, 5000), "the client was not disconnected");
        Assert.Equal(IoStatus.Closed, UnixSocket.Receive(client, new byte[16], null, out _));
    }
}
