using VirtioGpuHost.Device.Wire;
using VirtioGpuHost.FrontEnd;
using VirtioGpuHost.Interop;
using VirtioGpuHost.TestKit;
using VirtioGpuHost.VhostUser.Display;
using VirtioGpuHost.VhostUser.Wire;

namespace VirtioGpuHost.UnitTests.VhostUser;

/// <summary>
/// The server survives front-ends that leave cleanly or abruptly and serves the next one;
/// after many connections its fds and memfd mappings are back where they started. The
/// server runs in this process, so /proc/self shows what it holds (these tests run alone).
/// </summary>
[Collection(ProcessWideCollection.Name)]
public class ReconnectTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(10);

    private static GpuVm Connect(InProcessBackend backend)
    {
        var vm = GpuVm.Connect(backend.SocketPath, new GpuVmOptions { Display = new DisplayServerOptions { Width = 320, Height = 200 } });
        Assert.True(vm.WaitForDisplayReady(Wait));
        return vm;
    }

    /// <summary>A new VM draws and the display shows it: the server is serving again.</summary>
    private static void AssertServes(InProcessBackend backend)
    {
        using var vm = Connect(backend);
        var fb = FrameBuffer.Allocate(vm.Ram, 32, 32, VirtioGpuFormat.B8G8R8X8Unorm, scattered: true);
        fb.Fill((x, y) => 0xFF00FF00);
        vm.Driver.SetUpFrameBuffer(1, fb, 0);
        vm.Driver.Present(1, fb, new VirtioGpuRect(0, 0, 32, 32));
        Assert.True(vm.Display!.WaitFor(d => d.Snapshot(0) is { } s && (s.Pixels[0] & 0xFFFFFF) == 0x00FF00, Wait));
    }

    [Fact]
    public void Server_AfterACleanDisconnect_ServesTheNextConnection()
    {
        using var backend = new InProcessBackend();
        using (var vm = Connect(backend))
        {
            vm.Stop();
        }
        Assert.True(backend.WaitForConnections(1, Wait));
        AssertServes(backend);
        Assert.True(backend.WaitForConnections(2, Wait));
    }

    public static TheoryData<string> AbruptKinds => new()
    {
        "connect-and-close", "half-header", "half-payload", "bad-version", "payload-over-cap", "mid-drawing", "query-waiting-for-display", "display-not-reading",
    };

    [Theory]
    [MemberData(nameof(AbruptKinds))]
    public void Server_AfterAnAbruptDisconnect_ServesTheNextConnection(string kind)
    {
        using var backend = new InProcessBackend();
        Disconnect(backend, kind);
        Assert.True(backend.WaitForConnections(1, Wait), $"the server did not finish the connection ({kind})");
        AssertServes(backend);
    }

    /// <summary>One connection that ends the way <paramref name="kind"/> says.</summary>
    private static void Disconnect(InProcessBackend backend, string kind)
    {
        switch (kind)
        {
            case "connect-and-close":
                UnixSocket.Connect(backend.SocketPath).Dispose();
                break;
            case "half-header" or "half-payload" or "bad-version" or "payload-over-cap":
            {
                using var fe = VhostUserFrontEnd.Connect(backend.SocketPath);
                fe.GetFeatures();
                var msg = new byte[VhostUserHeader.Length + 20];
                uint size = kind == "payload-over-cap" ? 0x10000u : 40u;
                uint flags = kind == "bad-version" ? 0u : VhostUserHeader.Version;
                new VhostUserHeader((uint)VhostUserRequest.SetVringAddr, flags, size).Write(msg);
                fe.SendRaw(kind == "half-header" ? msg.AsSpan(0, 5) : msg.AsSpan());
                break;
            }
            case "mid-drawing":
            {
                var vm = Connect(backend);
                var fb = FrameBuffer.Allocate(vm.Ram, 320, 200, VirtioGpuFormat.B8G8R8X8Unorm, scattered: true);
                vm.Driver.SetUpFrameBuffer(1, fb, 0);
                for (int i = 0; i < 10; i++) vm.Driver.Queue(Bytes(vm.Driver.FlushCommand(1, new VirtioGpuRect(0, 0, 320, 200))));
                vm.Driver.KickControl();
                vm.Dispose(); // no GET_VRING_BASE, commands in flight
                break;
            }
            case "query-waiting-for-display":
            {
                var vm = Connect(backend);
                using var display = new ScriptedDisplay();
                display.HandOver(vm.FrontEnd);
                display.Negotiate();
                vm.Driver.Queue(Bytes(vm.Driver.Header(VirtioGpuCtrlType.GetDisplayInfo)), VirtioGpuResponseSizes.DisplayInfo);
                vm.Driver.KickControl();
                display.ReadUntil(GpuDisplayRequest.GetDisplayInfo);
                vm.Dispose();
                break;
            }
            case "display-not-reading":
            {
                var vm = GpuVm.Connect(backend.SocketPath, new GpuVmOptions { RamSize = 48UL << 20 });
                using var display = new ScriptedDisplay(); // never read: UPDATEs pile up in the back-end
                display.HandOver(vm.FrontEnd);
                var fb = FrameBuffer.Allocate(vm.Ram, 1024, 1024, VirtioGpuFormat.B8G8R8X8Unorm, scattered: false);
                vm.Driver.SetUpFrameBuffer(1, fb, 0);
                for (int i = 0; i < 6; i++) vm.Driver.Queue(Bytes(vm.Driver.FlushCommand(1, new VirtioGpuRect(0, 0, 1024, 1024))));
                vm.Driver.KickControl();
                Thread.Sleep(300);
                vm.Dispose();
                break;
            }
            default:
                throw new ArgumentOutOfRangeException(nameof(kind));
        }
    }

    [Fact]
    public void Server_FrontEndThatStopsReadingReplies_IsDroppedAfterTheSendTimeoutWhileAnotherIsServed()
    {
        var sendTimeout = TimeSpan.FromSeconds(1);
        using var backend = new InProcessBackend(sendTimeout: sendTimeout);
        AssertServes(backend); // conn 1: warms up, so that serving the next VM takes far less than the timeout
        Assert.True(backend.WaitForConnections(1, Wait));

        // conn 2 sends GET_FEATURES after GET_FEATURES and never reads a reply: the back-end's
        // replies fill the socket buffer and its send blocks.
        using var stuck = VhostUserFrontEnd.Connect(backend.SocketPath);
        var requests = new byte[VhostUserHeader.Length * 50_000];
        for (int i = 0; i < 50_000; i++)
            new VhostUserHeader((uint)VhostUserRequest.GetFeatures, VhostUserHeader.Version, 0).Write(requests.AsSpan(i * VhostUserHeader.Length));
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var sender = new Thread(() =>
        {
            try { stuck.SendRaw(requests); }
            catch (IOException) { } // the back-end dropped us before it read them all
        }) { IsBackground = true };
        sender.Start();
        Assert.True(Poller.WaitReadable(stuck.Socket, 5000), "the back-end never answered"); // it is busy answering

        // Meanwhile another VM is served at once, not after the stuck one has gone.
        AssertServes(backend);
        var served = sw.Elapsed;
        bool stuckStillThere = !backend.Logs.Contains("conn 2: connection closed");
        Assert.True(stuckStillThere && served < sendTimeout,
            $"the second VM was served after {served.TotalMilliseconds:F0} ms, the stuck front-end {(stuckStillThere ? "still" : "no longer")} connected: " +
            $"it must be served at once, while the stuck one waits out its {sendTimeout.TotalMilliseconds:F0} ms send timeout");

        // The stuck one is dropped once a reply has waited the send timeout (not much later).
        Assert.True(ProcessResources.WaitUntil(() => backend.Logs.Contains("conn 2: connection closed"), Wait), "the stuck front-end was never dropped");
        var dropped = sw.Elapsed;
        Assert.InRange(dropped, sendTimeout * 0.9, sendTimeout + TimeSpan.FromSeconds(3));
        Assert.True(backend.Logs.Contains("conn 2: connection error while answering GetFeatures"), "no log line says why conn 2 was dropped");
        Assert.True(sender.Join(Wait));
        AssertServes(backend); // and the server goes on
    }

    private static byte[] Bytes<T>(T value) where T : unmanaged =>
        System.Runtime.InteropServices.MemoryMarshal.AsBytes(new ReadOnlySpan<T>(in value)).ToArray();

    [Fact]
    public void Server_AfterManyConnections_FdsAndMemfdMappingsReturnToTheBaseline()
    {
        using var backend = new InProcessBackend();
        // One connection first, so that whatever the runtime sets up once is in the baseline.
        AssertServes(backend);
        Assert.True(backend.WaitForConnections(1, Wait));
        int fds = ProcessResources.OpenFds();
        int guestRam = ProcessResources.MemfdMappings("vgh-guest-ram");
        int resources = ProcessResources.MemfdMappings("-res");

        var kinds = new[] { "clean", "mid-drawing", "half-payload", "query-waiting-for-display", "display-not-reading", "bad-version", "clean", "mid-drawing" };
        for (int i = 0; i < kinds.Length; i++)
        {
            if (kinds[i] == "clean")
            {
                AssertServes(backend);
            }
            else
            {
                Disconnect(backend, kinds[i]);
            }
            Assert.True(backend.WaitForConnections(i + 2, Wait), $"connection {i + 2} ({kinds[i]}) did not end");
        }

        ProcessResources.AssertFdsBackTo(fds, $"after {kinds.Length} connections");
        Assert.Equal(guestRam, ProcessResources.MemfdMappings("vgh-guest-ram"));
        Assert.Equal(resources, ProcessResources.MemfdMappings("-res"));
        Assert.Equal(0, guestRam); // nothing of the first connection stayed either
        Assert.Equal(0, resources);
    }
}
