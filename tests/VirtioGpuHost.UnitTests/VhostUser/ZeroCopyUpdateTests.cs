using System.IO.Hashing;
using VirtioGpuHost.Device;
using VirtioGpuHost.Device.Wire;
using VirtioGpuHost.FrontEnd;
using VirtioGpuHost.TestKit;

namespace VirtioGpuHost.UnitTests.VhostUser;

/// <summary>
/// Large UPDATEs are spliced by reference: the display copies from the resource's own pages.
/// A slow display must still see every frame whole (no mix of two frames), and the back-end
/// must keep the pixels it references until the display has read them.
/// </summary>
public class ZeroCopyUpdateTests
{
    private const uint W = 640, H = 400; // 1 MB per frame: above the splice threshold

    /// <summary>What SET_SCANOUT shows before any transfer: a fresh resource is all zero bytes.</summary>
    private static uint ZeroFrameCrc() => Crc32.HashToUInt32(new byte[W * H * 4]);

    private static uint FrameCrc(uint argb)
    {
        var row = new byte[W * 4];
        var px = new byte[4];
        PixelFormats.WriteArgb(VirtioGpuFormat.B8G8R8X8Unorm, argb, px);
        for (int i = 0; i < W; i++) px.CopyTo(row, i * 4);
        var crc = new Crc32();
        for (int y = 0; y < H; y++) crc.Append(row);
        return crc.GetCurrentHashAsUInt32();
    }

    [Fact]
    public void SlowDisplay_ManyFullFrames_EveryUpdateIsOneWholeFrame()
    {
        using var backend = new InProcessBackend();
        using var vm = GpuVm.Connect(backend.SocketPath, new GpuVmOptions
        {
            Display = new DisplayServerOptions { Width = W, Height = H, HashUpdates = true, UpdateReadDelay = TimeSpan.FromMilliseconds(40) },
        });
        Assert.True(vm.WaitForDisplayReady(TimeSpan.FromSeconds(10)));
        var fb = FrameBuffer.Allocate(vm.Ram, W, H, VirtioGpuFormat.B8G8R8X8Unorm, scattered: true);
        fb.Fill((x, y) => 0xFF000000);
        vm.Driver.SetUpFrameBuffer(1, fb, 0);
        var colours = Enumerable.Range(1, 8).Select(i => 0xFF000000u | (uint)(i * 0x151515)).ToArray();
        var valid = colours.Select(FrameCrc).Append(ZeroFrameCrc()).ToHashSet();
        foreach (var c in colours)
        {
            fb.Fill((x, y) => c);
            vm.Driver.Present(1, fb, new VirtioGpuRect(0, 0, W, H));
        }
        uint last = FrameCrc(colours[^1]);
        Assert.True(vm.Display!.WaitFor(d => d.Updates.LastOrDefault()?.Crc == last, TimeSpan.FromSeconds(20)), "the last frame never arrived whole");
        foreach (var u in vm.Display.Updates)
            Assert.True(u.Crc is uint crc && valid.Contains(crc), $"UPDATE {u.Width}x{u.Height} is not one whole frame (torn)");
        var gpu = backend.LastDevice.Gpu;
        var client = backend.LastDevice.DisplaySocket!.Client;
        Assert.True(client.SplicedBytes > 0, "no UPDATE was spliced");
        Assert.True(gpu.BufferSwaps > 0, "the slow display never made a transfer switch buffers");
        Assert.Equal(0, gpu.InPlaceWritesWhileShared);
    }

