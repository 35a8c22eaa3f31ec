using VirtioGpuHost.Device.Wire;
using VirtioGpuHost.FrontEnd;
using VirtioGpuHost.GuestMemory;
using VirtioGpuHost.TestKit;
using static VirtioGpuHost.UnitTests.Device.DeviceTestHelpers;

namespace VirtioGpuHost.UnitTests.Device;

/// <summary>TRANSFER_TO_HOST_2D: what lands in the resource's host memory, byte for byte, and every error path.</summary>
public class TransferTests
{
    /// <summary>
    /// The host bytes a transfer must produce (QEMU's and the spec's rule): row h of the rect
    /// comes from backing offset + stride*h and lands at (rect.y + h)*stride + rect.x*4.
    /// </summary>
    private static void ApplyTransfer(byte[] host, byte[] backing, uint stride, VirtioGpuRect rect, ulong offset)
    {
        for (uint h = 0; h < rect.Height; h++)
        {
            long src = (long)offset + stride * h;
            long dst = (long)(rect.Y + h) * stride + rect.X * 4L;
            Array.Copy(backing, src, host, dst, rect.Width * 4);
        }
    }

    private static (DeviceRig Rig, FrameBuffer Fb, byte[] Guest) Setup(uint w, uint h, bool scattered, int seed = 1)
    {
        var rig = DeviceRig.Create(ramSize: 64UL << 20);
        var fb = rig.NewFrameBuffer(1, w, h, scattered: scattered);
        var guest = RandomBytes((int)fb.Length, seed);
        fb.WriteFrame(guest);
        return (rig, fb, guest);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Transfer_FullFrame_HostBytesEqualGuestBytes(bool scattered)
    {
        var (rig, fb, guest) = Setup(301, 97, scattered);
        using var _ = rig;
        rig.Driver.TransferToHost2D(1, new VirtioGpuRect(0, 0, fb.Width, fb.Height), 0).Is(VirtioGpuCtrlType.OkNoData);
        Assert.Equal(guest, rig.HostBytes(1));
        Assert.Equal(fb.Length, rig.Device.BytesTransferred);
        rig.AssertNoWarnings();
    }

    public static TheoryData<bool, uint, uint, uint, uint> PartialRects => new()
    {
        { false, 5, 7, 20, 9 },
        { true, 5, 7, 20, 9 },
        { true, 0, 0, 1, 1 },
        { true, 300, 96, 1, 1 },        // last pixel
        { true, 250, 10, 51, 80 },      // right edge, rows crossing pages
        { false, 0, 40, 301, 3 },       // full-width rows (contiguous path) in the middle
        { true, 0, 40, 301, 3 },
        { true, 1, 0, 300, 97 },        // all but the first column
    };

    [Theory]
    [MemberData(nameof(PartialRects))]
    public void Transfer_PartialRectWithLinuxOffset_CopiesOnlyTheRect(bool scattered, uint x, uint y, uint w, uint h)
    {
        var (rig, fb, guest) = Setup(301, 97, scattered);
        using var _ = rig;
        var rect = new VirtioGpuRect(x, y, w, h);
        ulong offset = (ulong)y * fb.Stride + x * 4UL; // what the Linux driver sends
        rig.Driver.TransferToHost2D(1, rect, offset).Is(VirtioGpuCtrlType.OkNoData);
        var expected = new byte[fb.Length];
        ApplyTransfer(expected, guest, fb.Stride, rect, offset);
        Assert.Equal(expected, rig.HostBytes(1));
    }

    [Theory]
    [InlineData(false, 0UL)]
    [InlineData(true, 0UL)]
    [InlineData(true, 4UL)]
    [InlineData(true, 4093UL)]
    public void Transfer_OffsetIndependentOfRect_RowHReadAtOffsetPlusStrideTimesH(bool scattered, ulong offset)
    {
        // The device must not derive the source from the rect: row h comes from offset + stride*h.
        var (rig, fb, guest) = Setup(64, 48, scattered);
        using var _ = rig;
        var rect = new VirtioGpuRect(10, 20, 7, 5);
        rig.Driver.TransferToHost2D(1, rect, offset).Is(VirtioGpuCtrlType.OkNoData);
        var host = rig.HostBytes(1);
        for (uint row = 0; row < rect.Height; row++)
        {
            var want = guest.AsSpan((int)(offset + fb.Stride * row), (int)rect.Width * 4).ToArray();
            var got = host.AsSpan((int)((rect.Y + row) * fb.Stride + rect.X * 4), (int)rect.Width * 4).ToArray();
            Assert.Equal(want, got);
        }
        var expected = new byte[fb.Length];
        ApplyTransfer(expected, guest, fb.Stride, rect, offset);
        Assert.Equal(expected, host);
    }

    [Fact]
    public void Transfer_Twice_SecondOverwritesOnlyItsRect()
    {
        var (rig, fb, guest) = Setup(32, 32, scattered: true);
        using var _ = rig;
        rig.Driver.TransferToHost2D(1, new VirtioGpuRect(0, 0, 32, 32), 0).Is(VirtioGpuCtrlType.OkNoData);
        var changed = RandomBytes((int)fb.Length, 99);
        fb.WriteFrame(changed);
        var rect = new VirtioGpuRect(8, 4, 16, 2);
        ulong offset = 4UL * fb.Stride + 8 * 4;
        rig.Driver.TransferToHost2D(1, rect, offset).Is(VirtioGpuCtrlType.OkNoData);
        var expected = (byte[])guest.Clone();
        ApplyTransfer(expected, changed, fb.Stride, rect, offset);
        Assert.Equal(expected, rig.HostBytes(1));
    }

    [Fact]
    public void Transfer_EmptyRect_OkAndNothingCopied()
    {
        var (rig, fb, _) = Setup(16, 16, scattered: false);
        using var __ = rig;
        rig.Driver.TransferToHost2D(1, new VirtioGpuRect(3, 3, 0, 5), 0).Is(VirtioGpuCtrlType.OkNoData);
        rig.Driver.TransferToHost2D(1, new VirtioGpuRect(16, 16, 0, 0), 0).Is(VirtioGpuCtrlType.OkNoData);
        Assert.All(rig.HostBytes(1), b => Assert.Equal(0, b));
        Assert.Equal(0UL, rig.Device.BytesTransferred);
    }

    public static TheoryData<uint, uint, uint, uint> OutsideRects => new()
    {
        { 0, 0, 17, 1 },
        { 0, 0, 1, 17 },
        { 16, 0, 1, 1 },
        { 0, 16, 1, 1 },
        { 17, 0, 0, 0 },
        { 8, 8, 9, 8 },
        { uint.MaxValue, 0, 2, 1 },            // x + width wraps
        { 1, 0, uint.MaxValue, 1 },
        { 0, uint.MaxValue, 1, 2 },
        { 0, 1, 1, uint.MaxValue },
    };

    [Theory]
    [MemberData(nameof(OutsideRects))]
    public void Transfer_RectOutsideResource_ErrInvalidParameterAndNothingCopied(uint x, uint y, uint w, uint h)
    {
        var (rig, _, _) = Setup(16, 16, scattered: false);
        using var __ = rig;
        var rect = new VirtioGpuRect(x, y, w, h);
        rig.Driver.TransferToHost2D(1, rect, 0).Is(VirtioGpuCtrlType.ErrInvalidParameter);
        Assert.All(rig.HostBytes(1), b => Assert.Equal(0, b));
        rig.AssertOneGuestError("TRANSFER_TO_HOST_2D", "resource_id 1", $"rect {rect}");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Transfer_PastEndOfBacking_ErrorAndNothingCopied(bool scattered)
    {
        // The backing covers only the first half of the frame: a full-frame transfer must
        // fail before copying anything (QEMU's C back-end answers OK here).
        using var rig = DeviceRig.Create();
        var fb = FrameBuffer.Allocate(rig.Ram, 64, 64, VirtioGpuFormat.B8G8R8X8Unorm, scattered);
        fb.WriteFrame(RandomBytes((int)fb.Length, 3));
        var half = new List<GuestBuffer>();
        ulong left = fb.Length / 2;
        foreach (var e in fb.Entries)
        {
            if (left == 0) break;
            uint n = (uint)Math.Min(left, e.Length);
            half.Add(new GuestBuffer(e.Address, n));
            left -= n;
        }
        rig.Driver.CreateResource2D(1, fb.Format, fb.Width, fb.Height).Is(VirtioGpuCtrlType.OkNoData);
        rig.Driver.AttachBacking(1, half).Is(VirtioGpuCtrlType.OkNoData);
        var reply = rig.Driver.TransferToHost2D(1, new VirtioGpuRect(0, 0, 64, 64), 0);
        Assert.False(reply.IsOk);
        Assert.Equal(VirtioGpuCtrlType.ErrInvalidParameter, reply.Type);
        Assert.All(rig.HostBytes(1), b => Assert.Equal(0, b));
        Assert.Equal(0UL, rig.Device.BytesTransferred);
        rig.AssertOneGuestError("TRANSFER_TO_HOST_2D", "resource_id 1", $"{fb.Length / 2}-byte backing");

        // The first half alone is fine.
        rig.Driver.TransferToHost2D(1, new VirtioGpuRect(0, 0, 64, 32), 0).Is(VirtioGpuCtrlType.OkNoData);
    }

    [Fact]
    public void Transfer_LastRowEndsExactlyAtBackingEnd_OkOneByteMore_Error()
    {
        using var rig = DeviceRig.Create();
        rig.Driver.CreateResource2D(1, VirtioGpuFormat.B8G8R8X8Unorm, 16, 16).Is(VirtioGpuCtrlType.OkNoData);
        var page = rig.Ram.Allocator.Allocate(4096);
        var data = RandomBytes(1000, 8);
        data.CopyTo(rig.Ram.Span(page, 1000));
        rig.Driver.AttachBacking(1, [new GuestBuffer(page, 1000)]).Is(VirtioGpuCtrlType.OkNoData);
        // Rect 2x3 at offset o reads up to o + 64*2 + 8.
        ulong fits = 1000 - 64 * 2 - 8;
        rig.Driver.TransferToHost2D(1, new VirtioGpuRect(1, 1, 2, 3), fits + 1).Is(VirtioGpuCtrlType.ErrInvalidParameter);
        Assert.All(rig.HostBytes(1), b => Assert.Equal(0, b));
        rig.Driver.TransferToHost2D(1, new VirtioGpuRect(1, 1, 2, 3), fits).Is(VirtioGpuCtrlType.OkNoData);
        var expected = new byte[16 * 16 * 4];
        ApplyTransfer(expected, data, 64, new VirtioGpuRect(1, 1, 2, 3), fits);
        Assert.Equal(expected, rig.HostBytes(1));
        rig.AssertOneGuestError("TRANSFER_TO_HOST_2D", "resource_id 1", "1000-byte backing");
    }

    [Theory]
    [InlineData(ulong.MaxValue)]
    [InlineData(ulong.MaxValue - 63)]
    [InlineData(ulong.MaxValue - 64 * 15)]
    public void Transfer_OffsetOverflows_ErrInvalidParameter(ulong offset)
    {
        var (rig, _, _) = Setup(16, 16, scattered: false);
        using var __ = rig;
        rig.Driver.TransferToHost2D(1, new VirtioGpuRect(0, 0, 16, 16), offset).Is(VirtioGpuCtrlType.ErrInvalidParameter);
        Assert.All(rig.HostBytes(1), b => Assert.Equal(0, b));
        rig.AssertOneGuestError("TRANSFER_TO_HOST_2D", "resource_id 1", $"offset 0x{offset:x}");
    }

    [Fact]
    public void Transfer_LargeOffsetWithinUlong_ErrInvalidParameter()
    {
        var (rig, _, _) = Setup(16, 16, scattered: true);
        using var __ = rig;
        rig.Driver.TransferToHost2D(1, new VirtioGpuRect(0, 0, 1, 1), 1UL << 40).Is(VirtioGpuCtrlType.ErrInvalidParameter);
        Assert.All(rig.HostBytes(1), b => Assert.Equal(0, b));
        rig.AssertOneGuestError("TRANSFER_TO_HOST_2D", "resource_id 1", "offset 0x10000000000");
    }

    [Fact]
    public void Transfer_NoBacking_ErrUnspecAndNothingCopied()
    {
        // As QEMU's virtio-gpu ("no backing storage" → ERR_UNSPEC); the resource id itself is valid.
        using var rig = DeviceRig.Create();
        rig.Driver.CreateResource2D(1, VirtioGpuFormat.B8G8R8X8Unorm, 16, 16).Is(VirtioGpuCtrlType.OkNoData);
        rig.Driver.TransferToHost2D(1, new VirtioGpuRect(0, 0, 16, 16), 0).Is(VirtioGpuCtrlType.ErrUnspec);
        Assert.All(rig.HostBytes(1), b => Assert.Equal(0, b));
        rig.AssertOneGuestError("TRANSFER_TO_HOST_2D", "resource_id 1", "no backing");
    }

    [Fact]
    public void Transfer_UnknownResource_ErrInvalidResourceId()
    {
        using var rig = DeviceRig.Create();
        rig.Driver.TransferToHost2D(42, new VirtioGpuRect(0, 0, 1, 1), 0).Is(VirtioGpuCtrlType.ErrInvalidResourceId);
        rig.AssertOneGuestError("TRANSFER_TO_HOST_2D", "resource_id 42");
    }

    [Fact]
    public void Transfer_ShortRequest_ErrUnspecAndNothingCopied()
    {
        var (rig, fb, _) = Setup(16, 16, scattered: false);
        using var __ = rig;
        var cmd = Bytes(rig.Driver.TransferCommand(1, new VirtioGpuRect(0, 0, 16, 16), 0));
        // Without the trailing resource_id/padding (52 of 56 bytes).
        rig.Driver.Submit(cmd[..52]).Is(VirtioGpuCtrlType.ErrUnspec);
        Assert.All(rig.HostBytes(1), b => Assert.Equal(0, b));
        rig.AssertOneGuestError("TRANSFER_TO_HOST_2D", "52 bytes", "56 bytes");
    }

    [Fact]
    public void Transfer_BackingFromSeveralOddSizedEntries_CopiedAcrossEntries()
    {
        // Entries of 3, 1000, 5 and 4096 bytes, deliberately not pixel aligned.
        using var rig = DeviceRig.Create();
        rig.Driver.CreateResource2D(1, VirtioGpuFormat.B8G8R8X8Unorm, 20, 10).Is(VirtioGpuCtrlType.OkNoData);
        uint[] sizes = [3, 1000, 5, 4096];
        var entries = new List<GuestBuffer>();
        var backing = RandomBytes(sizes.Sum(s => (int)s), 21);
        int pos = 0;
        foreach (var s in sizes)
        {
            var a = rig.Ram.Allocator.Allocate(2 * 4096); // a hole after each
            backing.AsSpan(pos, (int)s).CopyTo(rig.Ram.Span(a, (int)s));
            entries.Add(new GuestBuffer(a, s));
            pos += (int)s;
        }
        rig.Driver.AttachBacking(1, entries).Is(VirtioGpuCtrlType.OkNoData);
        rig.Driver.TransferToHost2D(1, new VirtioGpuRect(0, 0, 20, 10), 0).Is(VirtioGpuCtrlType.OkNoData);
        Assert.Equal(backing[..(20 * 10 * 4)], rig.HostBytes(1));
        // A partial rect starting inside the first entry.
        var expected = rig.HostBytes(1);
        var fresh = RandomBytes(backing.Length, 22);
        pos = 0;
        for (int i = 0; i < entries.Count; i++)
        {
            fresh.AsSpan(pos, (int)sizes[i]).CopyTo(rig.Ram.Span(entries[i].Address, (int)sizes[i]));
            pos += (int)sizes[i];
        }
        var rect = new VirtioGpuRect(3, 2, 11, 6);
        rig.Driver.TransferToHost2D(1, rect, 1).Is(VirtioGpuCtrlType.OkNoData);
        ApplyTransfer(expected, fresh, 80, rect, 1);
        Assert.Equal(expected, rig.HostBytes(1));
    }

    [Fact]
    public void Transfer_Fenced_ResponseEchoesFence()
    {
        var (rig, fb, guest) = Setup(8, 8, scattered: false);
        using var _ = rig;
        var reply = rig.Driver.TransferToHost2D(1, new VirtioGpuRect(0, 0, 8, 8), 0, fence: true).Is(VirtioGpuCtrlType.OkNoData);
        Assert.Equal(VirtioGpuCtrlHeader.FlagFence, reply.Header.Flags);
        Assert.NotEqual(0UL, reply.Header.FenceId);
        Assert.Equal(guest, rig.HostBytes(1));
    }
}
