using VirtioGpuHost.Device;
using VirtioGpuHost.Device.Wire;
using VirtioGpuHost.FrontEnd;
using VirtioGpuHost.GuestMemory;
using VirtioGpuHost.TestKit;
using static VirtioGpuHost.UnitTests.Device.DeviceTestHelpers;

namespace VirtioGpuHost.UnitTests.Device;

/// <summary>RESOURCE_CREATE_2D, RESOURCE_UNREF, ATTACH_BACKING and DETACH_BACKING, with every error path.</summary>
public class ResourceTests
{
    public static TheoryData<VirtioGpuFormat> AllFormats => new(PixelFormats.All);

    private static byte[] CreateCommand(uint id, VirtioGpuFormat format, uint w, uint h) =>
        Bytes(new VirtioGpuResourceCreate2D { Header = Header(VirtioGpuCtrlType.ResourceCreate2D), ResourceId = id, Format = format, Width = w, Height = h });

    private static byte[] AttachHeader(uint id, uint nrEntries) =>
        Bytes(new VirtioGpuResourceAttachBacking { Header = Header(VirtioGpuCtrlType.ResourceAttachBacking), ResourceId = id, NrEntries = nrEntries });

    private static byte[] Entry(ulong address, uint length) => Bytes(new VirtioGpuMemEntry { Address = address, Length = length });

    // ---- RESOURCE_CREATE_2D ----

    /// <summary>What a w x h resource (no backing) is charged: its pixels and the per-resource overhead.</summary>
    internal static ulong Charge(uint w, uint h) => (ulong)w * h * 4 + GpuDevice.ResourceOverheadBytes;

    [Theory]
    [MemberData(nameof(AllFormats))]
    public void Create2D_EachSpecFormat_CreatesZeroedResource(VirtioGpuFormat format)
    {
        using var rig = DeviceRig.Create();
        var reply = rig.Driver.CreateResource2D(7, format, 33, 17).Is(VirtioGpuCtrlType.OkNoData);
        Assert.Equal(24u, reply.Written);
        var res = rig.Device.Res2D(7);
        Assert.Equal((format, 33u, 17u, 33u * 4), (res.Format, res.Width, res.Height, res.Stride));
        Assert.Null(res.Backing);
        Assert.Equal(Charge(33, 17), rig.Device.HostMemoryInUse);
        Assert.All(rig.HostBytes(7), b => Assert.Equal(0, b));
        rig.AssertNoWarnings();
    }

    [Fact]
    public void Create2D_LargestDimensions_Accepted()
    {
        using var rig = DeviceRig.Create();
        rig.Driver.CreateResource2D(1, VirtioGpuFormat.B8G8R8X8Unorm, 16384, 1).Is(VirtioGpuCtrlType.OkNoData);
        rig.Driver.CreateResource2D(2, VirtioGpuFormat.B8G8R8X8Unorm, 1, 16384).Is(VirtioGpuCtrlType.OkNoData);
        rig.Driver.CreateResource2D(uint.MaxValue, VirtioGpuFormat.B8G8R8X8Unorm, 1, 1).Is(VirtioGpuCtrlType.OkNoData);
        Assert.Equal(3, rig.Device.Resources.Count);
    }

    [Fact]
    public void Create2D_ResourceIdZero_ErrInvalidResourceId()
    {
        using var rig = DeviceRig.Create();
        rig.Driver.CreateResource2D(0, VirtioGpuFormat.B8G8R8X8Unorm, 8, 8).Is(VirtioGpuCtrlType.ErrInvalidResourceId);
        Assert.Empty(rig.Device.Resources);
        Assert.Equal(0UL, rig.Device.HostMemoryInUse);
        rig.AssertOneGuestError("RESOURCE_CREATE_2D", "resource_id 0");
    }