    [Fact]
    public void SlowDisplay_PartialTransferDuringInFlightFrame_ShowsOldPixelsAroundTheRect()
    {
        using var backend = new InProcessBackend();
        using var vm = GpuVm.Connect(backend.SocketPath, new GpuVmOptions
        {
            Display = new DisplayServerOptions { Width = W, Height = H, HashUpdates = true, UpdateReadDelay = TimeSpan.FromMilliseconds(20) },
        });
        Assert.True(vm.WaitForDisplayReady(TimeSpan.FromSeconds(10)));
        var fb = FrameBuffer.Allocate(vm.Ram, W, H, VirtioGpuFormat.B8G8R8X8Unorm, scattered: false);
        fb.Fill((x, y) => 0xFF3060A0);
        vm.Driver.SetUpFrameBuffer(1, fb, 0);
        vm.Driver.Present(1, fb, new VirtioGpuRect(0, 0, W, H)); // in flight for a while
        fb.FillRect(100, 100, 32, 32, 0xFFFFFF00);
        vm.Driver.Present(1, fb, new VirtioGpuRect(100, 100, 32, 32));
        vm.Driver.Flush(1, new VirtioGpuRect(0, 0, W, H)); // and the whole scanout again
        uint whole = FrameCrc(0xFF3060A0);
        Assert.True(vm.Display!.WaitFor(d => d.Updates.Count(u => u.Width == W) >= 3 && d.Updates.Any(u => u.Width == 32), TimeSpan.FromSeconds(20)));
        var fulls = vm.Display.Updates.Where(u => u.Width == W).ToList();
        Assert.Equal(ZeroFrameCrc(), fulls[0].Crc); // SET_SCANOUT's frame (nothing transferred yet)
        Assert.Equal(whole, fulls[1].Crc); // the first present: not touched by the later rect
        Assert.NotEqual(whole, fulls[^1].Crc); // the last full flush has the rect
        BackendContractTestsHelpers.WaitConsole(vm, fb);
    }
}

internal static class BackendContractTestsHelpers
{
    /// <summary>Waits until the display's console equals the framebuffer (XRGB, ignoring X).</summary>
    public static void WaitConsole(GpuVm vm, FrameBuffer fb)
    {
        bool same = vm.Display!.WaitFor(d =>
        {
            var s = d.Snapshot(0);
            if (s is null) return false;
            for (uint y = 0; y < fb.Height; y++)
                for (uint x = 0; x < fb.Width; x++)
                    if (((s.Value.Pixels[y * s.Value.Width + x] ^ fb.ReadPixelRaw(x, y)) & 0xFFFFFF) != 0) return false;
            return true;
        }, TimeSpan.FromSeconds(10));
        Assert.True(same, "the console never showed the framebuffer");
    }
}

/// <summary>A display that reads slower than the guest draws lags a bounded number of frames.</summary>
public class DisplayLagTests
{
    [Fact]
    public async Task SlowDisplay_SmallUpdates_GuestIsHeldWithinTheInFlightLimit()
    {
        using var backend = new InProcessBackend();
        using var vm = GpuVm.Connect(backend.SocketPath, new GpuVmOptions
        {
            Display = new DisplayServerOptions { Width = 128, Height = 128, UpdateReadDelay = TimeSpan.FromMilliseconds(40) },
        });
        Assert.True(vm.WaitForDisplayReady(TimeSpan.FromSeconds(10)));
        var fb = FrameBuffer.Allocate(vm.Ram, 128, 128, VirtioGpuFormat.B8G8R8X8Unorm, scattered: false);
        vm.Driver.SetUpFrameBuffer(1, fb, 0);
        Assert.True(vm.Display!.WaitFor(d => d.UpdateCount >= 1, TimeSpan.FromSeconds(5))); // SET_SCANOUT's
        int flushed = 0, worstLag = 0;
        var guest = Task.Run(() =>
        {
            for (int i = 0; i < 30; i++)
            {
                fb.FillRect(0, 0, 16, 16, 0xFF000000u | (uint)i);
                vm.Driver.Present(1, fb, new VirtioGpuRect(0, 0, 16, 16));
                Interlocked.Increment(ref flushed);
                int lag = flushed - (int)(vm.Display.UpdateCount - 1);
                if (lag > worstLag) worstLag = lag;
            }
        });
        await guest.WaitAsync(TimeSpan.FromSeconds(30), TestContext.Current.CancellationToken);
        // Every completed flush's UPDATE was sent; at most the limit of them (plus the one just
        // completed) can be unread by the display at any moment.
        Assert.Equal(8, VirtioGpuHost.VhostUser.Display.DisplaySocketClient.MaxUpdatesInFlight);
        Assert.InRange(worstLag, 1, 8 + 1);
        Assert.True(vm.Display.WaitFor(d => d.UpdateCount >= 31, TimeSpan.FromSeconds(10)));
    }
}
