using System.Buffers.Binary;
using Microsoft.Extensions.Logging.Abstractions;
using VirtioGpuHost.Compositor.Wayland;
using VirtioGpuHost.Compositor.Wayland.Protocol;
using VirtioGpuHost.Compositor.Wayland.Runtime;
using VirtioGpuHost.Compositor.Wayland.Wire;
using VirtioGpuHost.Interop;

namespace VirtioGpuHost.Wayland.Tests;

public sealed class WireRoundTripTests
{
    [Fact]
    public void EveryArgumentType_RoundTrips()
    {
        using var server = new WaylandServer(new WaylandServerOptions(), NullLoggerFactory.Instance);
        var (a, b) = UnixSocket.CreatePair();
        using var peer = b;
        var client = new WaylandClient(server, a, "test", 1, NullLogger.Instance);
        try
        {
            var (pipeR, pipeW) = FdFiles.CreatePipe();
            using var _ = pipeW;
            var w = new EventWriter();
            w.Begin(7, 3);
            w.WriteInt(-5);
            w.WriteUInt(0xdeadbeef);
            w.WriteFixed(WlFixed.FromDouble(-1.5));
            w.WriteString("héllo");
            w.WriteString(null);
            w.WriteString("");
            w.WriteArray([1, 2, 3, 4, 5]);
            w.WriteObject(client.DisplayObject);
            w.WriteObject(null);
            w.WriteUInt(42); // a new_id
            w.WriteFd(pipeR);
            var msg = w.Finish().ToArray();

            Assert.Equal(7u, BinaryPrimitives.ReadUInt32LittleEndian(msg));
            Assert.Equal(((uint)msg.Length << 16) | 3, BinaryPrimitives.ReadUInt32LittleEndian(msg.AsSpan(4)));
            Assert.Equal(0, msg.Length % 4);
            Assert.Single(w.Fds);
            client.QueueReceivedFd(w.Fds[0]);

            var r = new WireReader(msg.AsSpan(8), client, client.DisplayObject, "test");
            Assert.Equal(-5, r.ReadInt());
            Assert.Equal(0xdeadbeef, r.ReadUInt());
            Assert.Equal(-1.5, r.ReadFixed().ToDouble());
            Assert.Equal("héllo", r.ReadString("s"));
            Assert.Null(r.ReadStringNullable("n"));
            Assert.Equal("", r.ReadString("e"));
            Assert.Equal(new byte[] { 1, 2, 3, 4, 5 }, r.ReadArray("a").ToArray());
            Assert.Same(client.DisplayObject, r.ReadObject<WlDisplay>("o"));
            Assert.Null(r.ReadObjectNullable<WaylandResource>("null"));
            Assert.Equal(42u, r.ReadNewId("id"));
            using var fd = r.ReadFd("fd");
            Assert.Equal(FdKind.Pipe, FdFiles.KindOf(fd));
            r.ExpectEnd();
        }
        finally { client.Teardown(); }
    }

    [Theory]
    [InlineData(0.0)]
    [InlineData(1.0 / 256)]
    [InlineData(-8388608.0)]
    [InlineData(8388607.99609375)]
    public void Fixed_IsExact24Dot8(double v) => Assert.Equal(v, WlFixed.FromDouble(v).ToDouble());
}

/// <summary>Malformed messages: the named wl_display.error, then only that client is disconnected.</summary>
public sealed class WireErrorTests
{
    private static byte[] Header(uint obj, int size, ushort opcode)
    {
        var m = new byte[Math.Max(8, (size + 3) & ~3)];
        BinaryPrimitives.WriteUInt32LittleEndian(m, obj);
        BinaryPrimitives.WriteUInt32LittleEndian(m.AsSpan(4), ((uint)size << 16) | opcode);
        return m;
    }

