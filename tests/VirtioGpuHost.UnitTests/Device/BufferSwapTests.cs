using VirtioGpuHost.Device;
using VirtioGpuHost.Device.Wire;
using VirtioGpuHost.FrontEnd;
using VirtioGpuHost.GuestMemory;
using VirtioGpuHost.TestKit;

namespace VirtioGpuHost.UnitTests.Device;

/// <summary>
/// Double buffering of 2D resources: a transfer writes the resource's spare buffer and publishes
/// it, so the published pixels (what a compositor takes from its own thread) are never written
/// while published and taking them never waits for a copy. Partial transfers keep the spare
/// current from the rects it lacks. Without a spare (budget, or both buffers held) the published
/// pixels are written in place.
/// </summary>
public class BufferSwapTests
{
    private const uint W = 64, H = 32;

    private static (DeviceRig Rig, FrameBuffer Fb) Setup(ulong maxHostMemory = 256UL << 20)
    {
        var rig = DeviceRig.Create(new GpuDeviceOptions { MaxHostMemory = maxHostMemory });
        var fb = FrameBuffer.Allocate(rig.Ram, W, H, VirtioGpuFormat.B8G8R8X8Unorm, scattered: true);
        fb.Fill((x, y) => 0xFF0000AA);
        rig.Driver.SetUpFrameBuffer(1, fb, 0);
        rig.Driver.Present(1, fb, new VirtioGpuRect(0, 0, W, H));
        return (rig, fb);
    }

    private static uint Pixel(MemoryBlock m, uint x, uint y) => BitConverter.ToUInt32(m.AsSpan((y * W + x) * 4UL, 4));

    [Fact]
    public void WholeTransfer_WhileDisplayHoldsPixels_PublishesTheSpareAndLeavesHeldPixelsIntact()
    {
        var (rig, fb) = Setup();
        using var _ = rig;
        rig.Display.HoldSurfaceMemory = true;
        rig.Driver.Flush(1, new VirtioGpuRect(0, 0, W, H)); // the display now reads the published buffer
        var held = rig.Device.Res2D(1).Memory;
        long swaps = rig.Device.BufferSwaps;
        fb.Fill((x, y) => 0xFF00BB00);
        Assert.Equal(VirtioGpuCtrlType.OkNoData, rig.Driver.TransferToHost2D(1, new VirtioGpuRect(0, 0, W, H), 0).Type);
        Assert.Equal(swaps + 1, rig.Device.BufferSwaps);
        Assert.Equal(0, rig.Device.InPlaceWritesWhileShared);
        var res = rig.Device.Res2D(1);
        Assert.NotSame(held, res.Memory);
        Assert.Equal(0xFF0000AAu, Pixel(held, 0, 0));       // what the display reads: untouched
        Assert.Equal(0xFF00BB00u, Pixel(res.Memory, 0, 0)); // the new pixels
        // pixels + spare + overhead + the framebuffer's scatter list (one entry per page)
        ulong list = (ulong)(W * H * 4 / 4096) * GpuDevice.BackingEntryCostBytes;
        Assert.Equal(2UL * W * H * 4 + GpuDevice.ResourceOverheadBytes + list, rig.Device.HostMemoryInUse);
        rig.Display.ReleaseHeld();
    }

    [Fact]
    public void PartialTransfer_WhileDisplayHoldsPixels_CarriesTheRestOver()
    {
        var (rig, fb) = Setup();
        using var _ = rig;
        rig.Display.HoldSurfaceMemory = true;
        rig.Driver.Flush(1, new VirtioGpuRect(0, 0, W, H));
        long swaps = rig.Device.BufferSwaps;
        fb.FillRect(8, 4, 16, 8, 0xFFCC0000);
        rig.Driver.Present(1, fb, new VirtioGpuRect(8, 4, 16, 8));
        Assert.Equal(swaps + 1, rig.Device.BufferSwaps);
        Assert.Equal(0xFFCC0000u, rig.Display.Pixel(0, 8, 4));   // new rect
        Assert.Equal(0xFF0000AAu, rig.Display.Pixel(0, 0, 0));   // old content carried over
        Assert.Equal(0xFF0000AAu, rig.Display.Pixel(0, 63, 31));
        rig.Display.ReleaseHeld();
    }

