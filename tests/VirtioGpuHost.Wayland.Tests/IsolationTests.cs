using VirtioGpuHost.TestKit;
using System.Net.Sockets;
using System.Buffers.Binary;
using VirtioGpuHost.Compositor.Wayland;
using VirtioGpuHost.Compositor.Wayland.Protocol;
using VirtioGpuHost.Interop;

namespace VirtioGpuHost.Wayland.Tests;

public sealed class IsolationTests
{
    [Fact]
    public void ProtocolErrorsAndKilledClients_DoNotDisturbAnotherClientsWindow()
    {
        var exe = WaylandClientProcess.Require("weston-simple-shm", "weston");
        using var s = new TestServer(clock: true);
        using var steady = WaylandClientProcess.Start(exe, "", s.SocketPath);
        var w = RealClientTests.WaitForWindow(s, w => w.Commits >= 3, steady);

        // A client killed in the middle of its animation.
        using (var victim = WaylandClientProcess.Start(exe, "", s.SocketPath))
        {
            RealClientTests.WaitUntil(() => s.Server.Windows.Count == 2 && s.Server.Windows.All(x => x.Commits >= 3), "the second window");
            var victimWindow = s.Server.Windows.Single(x => x != w);
            victim.Signal(9);
            Assert.True(victim.WaitForExit(5000));
            RealClientTests.WaitUntil(() => !s.Server.Windows.Contains(victimWindow), "the killed client's window to go");
        }
        // A client with a protocol error while it has a window.
        using (var x = new XdgClient(s))
        {
            var (surf, xs, _, serial) = x.Toplevel();
            x.C.Send(xs, XdgSurface.Requests.AckConfigure, serial);
            x.C.Send(surf, WlSurface.Requests.Attach, x.Buffer([1, 2, 3, 4], 2, 2), 0, 0);
            x.C.Send(surf, WlSurface.Requests.Commit);
            Assert.True(x.C.Roundtrip());
            x.C.Send(surf, 200);
            x.C.ExpectError();
        }
        long commits = w.Commits;
        RealClientTests.WaitUntil(() => w.Commits >= commits + 10, "the steady client to keep animating");
        Assert.Contains(w, s.Server.Windows);
        RealClientTests.WaitUntil(() => s.Server.Windows.Count == 1, "only the steady window to remain");
        Assert.False(steady.HasExited, steady.Output);
    }

    [Fact]
    public void ConnectInProcess_ServesAClient_AndDisconnectOwnerDropsIt()
    {
        using var s = new TestServer(owner: "host");
        using Socket sock = s.Server.ConnectInProcess("vm-b");
        sock.ReceiveTimeout = 5000;
        var req = RawClient.Message(1, WlDisplay.Requests.Sync, 2u);
        sock.Send(req);
        var buf = new byte[64];
        int n = sock.Receive(buf);
        Assert.True(n >= 12);
        Assert.Equal(2u, BinaryPrimitives.ReadUInt32LittleEndian(buf)); // wl_callback.done on object 2
        RealClientTests.WaitUntil(() => s.Server.ClientCount == 1, "the in-process client");

        using var other = new RawClient(s.SocketPath); // owner "host"
        Assert.True(other.Roundtrip());
        s.Server.DisconnectOwner("vm-b");
        RealClientTests.WaitUntil(() => s.Server.ClientCount == 1, "vm-b's client to be dropped");
        Assert.True(other.Roundtrip());
        sock.ReceiveTimeout = 5000;
        int r;
        do { r = sock.Receive(buf); } while (r > 0); // the delete_id, then EOF
        Assert.Equal(0, r);
    }

    [Fact]
    public void WindowsCarryTheirOwner()
    {
        using var s = new TestServer(owner: "infotainment");
        using var x = new XdgClient(s);
        var (surf, xs, _, serial) = x.Toplevel();
        x.C.Send(xs, XdgSurface.Requests.AckConfigure, serial);
        x.C.Send(surf, WlSurface.Requests.Attach, x.Buffer([1, 2, 3, 4], 2, 2), 0, 0);
        x.C.Send(surf, WlSurface.Requests.Commit);
        Assert.True(x.C.Roundtrip());
        var w = Assert.Single(s.Server.Windows);
        Assert.Equal("infotainment", w.Owner);
        s.Server.DisconnectOwner("infotainment");
        RealClientTests.WaitUntil(() => s.Server.Windows.Count == 0 && s.Server.ClientCount == 0, "the owner's clients to go");
    }

    [Fact]
    public void TruncatedPoolFile_IsAProtocolError_NotASigbus()
    {
        using var s = new TestServer();
        using var x = new XdgClient(s);
        var c = x.C;
        var (surf, xs, _, serial) = x.Toplevel();
        c.Send(xs, XdgSurface.Requests.AckConfigure, serial);
        using var fd = RawClient.PoolFile(new uint[64 * 64]); // not sealed: the server reads it with pread
        uint pool = c.CreatePool(x.Shm, fd, 64 * 64 * 4);
        uint buf = c.NewId();
        c.Send(pool, WlShmPool.Requests.CreateBuffer, buf, 0, 64, 64, 256, (uint)WlShm.Format.Argb8888);
        Assert.True(c.Roundtrip());
        using (var f = new FileStream($"/proc/self/fd/{fd.Number}", FileMode.Open, FileAccess.ReadWrite)) f.SetLength(0);
        c.Send(surf, WlSurface.Requests.Attach, buf, 0, 0);
        c.Send(surf, WlSurface.Requests.Commit);
        var (obj, code, _) = c.ExpectError();
        Assert.Equal((buf, (uint)WlShm.Error.InvalidFd), (obj, code));
    }

    [Fact]
    public void SealedPoolFile_IsMapped_AndReadCorrectly()
    {
        using var s = new TestServer();
        using var x = new XdgClient(s);
        var c = x.C;
        var (surf, xs, _, serial) = x.Toplevel();
        c.Send(xs, XdgSurface.Requests.AckConfigure, serial);
        using var fd = RawClient.PoolFile([0xff000001, 0xff000002, 0xff000003, 0xff000004]);
        Assert.True(MemFd.TrySealSize(fd));
        uint pool = c.CreatePool(x.Shm, fd, 16);
        uint buf = c.NewId();
        c.Send(pool, WlShmPool.Requests.CreateBuffer, buf, 0, 2, 2, 8, (uint)WlShm.Format.Argb8888);
        c.Send(surf, WlSurface.Requests.Attach, buf, 0, 0);
        c.Send(surf, WlSurface.Requests.Commit);
        Assert.True(c.Roundtrip());
        Assert.Equal(new uint[] { 0xff000001, 0xff000002, 0xff000003, 0xff000004 }, TestKit.PixelSourceReader.ReadAll(Assert.Single(s.Server.Windows).Pixels));
    }

    [Fact]
    public void MaxClients_RefusesTheNextConnection()
    {
        using var s = new TestServer(new WaylandServerOptions { MaxClients = 2 });
        using var a = new RawClient(s.SocketPath);
        using var b = new RawClient(s.SocketPath);
        Assert.True(a.Roundtrip() && b.Roundtrip());
        using var c = new RawClient(s.SocketPath);
        Assert.False(c.Roundtrip());
        Assert.True(c.Closed);
        Assert.True(a.Roundtrip());
    }

    [Fact]
    public void Dispose_RemovesTheSocketFile()
    {
        var s = new TestServer();
        Assert.True(File.Exists(s.SocketPath));
        s.Server.Dispose();
        Assert.False(File.Exists(s.SocketPath));
        s.Dispose();
    }
}