    [Fact]
    public void Create2D_DuplicateId_ErrInvalidResourceIdAndFirstKept()
    {
        using var rig = DeviceRig.Create();
        rig.Driver.CreateResource2D(5, VirtioGpuFormat.B8G8R8X8Unorm, 8, 8).Is(VirtioGpuCtrlType.OkNoData);
        rig.Driver.CreateResource2D(5, VirtioGpuFormat.R8G8B8A8Unorm, 16, 16).Is(VirtioGpuCtrlType.ErrInvalidResourceId);
        var res = rig.Device.Res2D(5);
        Assert.Equal((VirtioGpuFormat.B8G8R8X8Unorm, 8u, 8u), (res.Format, res.Width, res.Height));
        Assert.Equal(Charge(8, 8), rig.Device.HostMemoryInUse);
        rig.AssertOneGuestError("RESOURCE_CREATE_2D", "resource_id 5", "already exists");
    }

    [Theory]
    [InlineData(0u)]
    [InlineData(5u)]
    [InlineData(66u)]
    [InlineData(120u)]
    [InlineData(133u)]
    [InlineData(0xFFFFFFFFu)]
    public void Create2D_UnknownFormat_ErrInvalidParameter(uint format)
    {
        using var rig = DeviceRig.Create();
        rig.Driver.CreateResource2D(1, (VirtioGpuFormat)format, 8, 8).Is(VirtioGpuCtrlType.ErrInvalidParameter);
        Assert.Empty(rig.Device.Resources);
        Assert.Equal(0UL, rig.Device.HostMemoryInUse);
        rig.AssertOneGuestError("RESOURCE_CREATE_2D", $"format {format}");
    }

    [Theory]
    [InlineData(0u, 1u)]
    [InlineData(1u, 0u)]
    [InlineData(0u, 0u)]
    [InlineData(16385u, 1u)]
    [InlineData(1u, 16385u)]
    [InlineData(uint.MaxValue, uint.MaxValue)]
    public void Create2D_BadSize_ErrInvalidParameter(uint w, uint h)
    {
        using var rig = DeviceRig.Create();
        rig.Driver.CreateResource2D(1, VirtioGpuFormat.B8G8R8X8Unorm, w, h).Is(VirtioGpuCtrlType.ErrInvalidParameter);
        Assert.Empty(rig.Device.Resources);
        Assert.Equal(0UL, rig.Device.HostMemoryInUse);
        rig.AssertOneGuestError("RESOURCE_CREATE_2D", $"size {w}x{h}");
    }

    [Fact]
    public void Create2D_OverHostMemoryLimit_ErrOutOfMemoryWithoutLeakingAccounting()
    {
        ulong both = Charge(64, 64) + Charge(64, 128);
        using var rig = DeviceRig.Create(new GpuDeviceOptions { MaxHostMemory = both });
        rig.Driver.CreateResource2D(1, VirtioGpuFormat.B8G8R8X8Unorm, 64, 64).Is(VirtioGpuCtrlType.OkNoData);
        rig.Driver.CreateResource2D(2, VirtioGpuFormat.B8G8R8X8Unorm, 64, 128).Is(VirtioGpuCtrlType.OkNoData);
        Assert.Equal(both, rig.Device.HostMemoryInUse);
        rig.Driver.CreateResource2D(3, VirtioGpuFormat.B8G8R8X8Unorm, 1, 1).Is(VirtioGpuCtrlType.ErrOutOfMemory);
        Assert.Equal(both, rig.Device.HostMemoryInUse);
        Assert.Equal(2, rig.Device.Resources.Count);
        rig.AssertOneGuestError("RESOURCE_CREATE_2D", "resource_id 3", "host memory limit");

        // Freeing one makes room again: the accounting gave back exactly what was taken.
        rig.Driver.Unref(2).Is(VirtioGpuCtrlType.OkNoData);
        Assert.Equal(Charge(64, 64), rig.Device.HostMemoryInUse);
        rig.Driver.CreateResource2D(3, VirtioGpuFormat.B8G8R8X8Unorm, 64, 128).Is(VirtioGpuCtrlType.OkNoData);
        Assert.Equal(both, rig.Device.HostMemoryInUse);
    }