    [Fact]
    public void Transfer_NeverWritesThePublishedBuffer_EvenWhenNobodyHoldsIt()
    {
        // A reader may take the published pixels at any moment (the frame thread does not wait
        // for the copy), so the copy goes to the other buffer whether or not someone holds them.
        var (rig, fb) = Setup();
        using var _ = rig;
        var published = rig.Device.Res2D(1).Memory;
        fb.Fill((x, y) => 0xFF123456);
        rig.Driver.TransferToHost2D(1, new VirtioGpuRect(0, 0, W, H), 0);
        var res = rig.Device.Res2D(1);
        Assert.NotSame(published, res.Memory);
        Assert.Equal(0xFF0000AAu, Pixel(published, 5, 5)); // the buffer that was published: not written
        Assert.Equal(0xFF123456u, Pixel(res.Memory, 5, 5));
        Assert.Equal(0, rig.Device.InPlaceWritesWhileShared);
    }

    [Fact]
    public void Transfer_WithNoBudgetForASpare_WritesInPlace()
    {
        // Room for the front buffer, its overhead and scatter list, not for a spare.
        var (rig, fb) = Setup(maxHostMemory: W * H * 4 + GpuDevice.ResourceOverheadBytes + 2 * GpuDevice.BackingEntryCostBytes);
        using var _ = rig;
        Assert.Equal(0, rig.Device.BufferSwaps);
        rig.Display.HoldSurfaceMemory = true;
        rig.Driver.Flush(1, new VirtioGpuRect(0, 0, W, H));
        fb.Fill((x, y) => 0xFF00BB00);
        Assert.Equal(VirtioGpuCtrlType.OkNoData, rig.Driver.TransferToHost2D(1, new VirtioGpuRect(0, 0, W, H), 0).Type);
        Assert.Equal(0, rig.Device.BufferSwaps);
        Assert.Equal(1, rig.Device.InPlaceWritesWhileShared);
        Assert.Equal(0xFF00BB00u, Pixel(rig.Device.Res2D(1).Memory, 0, 0));
        rig.Display.ReleaseHeld();
    }

    [Fact]
    public void Unref_WithSpare_ReturnsAllHostMemory()
    {
        var (rig, fb) = Setup();
        using var _ = rig;
        rig.Display.HoldSurfaceMemory = true;
        rig.Driver.Flush(1, new VirtioGpuRect(0, 0, W, H));
        rig.Driver.TransferToHost2D(1, new VirtioGpuRect(0, 0, W, H), 0);
        rig.Display.ReleaseHeld();
        Assert.Equal(VirtioGpuCtrlType.OkNoData, rig.Driver.Unref(1).Type);
        Assert.Equal(0UL, rig.Device.HostMemoryInUse);
    }