    private static byte[] Bind(uint name, byte[] ifaceWithLength, uint version, uint id)
    {
        var body = new List<byte>();
        body.AddRange(BitConverter.GetBytes(name));
        body.AddRange(ifaceWithLength);
        body.AddRange(BitConverter.GetBytes(version));
        body.AddRange(BitConverter.GetBytes(id));
        var m = Header(2, 8 + body.Count, WlRegistry.Requests.Bind);
        Array.Resize(ref m, 8 + body.Count);
        body.CopyTo(m, 8);
        return m;
    }

    public static TheoryData<string> Cases() =>
    [
        "size below 8", "size not a multiple of 4", "size above 4096", "argument past the end",
        "string without NUL", "string length past the end", "unknown object", "unknown opcode",
        "new_id in use", "new_id out of client range", "missing fd", "request newer than bound version",
        "bind of a version not advertised", "unknown object argument", "trailing bytes",
    ];

    [Theory]
    [MemberData(nameof(Cases))]
    public void MalformedMessage_PostsError_AndDisconnectsOnlyThatClient(string kind)
    {
        using var s = new TestServer();
        using var good = new RawClient(s.SocketPath);
        var goodGlobals = good.Globals();
        using var bad = new RawClient(s.SocketPath);
        var globals = bad.Globals(); // registry = 2
        Assert.Equal(2u, bad.Registry);

        uint expectObj = 1, expectCode = (uint)WlDisplay.Error.InvalidMethod;
        switch (kind)
        {
            case "size below 8": bad.SendRaw(Header(1, 4, 0)); break;
            case "size not a multiple of 4":
                {
                    var m = Header(1, 10, WlDisplay.Requests.Sync);
                    Array.Resize(ref m, 12);
                    bad.SendRaw(m);
                    break;
                }
            case "size above 4096": bad.SendRaw(Header(1, 4100, WlDisplay.Requests.Sync)); break;
            case "argument past the end": bad.SendRaw(Header(1, 8, WlDisplay.Requests.Sync)); break;
            case "string without NUL":
                bad.SendRaw(Bind(globals["wl_shm"].Name, [6, 0, 0, 0, .."wl_shm"u8, 0, 0], 1, 3));
                expectObj = 2;
                break;
            case "string length past the end":
                bad.SendRaw(Bind(globals["wl_shm"].Name, [100, 0, 0, 0, .."wl_shm"u8, 0, 0], 1, 3));
                expectObj = 2;
                break;
            case "unknown object": bad.Send(999, 0); expectCode = (uint)WlDisplay.Error.InvalidObject; break;
            case "unknown opcode": bad.Send(1, 7); break;
            case "new_id in use": bad.Send(1, WlDisplay.Requests.GetRegistry, 2u); break;
            case "new_id out of client range": bad.Send(1, WlDisplay.Requests.Sync, 0xff000001u); break;
            case "missing fd":
                {
                    uint shm = bad.Bind(globals, "wl_shm", 1);
                    bad.Send(shm, WlShm.Requests.CreatePool, bad.NewId(), 4096); // the fd is not attached
                    expectObj = shm;
                    break;
                }
            case "request newer than bound version":
                {
                    uint comp = bad.Bind(globals, "wl_compositor", 1);
                    uint surf = bad.NewId();
                    bad.Send(comp, WlCompositor.Requests.CreateSurface, surf);
                    bad.Send(surf, WlSurface.Requests.DamageBuffer, 0, 0, 1, 1); // since v4
                    expectObj = surf;
                    break;
                }
            case "bind of a version not advertised":
                bad.Bind(globals, "wl_compositor", 99);
                expectCode = (uint)WlDisplay.Error.InvalidObject;
                break;
            case "unknown object argument":
                {
                    uint comp = bad.Bind(globals, "wl_compositor", 4);
                    uint surf = bad.NewId();
                    bad.Send(comp, WlCompositor.Requests.CreateSurface, surf);
                    bad.Send(surf, WlSurface.Requests.Attach, 777u, 0, 0);
                    expectObj = surf;
                    expectCode = (uint)WlDisplay.Error.InvalidObject;
                    break;
                }
            case "trailing bytes":
                {
                    var m = RawClient.Message(1, WlDisplay.Requests.Sync, bad.NewId(), 0u);
                    bad.SendRaw(m);
                    break;
                }
            default: throw new ArgumentException(kind);
        }
        var (obj, code, message) = bad.ExpectError();
        Assert.True((expectObj, expectCode) == (obj, code), $"got object {obj} code {code}: {message}");
        Assert.NotEmpty(message);

        // The other client is untouched.
        Assert.True(good.Roundtrip(), "the other client was disturbed");
        RealClientTests.WaitUntil(() => s.Server.ClientCount == 1, "the bad client to be dropped");
        Assert.True(good.Roundtrip());
        Assert.Contains(s.Logs.Lines, l => l.Contains("protocol error"));
    }