    [Fact]
    public void Create2D_DefaultLimit_HugeResourceErrOutOfMemory()
    {
        using var rig = DeviceRig.Create();
        // 16384 x 16384 x 4 = 1 GiB, over QEMU's 256 MiB default.
        rig.Driver.CreateResource2D(1, VirtioGpuFormat.B8G8R8X8Unorm, 16384, 16384).Is(VirtioGpuCtrlType.ErrOutOfMemory);
        Assert.Equal(0UL, rig.Device.HostMemoryInUse);
        rig.AssertOneGuestError("RESOURCE_CREATE_2D", "resource_id 1");
    }

    [Fact]
    public void Create2D_MaxResourcesReached_ErrOutOfMemory()
    {
        using var rig = DeviceRig.Create(new GpuDeviceOptions { MaxResources = 3 });
        for (uint i = 1; i <= 3; i++) rig.Driver.CreateResource2D(i, VirtioGpuFormat.B8G8R8X8Unorm, 4, 4).Is(VirtioGpuCtrlType.OkNoData);
        rig.Driver.CreateResource2D(4, VirtioGpuFormat.B8G8R8X8Unorm, 4, 4).Is(VirtioGpuCtrlType.ErrOutOfMemory);
        Assert.Equal(3, rig.Device.Resources.Count);
        Assert.Equal(3 * Charge(4, 4), rig.Device.HostMemoryInUse);
        rig.AssertOneGuestError("RESOURCE_CREATE_2D", "resource_id 4", "3 resources");
        rig.Driver.Unref(1).Is(VirtioGpuCtrlType.OkNoData);
        rig.Driver.CreateResource2D(4, VirtioGpuFormat.B8G8R8X8Unorm, 4, 4).Is(VirtioGpuCtrlType.OkNoData);
    }

    [Theory]
    [InlineData(24)]
    [InlineData(28)]
    [InlineData(39)]
    public void Create2D_RequestShorterThanCommand_ErrUnspec(int length)
    {
        using var rig = DeviceRig.Create();
        rig.Driver.Submit(CreateCommand(1, VirtioGpuFormat.B8G8R8X8Unorm, 8, 8)[..length]).Is(VirtioGpuCtrlType.ErrUnspec);
        Assert.Empty(rig.Device.Resources);
        rig.AssertOneGuestError("RESOURCE_CREATE_2D", $"{length} bytes", "40 bytes");
    }

    [Fact]
    public void Create2D_LongerRequest_TrailingBytesIgnored()
    {
        using var rig = DeviceRig.Create();
        rig.Driver.Submit([.. CreateCommand(1, VirtioGpuFormat.B8G8R8X8Unorm, 8, 8), .. new byte[100]]).Is(VirtioGpuCtrlType.OkNoData);
        Assert.Equal(8u, rig.Device.Res2D(1).Width);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(20)]
    [InlineData(23)]
    public void Execute_RequestShorterThanHeader_ErrInvalidParameter(int length)
    {
        using var rig = DeviceRig.Create();
        var cmd = CreateCommand(1, VirtioGpuFormat.B8G8R8X8Unorm, 8, 8)[..length];
        GpuReply reply;
        if (length == 0)
        {
            // A chain with no readable bytes at all: only the response buffer.
            var resp = rig.Ram.Allocator.Allocate(24);
            rig.Ram.Span(resp, 24).Fill(0xEE);
            ushort head = rig.ControlDriverQueue.Add([], [new GuestBuffer(resp, 24)]);
            rig.Driver.KickControl();
            Assert.True(rig.ControlDriverQueue.TryTakeUsed(out var used, out var written));
            Assert.Equal((head, 24u), (used, written));
            reply = new GpuReply(rig.Ram.Span(resp, 24).ToArray(), written);
        }
        else
        {
            reply = rig.Driver.Submit(cmd);
        }
        reply.Is(VirtioGpuCtrlType.ErrInvalidParameter);
        Assert.Equal(0u, reply.Header.Flags);
        Assert.Empty(rig.Device.Resources);
        rig.AssertOneGuestError("request", $"only {length} bytes", "24-byte header");
    }

