using System.Buffers.Binary;
using VirtioGpuHost.Device;
using VirtioGpuHost.Device.Wire;
using VirtioGpuHost.FrontEnd;
using VirtioGpuHost.Interop;
using VirtioGpuHost.VhostUser.Display;
using VirtioGpuHost.VhostUser.Wire;

namespace VirtioGpuHost.UnitTests.VhostUser;

/// <summary>
/// A display socket we close (GPU_SET_SOCKET replaced it) while a spliced UPDATE is still unread
/// in it: closing our end does not take the data back, so the display may still read pixels
/// straight from the resource's pages. Those pages must stay referenced (no transfer writes into
/// them, nothing unmaps them) until the display has read them or hung up, and then be freed.
/// The lingering sockets are process-wide, hence the collection that runs alone.
/// </summary>
[Collection(ProcessWideCollection.Name)]
public class LingeringDisplaySocketTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(10);
    private const uint W = 640, H = 400; // 1 MB of pixels: above the splice threshold
    private const uint Before = 0xFF3366CC, After = 0xFFCC9900;
    private const int UpdateBytes = VhostUserHeader.Length + 20 + (int)(W * H * 4);

    private static bool Shows(DisplayServer d, uint argb) =>
        d.Snapshot(0) is { } s && s.Width == W && s.Height == H && s.Pixels.All(p => (p & 0xFFFFFF) == (argb & 0xFFFFFF));

    [Theory]
    [InlineData(true)]  // the old display reads everything after we closed our end
    [InlineData(false)] // it hangs up without reading
    public void DisplayClosedByUs_WithASplicedUpdateUnread_PixelsStayIntactUntilReadAndAreThenFreed(bool displayReads)
    {
        Assert.True(ProcessResources.WaitUntil(() => DisplaySocketClient.LingeringSocketCount == 0, Wait), "sockets of earlier tests still linger");
        using var rig = ConnectionRig.StartGpu();
        rig.Negotiate();
        using var vm = new RawVm(rig.FrontEnd, 32UL << 20);
        vm.Start();
        DisplaySocketClient? client = null;
        rig.Gpu.DisplayAttached += d => client = d.Client;
        var old = new ScriptedDisplay();
        try
        {
            old.HandOver(rig.FrontEnd);
            old.Negotiate();
            var fb = FrameBuffer.Allocate(vm.Ram, W, H, VirtioGpuFormat.B8G8R8X8Unorm, scattered: false);
            vm.Driver.SetUpFrameBuffer(1, fb, 0);
            old.ReadUntil(GpuDisplayRequest.Update); // SET_SCANOUT's whole (blank) scanout
            var first = rig.OnLoop(() => client!);

            // The guest's frame goes out spliced; the display leaves (some of) it unread.
            fb.Fill((x, y) => Before);
            vm.Driver.Present(1, fb, new VirtioGpuRect(0, 0, W, H));
            var consumed = ReadUntilHandedToTheKernel(rig, first, old.Socket);
            Assert.True(consumed.Count < UpdateBytes, "the display read the whole UPDATE: nothing was left unread");
            Assert.True(first.SplicedBytes >= 2L * W * H * 4, "the UPDATE was not spliced by reference");

            // QEMU hands over a new display socket (VM resumed): we close the old one.
            var (mine, theirs) = UnixSocket.CreatePair();
            using var fresh = new DisplayServer(mine, new DisplayServerOptions { Width = W, Height = H });
            using (theirs) rig.FrontEnd.GpuSetSocket(theirs);
            Assert.True(fresh.WaitFor(d => Shows(d, Before), Wait), "the new display never showed the frame");
            Assert.True(rig.OnLoop(() => first.IsClosed));
            var second = rig.OnLoop(() => client!);
            Assert.NotSame(first, second);
            Assert.True(ProcessResources.WaitUntil(() => rig.OnLoop(() => second.UpdatesInFlight) == 0, Wait)); // only the old socket holds memory now
            int lingering = DisplaySocketClient.LingeringSocketCount;

            // The guest draws the next frame into the same resource, then frees it: neither may
            // touch the pages the old display has yet to read.
            fb.Fill((x, y) => After);
            vm.Driver.Present(1, fb, new VirtioGpuRect(0, 0, W, H));
            Assert.True(fresh.WaitFor(d => Shows(d, After), Wait), "the new display never showed the next frame");
            Assert.Equal(VirtioGpuCtrlType.OkNoData, vm.Driver.Unref(1).Type);
            string memfd = $"vgh-{rig.Name}-res1";
            int mappedWhileUnread = ProcessResources.MemfdMappings(memfd);

            if (displayReads)
            {
                var rest = ReadToEof(old.Socket);
                AssertOneWholeUpdate([.. consumed, .. rest], Before);
            }
            else
            {
                old.Dispose();
            }
            Assert.Equal(1, lingering);
            Assert.True(mappedWhileUnread >= 1, "the unread pixels' memory was unmapped while the display could still read it");
            Assert.True(ProcessResources.WaitUntil(() => DisplaySocketClient.LingeringSocketCount == 0, Wait), "the closed display socket is never let go");
            Assert.True(ProcessResources.WaitUntil(() => ProcessResources.MemfdMappings(memfd) == 0, Wait), "the resource's memory is never freed");
            Assert.Equal(0, rig.OnLoop(() => rig.Gpu.Gpu.InPlaceWritesWhileShared));
            rig.AssertAlive();
        }
        finally
        {
            old.Dispose();
        }
    }

    /// <summary>
    /// Reads nothing while the back-end can hand the whole UPDATE to the kernel (a socket buffer
    /// that holds it), else only as much as it needs for that; returns what was read.
    /// </summary>
    private static List<byte> ReadUntilHandedToTheKernel(ConnectionRig rig, DisplaySocketClient client, FdHandle socket)
    {
        var consumed = new List<byte>();
        var buf = new byte[64 << 10];
        bool Handed() => rig.OnLoop(() => client.QueuedBytes == 0 && client.UpdatesInFlight > 0);
        var deadline = DateTime.UtcNow + Wait;
        while (!ProcessResources.WaitUntil(Handed, TimeSpan.FromMilliseconds(20)))
        {
            Assert.True(DateTime.UtcNow < deadline, "the back-end never handed the UPDATE to the kernel");
            if (!Poller.WaitReadable(socket, 100)) continue;
            Assert.Equal(IoStatus.Ok, UnixSocket.Receive(socket, buf, null, out int n));
            consumed.AddRange(buf.AsSpan(0, n));
        }
        return consumed;
    }

    private static List<byte> ReadToEof(FdHandle socket)
    {
        var all = new List<byte>();
        var buf = new byte[64 << 10];
        var deadline = DateTime.UtcNow + Wait;
        while (DateTime.UtcNow < deadline)
        {
            if (!Poller.WaitReadable(socket, 100)) continue;
            var st = UnixSocket.Receive(socket, buf, null, out int n);
            if (st == IoStatus.Closed) return all;
            Assert.Equal(IoStatus.Ok, st);
            all.AddRange(buf.AsSpan(0, n));
        }
        Assert.Fail("the closed display socket never reached EOF");
        return all;
    }

    private static void AssertOneWholeUpdate(byte[] bytes, uint argb)
    {
        Assert.Equal(UpdateBytes, bytes.Length);
        var h = VhostUserHeader.Read(bytes);
        Assert.Equal(((uint)GpuDisplayRequest.Update, (uint)(UpdateBytes - VhostUserHeader.Length)), (h.Request, h.Size));
        var rect = bytes.AsSpan(VhostUserHeader.Length, 20);
        Assert.Equal((0u, 0u, 0u, W, H), (BinaryPrimitives.ReadUInt32LittleEndian(rect), BinaryPrimitives.ReadUInt32LittleEndian(rect[4..]),
            BinaryPrimitives.ReadUInt32LittleEndian(rect[8..]), BinaryPrimitives.ReadUInt32LittleEndian(rect[12..]), BinaryPrimitives.ReadUInt32LittleEndian(rect[16..])));
        var pixels = bytes.AsSpan(VhostUserHeader.Length + 20);
        int wrong = 0, firstWrong = -1;
        for (int i = 0; i < pixels.Length; i += 4)
        {
            uint xrgb = PixelFormats.ReadArgb(VirtioGpuFormat.B8G8R8X8Unorm, pixels.Slice(i, 4)) & 0xFFFFFF;
            if (xrgb != (argb & 0xFFFFFF) && wrong++ == 0) firstWrong = i / 4;
        }
        Assert.True(wrong == 0, $"{wrong} of {W * H} pixels the display read after our close are not the frame that was sent (first at pixel {firstWrong})");
    }
}