    [Fact]
    public void BothBuffersHeld_WritesInPlace()
    {
        var (rig, fb) = Setup();
        using var _ = rig;
        rig.Display.HoldSurfaceMemory = true;
        rig.Driver.Flush(1, new VirtioGpuRect(0, 0, W, H));           // holds buffer A
        long swaps = rig.Device.BufferSwaps;
        rig.Driver.Present(1, fb, new VirtioGpuRect(0, 0, W, H));     // written to B, B published, the flush holds B
        rig.Driver.TransferToHost2D(1, new VirtioGpuRect(0, 0, W, H), 0); // A and B both held
        Assert.Equal(swaps + 1, rig.Device.BufferSwaps);
        Assert.Equal(1, rig.Device.InPlaceWritesWhileShared);
        rig.Display.ReleaseHeld();
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void RandomPartialTransfers_PublishedPixelsAlwaysEqualTheModel(int seed)
    {
        // Each pixel of the published buffer must be what the guest had there at the last transfer
        // covering it, whichever buffer the transfers went to (spare caught up from its stale rects,
        // in place while both are held, more stale rects than are kept apart).
        var (rig, fb) = Setup();
        using var _ = rig;
        var model = new uint[W * H];
        Array.Fill(model, 0xFF0000AAu);
        var random = new Random(seed);
        var held = new List<VirtioGpuHost.Device.Display.GpuSurface>();
        for (int step = 0; step < 300; step++)
        {
            uint x = (uint)random.Next((int)W), y = (uint)random.Next((int)H);
            uint w = 1 + (uint)random.Next((int)(W - x)), h = 1 + (uint)random.Next((int)(H - y));
            if (random.Next(10) == 0) { x = 0; y = 0; w = W; h = H; }
            uint color = 0xFF000000 | (uint)random.Next(0x1000000);
            fb.Fill((px, py) => 0xFF000000 | (px * 7 + py * 13 + (uint)step * 101) & 0xFFFFFF); // the guest redraws everything...
            fb.FillRect(x, y, w, h, color);                                                        // ...and this rect
            Assert.Equal(VirtioGpuCtrlType.OkNoData, rig.Driver.TransferToHost2D(1, new VirtioGpuRect(x, y, w, h), (ulong)y * fb.Stride + x * 4UL).Type);
            for (uint j = y; j < y + h; j++)
                for (uint i = x; i < x + w; i++)
                    model[j * W + i] = color;
            // Readers come and go: sometimes one holds the published buffer (then both) for a while.
            int r = random.Next(6);
            if (r == 0 && rig.Device.Res2D(1).AcquireCurrent() is { } s) held.Add(s);
            else if (r == 1 && held.Count > 0) { held[0].Memory.Release(); held.RemoveAt(0); }
            var mem = rig.Device.Res2D(1).Memory;
            for (uint j = 0; j < H; j++)
                for (uint i = 0; i < W; i++)
                    if (Pixel(mem, i, j) != model[j * W + i])
                        Assert.Fail($"step {step}: pixel ({i},{j}) is {Pixel(mem, i, j):X8}, expected {model[j * W + i]:X8} (swaps {rig.Device.BufferSwaps}, in place {rig.Device.InPlaceWritesWhileShared})");
        }
        foreach (var s in held) s.Memory.Release();
        Assert.True(rig.Device.BufferSwaps > 30, $"{rig.Device.BufferSwaps} swaps");
        Assert.True(rig.Device.InPlaceWritesWhileShared > 0, "no transfer ran with both buffers held");
    }

    [Fact]
    public void ReaderOnAnotherThread_NeverSeesATransferHalfDone()
    {
        // Whole-frame transfers of one colour each while another thread keeps taking the published
        // pixels: every surface it takes is one colour (the copy went to an unpublished buffer).
        var (rig, fb) = Setup();
        using var _ = rig;
        var res = rig.Device.Res2D(1);
        using var stop = new CancellationTokenSource();
        long taken = 0;
        string? torn = null;
        var reader = new Thread(() =>
        {
            while (!stop.IsCancellationRequested && torn is null)
            {
                if (res.AcquireCurrent() is not { } s) continue;
                try
                {
                    uint first = Pixel(s.Memory, 0, 0);
                    for (uint i = 1; i < W * H; i++)
                        if (Pixel(s.Memory, i % W, i / W) is var p && p != first) { torn = $"pixel {i} is {p:X8}, pixel 0 {first:X8}"; break; }
                    taken++;
                }
                finally { s.Memory.Release(); }
            }
        });
        reader.Start();
        for (uint frame = 0; frame < 2000 && torn is null; frame++)
        {
            uint color = 0xFF000000 | frame * 2654435761u >> 8;
            fb.Fill((x, y) => color);
            Assert.Equal(VirtioGpuCtrlType.OkNoData, rig.Driver.TransferToHost2D(1, new VirtioGpuRect(0, 0, W, H), 0).Type);
        }
        stop.Cancel();
        reader.Join();
        Assert.Null(torn);
        Assert.True(taken > 0);
    }
}