    // ---- RESOURCE_UNREF ----

    [Fact]
    public void Unref_Existing_RemovesAndFreesHostMemory()
    {
        using var rig = DeviceRig.Create();
        var fb = rig.NewFrameBuffer(1, 16, 16);
        rig.Driver.CreateResource2D(2, VirtioGpuFormat.B8G8R8X8Unorm, 4, 4).Is(VirtioGpuCtrlType.OkNoData);
        rig.Driver.Unref(1).Is(VirtioGpuCtrlType.OkNoData);
        Assert.False(rig.Device.Resources.ContainsKey(1));
        Assert.True(rig.Device.Resources.ContainsKey(2));
        Assert.Equal(Charge(4, 4), rig.Device.HostMemoryInUse);
        rig.AssertNoWarnings();
        // The id may be reused.
        rig.Driver.CreateResource2D(1, VirtioGpuFormat.R8G8B8A8Unorm, 2, 2).Is(VirtioGpuCtrlType.OkNoData);
        Assert.Null(rig.Device.Res2D(1).Backing);
    }

    [Theory]
    [InlineData(0u)]
    [InlineData(9u)]
    public void Unref_UnknownResource_ErrInvalidResourceId(uint id)
    {
        using var rig = DeviceRig.Create();
        rig.Driver.CreateResource2D(1, VirtioGpuFormat.B8G8R8X8Unorm, 4, 4).Is(VirtioGpuCtrlType.OkNoData);
        rig.Driver.Unref(id).Is(VirtioGpuCtrlType.ErrInvalidResourceId);
        Assert.True(rig.Device.Resources.ContainsKey(1));
        Assert.Equal(Charge(4, 4), rig.Device.HostMemoryInUse);
        rig.AssertOneGuestError("RESOURCE_UNREF", $"resource_id {id}");
    }

    [Fact]
    public void Unref_Twice_SecondIsErrInvalidResourceId()
    {
        using var rig = DeviceRig.Create();
        rig.Driver.CreateResource2D(1, VirtioGpuFormat.B8G8R8X8Unorm, 4, 4).Is(VirtioGpuCtrlType.OkNoData);
        rig.Driver.Unref(1).Is(VirtioGpuCtrlType.OkNoData);
        rig.Driver.Unref(1).Is(VirtioGpuCtrlType.ErrInvalidResourceId);
        Assert.Equal(0UL, rig.Device.HostMemoryInUse);
        rig.AssertOneGuestError("RESOURCE_UNREF", "resource_id 1");
    }

    [Fact]
    public void Unref_ShortRequest_ErrUnspecAndResourceKept()
    {
        using var rig = DeviceRig.Create();
        rig.Driver.CreateResource2D(1, VirtioGpuFormat.B8G8R8X8Unorm, 4, 4).Is(VirtioGpuCtrlType.OkNoData);
        rig.Driver.Submit(Bytes(new VirtioGpuResourceRef { Header = Header(VirtioGpuCtrlType.ResourceUnref), ResourceId = 1 })[..28]).Is(VirtioGpuCtrlType.ErrUnspec);
        Assert.True(rig.Device.Resources.ContainsKey(1));
        rig.AssertOneGuestError("RESOURCE_UNREF", "32 bytes");
    }

    // ---- RESOURCE_ATTACH_BACKING ----