    [Fact]
    public void ClientThatDoesNotReadEvents_IsDisconnected_WithoutBlockingOthers()
    {
        using var s = new TestServer(new WaylandServerOptions { MaxOutputBytesPerClient = 64 * 1024 });
        using var good = new RawClient(s.SocketPath);
        good.Globals();
        using var flood = new RawClient(s.SocketPath);
        // The server adopts accepted clients on its own thread: both must be counted before the loop.
        RealClientTests.WaitUntil(() => s.Server.ClientCount == 2, "both clients to be adopted");
        // Each sync makes ~24 bytes of events; the flooder never reads them.
        var burst = Enumerable.Range(0, 1000).SelectMany(i => RawClient.Message(1, WlDisplay.Requests.Sync, (uint)(100 + i))).ToArray();
        for (int round = 0; round < 100 && s.Server.ClientCount == 2; round++)
        {
            try { flood.SendRaw(burst); }
            catch (IOException) { break; }
            Assert.True(good.Roundtrip(), "the reading client was blocked by the flooding one");
        }
        RealClientTests.WaitUntil(() => s.Server.ClientCount == 1, "the flooding client to be dropped");
        Assert.True(good.Roundtrip());
        // The line is written on the server thread, possibly just after the count dropped.
        RealClientTests.WaitUntil(() => s.Logs.Lines.Any(l => l.Contains("does not read its events")),
            "the log line naming the flooding client; log: " + string.Join(" | ", s.Logs.Lines.TakeLast(10)), 30000);
    }

    [Fact]
    public void ObjectLimit_IsEnforced()
    {
        using var s = new TestServer(new WaylandServerOptions { MaxObjectsPerClient = 20 });
        using var c = new RawClient(s.SocketPath);
        var g = c.Globals();
        uint comp = c.Bind(g, "wl_compositor", 4);
        c.SendRaw(Enumerable.Range(0, 30).SelectMany(_ => RawClient.Message(comp, WlCompositor.Requests.CreateRegion, c.NewId())).ToArray());
        var (obj, code, _) = c.ExpectError();
        Assert.Equal((1u, (uint)WlDisplay.Error.NoMemory), (obj, code));
    }

    [Fact]
    public void DeleteId_FollowsDestroy_AndIdsCanBeReused()
    {
        using var s = new TestServer();
        using var c = new RawClient(s.SocketPath);
        var g = c.Globals();
        uint comp = c.Bind(g, "wl_compositor", 4);
        uint region = c.NewId();
        c.Send(comp, WlCompositor.Requests.CreateRegion, region);
        c.Send(region, WlRegion.Requests.Destroy);
        Assert.True(c.Roundtrip());
        Assert.Contains(c.Events, e => e.ObjectId == 1 && e.Opcode == WlDisplay.Events.DeleteId && e.U(0) == region);
        c.Send(comp, WlCompositor.Requests.CreateRegion, region); // the id is free again
        Assert.True(c.Roundtrip());
    }
}
