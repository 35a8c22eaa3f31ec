using VirtioGpuHost.Device;
using VirtioGpuHost.Device.Wire;
using VirtioGpuHost.FrontEnd;
using VirtioGpuHost.TestKit;

namespace VirtioGpuHost.UnitTests.Device;

/// <summary>
/// A display may still read a resource's pixels after a flush (spliced by reference). A
/// transfer then must not write into them: it switches to the resource's spare buffer.
/// </summary>
public class BufferSwapTests
{
    private static (DeviceRig Rig, FrameBuffer Fb) Setup(ulong maxHostMemory = 256UL << 20)
    {
        var rig = DeviceRig.Create(new GpuDeviceOptions { MaxHostMemory = maxHostMemory });
        var fb = FrameBuffer.Allocate(rig.Ram, 64, 32, VirtioGpuFormat.B8G8R8X8Unorm, scattered: true);
        fb.Fill((x, y) => 0xFF0000AA);
        rig.Driver.SetUpFrameBuffer(1, fb, 0);
        rig.Driver.Present(1, fb, new VirtioGpuRect(0, 0, 64, 32));
        return (rig, fb);
    }

    [Fact]
    public void WholeTransfer_WhileDisplayHoldsPixels_SwapsAndLeavesHeldPixelsIntact()
    {
        var (rig, fb) = Setup();
        using var _ = rig;
        rig.Display.HoldSurfaceMemory = true;
        rig.Driver.Flush(1, new VirtioGpuRect(0, 0, 64, 32)); // the display now reads the front buffer
        var held = rig.Device.Res2D(1).Memory;
        fb.Fill((x, y) => 0xFF00BB00);
        Assert.Equal(VirtioGpuCtrlType.OkNoData, rig.Driver.TransferToHost2D(1, new VirtioGpuRect(0, 0, 64, 32), 0).Type);
        Assert.Equal(1, rig.Device.BufferSwaps);
        var res = rig.Device.Res2D(1);
        Assert.NotSame(held, res.Memory);
        Assert.Equal(0xFF0000AAu, BitConverter.ToUInt32(held.AsSpan(0, 4)));     // what the display reads: untouched
        Assert.Equal(0xFF00BB00u, BitConverter.ToUInt32(res.Memory.AsSpan(0, 4))); // the new pixels
        // pixels + spare + overhead + the framebuffer's scatter list (one entry per page)
        ulong list = (ulong)(64 * 32 * 4 / 4096) * GpuDevice.BackingEntryCostBytes;
        Assert.Equal(2UL * 64 * 32 * 4 + GpuDevice.ResourceOverheadBytes + list, rig.Device.HostMemoryInUse);
        rig.Display.ReleaseHeld();
    }

    [Fact]
    public void PartialTransfer_WhileDisplayHoldsPixels_CopiesTheRestIntoTheSpare()
    {
        var (rig, fb) = Setup();
        using var _ = rig;
        rig.Display.HoldSurfaceMemory = true;
        rig.Driver.Flush(1, new VirtioGpuRect(0, 0, 64, 32));
        fb.FillRect(8, 4, 16, 8, 0xFFCC0000);
        rig.Driver.Present(1, fb, new VirtioGpuRect(8, 4, 16, 8));
        Assert.Equal(1, rig.Device.BufferSwaps);
        Assert.Equal(0xFFCC0000u, rig.Display.Pixel(0, 8, 4));   // new rect
        Assert.Equal(0xFF0000AAu, rig.Display.Pixel(0, 0, 0));   // old content carried over
        Assert.Equal(0xFF0000AAu, rig.Display.Pixel(0, 63, 31));
        rig.Display.ReleaseHeld();
    }

    [Fact]
    public void Transfer_AfterDisplayReleased_WritesInPlaceWithoutSwap()
    {
        var (rig, fb) = Setup();
        using var _ = rig;
        var front = rig.Device.Res2D(1).Memory;
        fb.Fill((x, y) => 0xFF123456);
        rig.Driver.TransferToHost2D(1, new VirtioGpuRect(0, 0, 64, 32), 0);
        Assert.Equal(0, rig.Device.BufferSwaps);
        Assert.Same(front, rig.Device.Res2D(1).Memory);
    }

    [Fact]
    public void Transfer_WhileHeldAndNoBudgetForASpare_WritesInPlace()
    {
        // Room for the front buffer, its overhead and scatter list, not for a spare.
        var (rig, fb) = Setup(maxHostMemory: 64 * 32 * 4 + GpuDevice.ResourceOverheadBytes + 2 * GpuDevice.BackingEntryCostBytes);
        using var _ = rig;
        rig.Display.HoldSurfaceMemory = true;
        rig.Driver.Flush(1, new VirtioGpuRect(0, 0, 64, 32));
        Assert.Equal(VirtioGpuCtrlType.OkNoData, rig.Driver.TransferToHost2D(1, new VirtioGpuRect(0, 0, 64, 32), 0).Type);
        Assert.Equal(0, rig.Device.BufferSwaps);
        Assert.Equal(1, rig.Device.InPlaceWritesWhileShared);
        rig.Display.ReleaseHeld();
    }

    [Fact]
    public void Unref_WithSpare_ReturnsAllHostMemory()
    {
        var (rig, fb) = Setup();
        using var _ = rig;
        rig.Display.HoldSurfaceMemory = true;
        rig.Driver.Flush(1, new VirtioGpuRect(0, 0, 64, 32));
        rig.Driver.TransferToHost2D(1, new VirtioGpuRect(0, 0, 64, 32), 0);
        rig.Display.ReleaseHeld();
        Assert.Equal(VirtioGpuCtrlType.OkNoData, rig.Driver.Unref(1).Type);
        Assert.Equal(0UL, rig.Device.HostMemoryInUse);
    }

    [Fact]
    public void SpareStillHeld_SecondSwapRefused_WritesInPlace()
    {
        var (rig, fb) = Setup();
        using var _ = rig;
        rig.Display.HoldSurfaceMemory = true;
        rig.Driver.Flush(1, new VirtioGpuRect(0, 0, 64, 32));           // holds buffer A
        rig.Driver.Present(1, fb, new VirtioGpuRect(0, 0, 64, 32));     // swap to B, flush holds B
        rig.Driver.TransferToHost2D(1, new VirtioGpuRect(0, 0, 64, 32), 0); // A and B both held
        Assert.Equal(1, rig.Device.BufferSwaps);
        Assert.Equal(1, rig.Device.InPlaceWritesWhileShared);
        rig.Display.ReleaseHeld();
    }
}