    [Theory]
    [InlineData(true, false)]
    [InlineData(false, false)]
    [InlineData(true, true)]
    [InlineData(false, true)]
    public void AttachBacking_EntriesInlineOrInSecondBuffer_RecordsScatterList(bool secondBuffer, bool scattered)
    {
        using var rig = DeviceRig.Create();
        var fb = FrameBuffer.Allocate(rig.Ram, 40, 30, VirtioGpuFormat.B8G8R8X8Unorm, scattered);
        rig.Driver.CreateResource2D(1, fb.Format, fb.Width, fb.Height).Is(VirtioGpuCtrlType.OkNoData);
        rig.Driver.AttachBacking(1, fb.Entries, secondBuffer).Is(VirtioGpuCtrlType.OkNoData);
        var backing = rig.Device.Res2D(1).Backing;
        Assert.NotNull(backing);
        Assert.Equal(fb.Entries.Select(e => (e.Address.Value, e.Length)), backing.Select(e => (e.Address, e.Length)));
        Assert.Equal(fb.Length, rig.Device.Res2D(1).BackingLength);
        if (scattered) Assert.True(backing.Length > 1);
        rig.AssertNoWarnings();
    }

    [Fact]
    public void AttachBacking_EntriesSplitAcrossBuffers_Assembled()
    {
        using var rig = DeviceRig.Create();
        var fb = FrameBuffer.Allocate(rig.Ram, 64, 64, VirtioGpuFormat.B8G8R8X8Unorm, scattered: true);
        Assert.Equal(4, fb.Entries.Count);
        rig.Driver.CreateResource2D(1, fb.Format, fb.Width, fb.Height).Is(VirtioGpuCtrlType.OkNoData);
        // Header + the first entry and a half in one buffer, the rest in another.
        var all = fb.Entries.SelectMany(e => Entry(e.Address.Value, e.Length)).ToArray();
        var first = (byte[])[.. AttachHeader(1, 4), .. all[..24]];
        var rest = all[24..];
        var buf = rig.Ram.Allocator.Allocate((ulong)rest.Length);
        rest.CopyTo(rig.Ram.Span(buf, rest.Length));
        rig.Driver.Submit(first, extraReadable: [new GuestBuffer(buf, (uint)rest.Length)]).Is(VirtioGpuCtrlType.OkNoData);
        Assert.Equal(fb.Entries.Select(e => e.Address.Value), rig.Device.Res2D(1).Backing!.Select(e => e.Address));
    }

    [Fact]
    public void AttachBacking_MaximumEntries_Accepted()
    {
        using var rig = DeviceRig.Create();
        rig.Driver.CreateResource2D(1, VirtioGpuFormat.B8G8R8X8Unorm, 128, 128).Is(VirtioGpuCtrlType.OkNoData);
        var page = rig.Ram.Allocator.Allocate(16384 * 4);
        var list = new List<GuestBuffer>();
        for (int i = 0; i < 16384; i++) list.Add(new GuestBuffer(new GuestAddress(page.Value + (ulong)i * 4), 4));
        rig.Driver.AttachBacking(1, list).Is(VirtioGpuCtrlType.OkNoData);
        Assert.Equal(16384, rig.Device.Res2D(1).Backing!.Length);
        Assert.Equal(16384UL * 4, rig.Device.Res2D(1).BackingLength);
    }

    [Fact]
    public void AttachBacking_Twice_ErrUnspecAndFirstBackingKept()
    {
        using var rig = DeviceRig.Create();
        var fb = rig.NewFrameBuffer(1, 16, 16);
        var other = FrameBuffer.Allocate(rig.Ram, 16, 16, VirtioGpuFormat.B8G8R8X8Unorm, scattered: false);
        rig.Driver.AttachBacking(1, other.Entries).Is(VirtioGpuCtrlType.ErrUnspec);
        Assert.Equal(fb.Entries[0].Address.Value, rig.Device.Res2D(1).Backing![0].Address);
        rig.AssertOneGuestError("RESOURCE_ATTACH_BACKING", "resource_id 1", "already has backing");
    }

    [Theory]
    [InlineData(16385u)]
    [InlineData(0x10000000u)]
    [InlineData(uint.MaxValue)]
    public void AttachBacking_TooManyEntries_ErrInvalidParameter(uint nrEntries)
    {
        using var rig = DeviceRig.Create();
        rig.Driver.CreateResource2D(1, VirtioGpuFormat.B8G8R8X8Unorm, 16, 16).Is(VirtioGpuCtrlType.OkNoData);
        rig.Driver.Submit([.. AttachHeader(1, nrEntries), .. Entry(0x10000, 1024)]).Is(VirtioGpuCtrlType.ErrInvalidParameter);
        Assert.Null(rig.Device.Res2D(1).Backing);
        rig.AssertOneGuestError("RESOURCE_ATTACH_BACKING", $"nr_entries {nrEntries}");
    }

