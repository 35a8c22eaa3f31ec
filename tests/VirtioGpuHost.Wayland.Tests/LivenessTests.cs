using VirtioGpuHost.Compositor.Wayland;
using VirtioGpuHost.Compositor.Wayland.Protocol;

namespace VirtioGpuHost.Wayland.Tests;

/// <summary>
/// xdg_wm_base ping/pong as the compositor's proof of life for idle windows: a client that stops
/// answering makes its windows unresponsive (WindowChanged says so), and answering again restores them.
/// </summary>
public sealed class LivenessTests
{
    [Fact]
    public void ClientThatStopsAnsweringPings_BecomesUnresponsive_AndRecovers()
    {
        var options = new WaylandServerOptions { PingInterval = TimeSpan.FromMilliseconds(100), PingTimeout = TimeSpan.FromMilliseconds(400) };
        using var s = new TestServer(options);
        var changes = new List<bool>();
        s.Server.WindowChanged += w => { lock (changes) changes.Add(w.Responsive); };
        using var x = new XdgClient(s);
        var c = x.C;
        var (surf, xs, _, serial) = x.Toplevel();
        c.Send(xs, XdgSurface.Requests.AckConfigure, serial);
        c.Send(surf, WlSurface.Requests.Attach, x.Buffer([1, 2, 3, 4], 2, 2), 0, 0);
        c.Send(surf, WlSurface.Requests.Commit);
        RealClientTests.WaitUntil(() => s.Server.Windows.Count == 1, "the window to map");
        var w = s.Server.Windows[0];
        Assert.True(w.Responsive);

        // The client reads nothing and answers nothing: after the timeout its window is unresponsive.
        RealClientTests.WaitUntil(() => !w.Responsive, "the window to become unresponsive", 5000);
        lock (changes) Assert.Contains(false, changes);
        Assert.Contains(s.Logs.Lines, l => l.Contains("has not answered a ping", StringComparison.Ordinal));

        // It wakes up and answers the newest ping: responsive again.
        Assert.True(c.ReadUntil(e => e.ObjectId == x.Wm && e.Opcode == XdgWmBase.Events.Ping), "no ping");
        uint last = c.Events.Last(e => e.ObjectId == x.Wm && e.Opcode == XdgWmBase.Events.Ping).U(0);
        c.Send(x.Wm, XdgWmBase.Requests.Pong, last);
        RealClientTests.WaitUntil(() => w.Responsive || s.Server.Windows.Count == 0, "the window to be responsive again", 5000);
        // A newer ping may have gone out meanwhile; answering every ping seen keeps it responsive.
        for (int i = 0; i < 5 && !w.Responsive; i++)
        {
            c.ReadUntil(e => e.ObjectId == x.Wm && e.Opcode == XdgWmBase.Events.Ping);
            c.Send(x.Wm, XdgWmBase.Requests.Pong, c.Events.Last(e => e.ObjectId == x.Wm && e.Opcode == XdgWmBase.Events.Ping).U(0));
            Thread.Sleep(150);
        }
        Assert.True(w.Responsive);
        lock (changes) Assert.True(changes[^1]);
    }
}

/// <summary>max_wayland_clients: a VM's clients past its limit are refused; other owners are not affected.</summary>
public sealed class OwnerLimitTests
{
    [Fact]
    public void ClientsPastTheOwnersLimit_AreRefused_OthersStillServed()
    {
        using var s = new TestServer(owner: "vm-a");
        s.Server.SetOwnerLimit("vm-a", 2);
        using var a1 = new RawClient(s.SocketPath);
        using var a2 = new RawClient(s.SocketPath);
        Assert.True(a1.Roundtrip());
        Assert.True(a2.Roundtrip());
        using var a3 = new RawClient(s.SocketPath);
        Assert.False(a3.Roundtrip(), "a third client of vm-a was served");
        RealClientTests.WaitUntil(() => s.Logs.Lines.Any(l => l.Contains("max_wayland_clients", StringComparison.Ordinal)), "the refusal log line");
        // Another owner (a cross-domain channel of another VM) is not counted against vm-a.
        using var b = s.Server.ConnectInProcess("vm-b");
        b.ReceiveTimeout = 5000;
        b.Send(RawClient.Message(1, WlDisplay.Requests.Sync, 2u));
        Assert.True(b.Receive(new byte[64]) >= 12, "vm-b's client was not served");
        // Room again once one of vm-a's clients leaves.
        a1.Dispose();
        RealClientTests.WaitUntil(() => s.Server.ClientCount == 2, "the first client to be gone");
        using var a4 = new RawClient(s.SocketPath);
        Assert.True(a4.Roundtrip());
        Assert.True(a2.Roundtrip());
    }
}
