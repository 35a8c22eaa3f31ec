using VirtioGpuHost.Device;
using VirtioGpuHost.Device.Wire;
using VirtioGpuHost.FrontEnd;
using VirtioGpuHost.Interop;
using VirtioGpuHost.VhostUser.Display;

namespace VirtioGpuHost.UnitTests.VhostUser;

/// <summary>
/// One resource in a format the display socket cannot take as is (R8G8B8A8: every UPDATE is a
/// converted copy) shown on all 16 scanouts: one RESOURCE_FLUSH is 16 UPDATEs. While the display
/// lags they wait, merged per scanout, instead of piling up converted copies; every scanout still
/// ends up showing exactly its part of the resource. Measures this process's memory, hence the
/// collection that runs alone.
/// </summary>
[Collection(ProcessWideCollection.Name)]
public class MultiScanoutFlushTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(20);
    private const uint Tile = 256, Side = 4 * Tile; // a 4x4 grid of 256x256 tiles: one per scanout, 256 KiB per UPDATE

    private static VirtioGpuRect TileOf(uint scanout) => new(scanout % 4 * Tile, scanout / 4 * Tile, Tile, Tile);

    [Fact]
    public void Flush_R8G8B8A8ResourceOnSixteenScanouts_EveryScanoutShowsItsPartAndMemoryStaysBounded()
    {
        using var rig = ConnectionRig.StartGpu();
        rig.Negotiate();
        using var vm = new RawVm(rig.FrontEnd, 64UL << 20);
        vm.Start();
        DisplaySocketClient? client = null;
        rig.Gpu.DisplayAttached += d => client = d.Client;
        var (mine, theirs) = UnixSocket.CreatePair();
        using var display = new DisplayServer(mine, new DisplayServerOptions { MaxOutputs = 16, EnabledHeads = 16, Width = Tile, Height = Tile });
        using (theirs) rig.FrontEnd.GpuSetSocket(theirs);
        Assert.True(display.WaitFor(d => d.AgreedFeatures is not null, Wait), "the back-end never negotiated with the display");
        var c = rig.OnLoop(() => client!);

        const VirtioGpuFormat Format = VirtioGpuFormat.R8G8B8A8Unorm;
        var fb = FrameBuffer.Allocate(vm.Ram, Side, Side, Format, scattered: true);
        var model = new uint[Side * Side]; // what the guest drew, 0xAARRGGBB
        fb.Fill((x, y) => model[y * Side + x] = 0xFF000000u | (x * 7 & 0xFF) << 16 | (y * 3 & 0xFF) << 8 | ((x ^ y) & 0xFF));
        vm.Driver.SetUpFrameBuffer(1, fb);
        vm.Driver.TransferToHost2D(1, new VirtioGpuRect(0, 0, Side, Side), 0);
        for (uint s = 0; s < 16; s++) Assert.Equal(VirtioGpuCtrlType.OkNoData, vm.Driver.SetScanout(s, 1, TileOf(s)).Type);

        const int Flushes = 150, Settled = 20;
        int worstInFlight = 0;
        long worstQueued = 0, rssSettled = 0;
        for (int i = 0; i < Flushes; i++)
        {
            // A small change in every tile, then the whole resource flushed: 16 UPDATEs of 256 KiB.
            for (uint s = 0; s < 16; s++)
            {
                var t = TileOf(s);
                uint x0 = t.X + (uint)i % 16 * 16, y0 = t.Y + (uint)i / 16 % 16 * 16;
                uint argb = 0xFF000000u | (uint)(i * 0x10305 + s * 0x50301) & 0xFFFFFF;
                fb.FillRect(x0, y0, 16, 16, argb);
                for (uint y = y0; y < y0 + 16; y++) Array.Fill(model, argb, (int)(y * Side + x0), 16);
            }
            Assert.Equal(VirtioGpuCtrlType.OkNoData, vm.Driver.TransferToHost2D(1, new VirtioGpuRect(0, 0, Side, Side), 0).Type);
            Assert.Equal(VirtioGpuCtrlType.OkNoData, vm.Driver.Flush(1, new VirtioGpuRect(0, 0, Side, Side)).Type);
            var (inFlight, queued) = rig.OnLoop(() => (c.UpdatesInFlight, c.QueuedBytes));
            worstInFlight = Math.Max(worstInFlight, inFlight);
            worstQueued = Math.Max(worstQueued, queued);
            if (i == Settled) rssSettled = Rss();
        }

        for (uint s = 0; s < 16; s++)
        {
            string diff = "";
            uint scanout = s;
            bool same = display.WaitFor(d => (diff = Compare(d, scanout, model)) == "", Wait);
            Assert.True(same, $"scanout {s}: {diff}");
        }
        Assert.Null(display.Error);
        // A flush never put 16 converted frames in flight at once: the display's lag stays within its limits.
        Assert.InRange(worstInFlight, 1, DisplaySocketClient.MaxUpdatesInFlight);
        Assert.InRange(worstQueued, 0, DisplaySocketClient.BackpressureBytes);
        // And nothing grows with the number of flushes (each one converts 4 MiB of pixels).
        long growth = Rss() - rssSettled;
        Assert.True(growth < 128L << 20, $"resident memory grew by {growth >> 20} MiB over {Flushes - Settled} flushes");
        rig.AssertAlive();
    }

    private static long Rss()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        return Environment.WorkingSet;
    }

    private static string Compare(DisplayServer d, uint scanout, uint[] model)
    {
        if (d.Snapshot(scanout) is not { } snap) return "disabled on the display";
        var (w, h, px) = snap;
        if ((w, h) != (Tile, Tile)) return $"{w}x{h}, expected {Tile}x{Tile}";
        var t = TileOf(scanout);
        int bad = 0;
        string first = "";
        for (uint y = 0; y < h; y++)
            for (uint x = 0; x < w; x++)
            {
                uint want = model[(t.Y + y) * Side + t.X + x] & 0xFFFFFF, got = px[y * w + x] & 0xFFFFFF;
                if (want != got && bad++ == 0) first = $"({x},{y}): want {want:x6} got {got:x6}";
            }
        return bad == 0 ? "" : $"{bad} of {w * h} pixels differ; first at {first}";
    }
}