    public static TheoryData<ulong, uint> OutsideEntries => new()
    {
        { 32UL << 20, 4096 },                 // starts at the end of RAM
        { (32UL << 20) - 100, 4096 },         // runs past the end
        { 1UL << 40, 1 },                     // far away
        { ulong.MaxValue - 10, 100 },         // wraps around
    };

    [Theory]
    [MemberData(nameof(OutsideEntries))]
    public void AttachBacking_EntryOutsideGuestMemory_ErrInvalidParameter(ulong address, uint length)
    {
        using var rig = DeviceRig.Create(ramSize: 32UL << 20);
        rig.Driver.CreateResource2D(1, VirtioGpuFormat.B8G8R8X8Unorm, 16, 16).Is(VirtioGpuCtrlType.OkNoData);
        var good = rig.Ram.Allocator.Allocate(4096);
        rig.Driver.AttachBacking(1, [new GuestBuffer(good, 512), new GuestBuffer(new GuestAddress(address), length)]).Is(VirtioGpuCtrlType.ErrInvalidParameter);
        Assert.Null(rig.Device.Res2D(1).Backing);
        rig.AssertOneGuestError("RESOURCE_ATTACH_BACKING", "resource_id 1", "entry 1", $"0x{address:x}");
    }

    [Fact]
    public void AttachBacking_ZeroLengthEntry_AcceptedAndNotCounted()
    {
        using var rig = DeviceRig.Create();
        rig.Driver.CreateResource2D(1, VirtioGpuFormat.B8G8R8X8Unorm, 16, 16).Is(VirtioGpuCtrlType.OkNoData);
        var page = rig.Ram.Allocator.Allocate(1024);
        rig.Driver.AttachBacking(1, [new GuestBuffer(new GuestAddress(ulong.MaxValue), 0), new GuestBuffer(page, 1024)]).Is(VirtioGpuCtrlType.OkNoData);
        Assert.Equal(1024UL, rig.Device.Res2D(1).BackingLength);
    }

    [Theory]
    [InlineData(3, 2)]
    [InlineData(1, 0)]
    [InlineData(16384, 1)]
    public void AttachBacking_MoreEntriesThanBytesSent_ErrUnspec(int declared, int sent)
    {
        using var rig = DeviceRig.Create();
        rig.Driver.CreateResource2D(1, VirtioGpuFormat.B8G8R8X8Unorm, 16, 16).Is(VirtioGpuCtrlType.OkNoData);
        var page = rig.Ram.Allocator.Allocate(4096);
        var cmd = AttachHeader(1, (uint)declared).Concat(Enumerable.Range(0, sent).SelectMany(i => Entry(page.Value + (ulong)i * 256, 256))).ToArray();
        rig.Driver.Submit(cmd).Is(VirtioGpuCtrlType.ErrUnspec);
        Assert.Null(rig.Device.Res2D(1).Backing);
        rig.AssertOneGuestError("RESOURCE_ATTACH_BACKING", $"{32 + 16 * sent} bytes", $"{32 + 16 * declared} bytes");
    }

    [Fact]
    public void AttachBacking_UnknownResource_ErrInvalidResourceId()
    {
        using var rig = DeviceRig.Create();
        var page = rig.Ram.Allocator.Allocate(4096);
        rig.Driver.AttachBacking(3, [new GuestBuffer(page, 4096)]).Is(VirtioGpuCtrlType.ErrInvalidResourceId);
        rig.AssertOneGuestError("RESOURCE_ATTACH_BACKING", "resource_id 3");
    }

    [Fact]
    public void AttachBacking_ShorterThanHeader_ErrUnspec()
    {
        using var rig = DeviceRig.Create();
        rig.Driver.CreateResource2D(1, VirtioGpuFormat.B8G8R8X8Unorm, 16, 16).Is(VirtioGpuCtrlType.OkNoData);
        rig.Driver.Submit(AttachHeader(1, 0)[..30]).Is(VirtioGpuCtrlType.ErrUnspec);
        Assert.Null(rig.Device.Res2D(1).Backing);
        rig.AssertOneGuestError("RESOURCE_ATTACH_BACKING", "30 bytes");
    }

    // ---- RESOURCE_DETACH_BACKING ----

    private static GpuReply Detach(DeviceRig rig, uint id) => rig.Driver.DetachBacking(id);

    [Fact]
    public void DetachBacking_Attached_RemovesBackingAndAllowsReattach()
    {
        using var rig = DeviceRig.Create();
        var fb = rig.NewFrameBuffer(1, 16, 16);
        Detach(rig, 1).Is(VirtioGpuCtrlType.OkNoData);
        Assert.Null(rig.Device.Res2D(1).Backing);
        Assert.Equal(0UL, rig.Device.Res2D(1).BackingLength);
        // Transfers now fail: there is nothing to copy from.
        rig.Driver.TransferToHost2D(1, new VirtioGpuRect(0, 0, 16, 16), 0).Is(VirtioGpuCtrlType.ErrUnspec);
        rig.Driver.AttachBacking(1, fb.Entries).Is(VirtioGpuCtrlType.OkNoData);
        rig.Driver.TransferToHost2D(1, new VirtioGpuRect(0, 0, 16, 16), 0).Is(VirtioGpuCtrlType.OkNoData);
    }

    [Fact]
    public void DetachBacking_WithoutBacking_ErrUnspecAndResourceKept()
    {
        // QEMU's virtio-gpu answers ERR_UNSPEC ("no backing storage"); the resource id itself is valid.
        using var rig = DeviceRig.Create();
        rig.Driver.CreateResource2D(1, VirtioGpuFormat.B8G8R8X8Unorm, 16, 16).Is(VirtioGpuCtrlType.OkNoData);
        Detach(rig, 1).Is(VirtioGpuCtrlType.ErrUnspec);
        Assert.True(rig.Device.Resources.ContainsKey(1));
        rig.AssertOneGuestError("RESOURCE_DETACH_BACKING", "resource_id 1", "no backing");
    }

    [Fact]
    public void DetachBacking_UnknownResource_ErrInvalidResourceId()
    {
        using var rig = DeviceRig.Create();
        Detach(rig, 4).Is(VirtioGpuCtrlType.ErrInvalidResourceId);
        rig.AssertOneGuestError("RESOURCE_DETACH_BACKING", "resource_id 4");
    }

    [Fact]
    public void DetachBacking_ShortRequest_ErrUnspecAndBackingKept()
    {
        using var rig = DeviceRig.Create();
        rig.NewFrameBuffer(1, 16, 16);
        rig.Driver.Submit(Bytes(new VirtioGpuResourceRef { Header = Header(VirtioGpuCtrlType.ResourceDetachBacking), ResourceId = 1 })[..24]).Is(VirtioGpuCtrlType.ErrUnspec);
        Assert.NotNull(rig.Device.Res2D(1).Backing);
        rig.AssertOneGuestError("RESOURCE_DETACH_BACKING", "24 bytes");
    }

    [Fact]
    public void Unref_WithBacking_DoesNotTouchGuestMemory()
    {
        using var rig = DeviceRig.Create();
        var fb = rig.NewFrameBuffer(1, 16, 16);
        fb.Fill(Colour);
        var before = rig.GuestBytes(fb);
        rig.Driver.Unref(1).Is(VirtioGpuCtrlType.OkNoData);
        Assert.Equal(before, rig.GuestBytes(fb));
        Assert.Equal(0UL, rig.Device.HostMemoryInUse);
    }
}
