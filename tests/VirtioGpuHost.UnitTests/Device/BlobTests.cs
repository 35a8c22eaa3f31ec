using VirtioGpuHost.Device;
using VirtioGpuHost.Device.Blobs;
using VirtioGpuHost.Device.Wire;
using VirtioGpuHost.FrontEnd;
using VirtioGpuHost.GuestMemory;
using VirtioGpuHost.TestKit;
using static VirtioGpuHost.UnitTests.Device.BlobTestKit;
using static VirtioGpuHost.UnitTests.Device.DeviceTestHelpers;

namespace VirtioGpuHost.UnitTests.Device;

/// <summary>RESOURCE_CREATE_BLOB (GUEST, HOST3D), blobs in the 2D commands, RESOURCE_ASSIGN_UUID.</summary>
public class BlobTests
{
    [Fact]
    public void CreateGuestBlob_Valid_CreatedAndListCharged()
    {
        using var rig = BlobRig();
        var fb = rig.NewGuestBlob(1, 64, 32, scattered: true);
        var blob = rig.Blob(1);
        Assert.Equal((BlobMemory.Guest, fb.Length, (uint)fb.Entries.Count), (blob.Kind, blob.Size, (uint)blob.Entries!.Length));
        Assert.Equal((ulong)fb.Entries.Count * GpuDevice.BackingEntryCostBytes + GpuDevice.ResourceOverheadBytes, rig.Device.HostMemoryInUse);
        rig.AssertNoWarnings();
    }

    [Fact]
    public void CreateHostBlob_Valid_ZeroFilledMemfdRoundedToPages()
    {
        using var rig = BlobRig();
        rig.NewHostBlob(2, 5000);
        var blob = rig.Blob(2);
        Assert.Equal((BlobMemory.Host3D, 5000UL, 7UL, 1u), (blob.Kind, blob.Size, blob.BlobId, blob.CreatedInContext));
        Assert.Equal(8192UL, blob.HostMemory!.Length);
        Assert.NotNull(blob.HostMemory.Fd);
        Assert.All(blob.HostMemory.AsSpan(0, 8192).ToArray(), b => Assert.Equal(0, b));
        Assert.Equal(8192 + GpuDevice.ResourceOverheadBytes, rig.Device.HostMemoryInUse);
    }

    [Fact]
    public void CreateHostBlob_MemoryFromTheContext_Used()
    {
        var capset = new FakeCapset();
        using var rig = BlobRig(Options([capset]));
        rig.NewContext(1);
        var mem = MappedBlock.CreateMemFd("test-item", 4096);
        capset.Last!.HostBlob = mem;
        rig.Driver.CreateBlob(3, Host3D, Mappable, 4096, blobId: 42, ctxId: 1).Is(VirtioGpuCtrlType.OkNoData);
        Assert.Same(mem, rig.Blob(3).HostMemory);
    }

    public static TheoryData<string, VirtioGpuCtrlType, string> BadCreates => new()
    {
        { "id0", VirtioGpuCtrlType.ErrInvalidResourceId, "resource_id 0" },
        { "dup", VirtioGpuCtrlType.ErrInvalidResourceId, "already exists" },
        { "flags", VirtioGpuCtrlType.ErrInvalidParameter, "blob_flags 0x8" },
        { "size0", VirtioGpuCtrlType.ErrInvalidParameter, "size 0" },
        { "size-over-entries", VirtioGpuCtrlType.ErrInvalidParameter, "exceeds the 4096 bytes" },
        { "entry-outside", VirtioGpuCtrlType.ErrInvalidParameter, "not in guest memory" },
        { "entry-wraps", VirtioGpuCtrlType.ErrInvalidParameter, "not in guest memory" },
        { "too-many-entries", VirtioGpuCtrlType.ErrInvalidParameter, "nr_entries 16385" },
        { "truncated-list", VirtioGpuCtrlType.ErrUnspec, "shorter" },
        { "mem0", VirtioGpuCtrlType.ErrInvalidParameter, "blob_mem 0" },
        { "mem4", VirtioGpuCtrlType.ErrInvalidParameter, "blob_mem 4" },
        { "host3d-guest", VirtioGpuCtrlType.ErrInvalidParameter, "HOST3D_GUEST is not supported" },
        { "host-no-ctx", VirtioGpuCtrlType.ErrInvalidContextId, "ctx_id 9" },
        { "host-entries", VirtioGpuCtrlType.ErrInvalidParameter, "nr_entries is 1" },
        { "host-size-overflow", VirtioGpuCtrlType.ErrInvalidParameter, "overflows" },
        { "host-over-budget", VirtioGpuCtrlType.ErrOutOfMemory, "host memory limit" },
        { "short", VirtioGpuCtrlType.ErrUnspec, "shorter" },
    };

    [Theory]
    [MemberData(nameof(BadCreates))]
    public void CreateBlob_Invalid_RefusedWithoutStateChange(string which, VirtioGpuCtrlType error, string field)
    {
        using var rig = BlobRig(Options(maxHostMemory: 1 << 20));
        rig.NewContext(1);
        rig.Driver.CreateResource2D(5, VirtioGpuFormat.B8G8R8X8Unorm, 4, 4).Is(VirtioGpuCtrlType.OkNoData);
        var page = rig.Ram.Allocator.Allocate(4096);
        GuestBuffer[] one = [new(page, 4096)];
        ulong mem = rig.Device.HostMemoryInUse;
        var d = rig.Driver;
        var reply = which switch
        {
            "id0" => d.CreateBlob(0, Guest, 0, 4096, one),
            "dup" => d.CreateBlob(5, Guest, 0, 4096, one),
            "flags" => d.CreateBlob(6, Guest, 8, 4096, one),
            "size0" => d.CreateBlob(6, Guest, 0, 0, one),
            "size-over-entries" => d.CreateBlob(6, Guest, 0, 4097, one),
            "entry-outside" => d.CreateBlob(6, Guest, 0, 4096, [new(new GuestAddress(rig.Ram.Size), 4096)]),
            "entry-wraps" => d.CreateBlob(6, Guest, 0, 4096, [new(new GuestAddress(ulong.MaxValue - 100), 4096)]),
            "too-many-entries" => d.Submit(Bytes(new VirtioGpuResourceCreateBlob { Header = d.Header(VirtioGpuCtrlType.ResourceCreateBlob), ResourceId = 6, BlobMem = Guest, NrEntries = 16385, Size = 1 })),
            "truncated-list" => d.Submit(Bytes(new VirtioGpuResourceCreateBlob { Header = d.Header(VirtioGpuCtrlType.ResourceCreateBlob), ResourceId = 6, BlobMem = Guest, NrEntries = 2, Size = 1 })),
            "mem0" => d.CreateBlob(6, 0, 0, 4096, one),
            "mem4" => d.CreateBlob(6, 4, 0, 4096, one),
            "host3d-guest" => d.CreateBlob(6, 3, 0, 4096, ctxId: 1),
            "host-no-ctx" => d.CreateBlob(6, Host3D, Mappable, 4096, ctxId: 9),
            "host-entries" => d.CreateBlob(6, Host3D, Mappable, 4096, one, ctxId: 1),
            "host-size-overflow" => d.CreateBlob(6, Host3D, Mappable, ulong.MaxValue - 10, ctxId: 1),
            "host-over-budget" => d.CreateBlob(6, Host3D, Mappable, 2 << 20, ctxId: 1),
            "short" => d.Submit(Bytes(new VirtioGpuResourceRef { Header = d.Header(VirtioGpuCtrlType.ResourceCreateBlob), ResourceId = 6 })),
            _ => throw new ArgumentException(which),
        };
        reply.Is(error);
        Assert.Equal([1u], rig.Device.ContextIds);
        Assert.Equal([5u], rig.Device.Resources.Keys);
        Assert.Equal(mem, rig.Device.HostMemoryInUse);
        rig.AssertOneGuestError("RESOURCE_CREATE_BLOB", field);
    }

    [Fact]
    public void CreateBlob_BlobNotNegotiated_ErrUnspec()
    {
        using var rig = BlobRig();
        rig.Device.AcknowledgeFeatures(VirtioGpuFeatures.ContextInit);
        var page = rig.Ram.Allocator.Allocate(4096);
        rig.Driver.CreateBlob(1, Guest, 0, 4096, [new(page, 4096)]).Is(VirtioGpuCtrlType.ErrUnspec);
        Assert.Empty(rig.Device.Resources);
        rig.AssertOneGuestError("ResourceCreateBlob", "VIRTIO_GPU_F_RESOURCE_BLOB was not negotiated");
    }

    [Fact]
    public void Backing_OnABlob_ErrInvalidParameter()
    {
        using var rig = BlobRig();
        var fb = rig.NewGuestBlob(1, 16, 16);
        rig.Driver.AttachBacking(1, fb.Entries).Is(VirtioGpuCtrlType.ErrInvalidParameter);
        rig.Driver.DetachBacking(1).Is(VirtioGpuCtrlType.ErrInvalidParameter);
        Assert.Equal(2, rig.Logs.Warnings.Count(w => w.Contains("is a blob")));
    }

    [Fact]
    public void SetScanout2D_OfABlob_ErrInvalidParameter()
    {
        using var rig = BlobRig();
        rig.NewGuestBlob(1, 16, 16);
        rig.Driver.SetScanout(0, 1, new VirtioGpuRect(0, 0, 16, 16)).Is(VirtioGpuCtrlType.ErrInvalidParameter);
        Assert.Null(rig.Device.GetScanout(0).Resource);
        rig.AssertOneGuestError("SET_SCANOUT", "use SET_SCANOUT_BLOB");
    }

    [Fact]
    public void TransferToHost2D_OnBlobs_OkWithoutCopying()
    {
        using var rig = BlobRig();
        rig.NewGuestBlob(1, 16, 16);
        rig.NewHostBlob(2, 4096);
        rig.Driver.TransferToHost2D(1, new VirtioGpuRect(0, 0, 16, 16), 0).Is(VirtioGpuCtrlType.OkNoData);
        rig.Driver.TransferToHost2D(2, new VirtioGpuRect(0, 0, 16, 16), 0).Is(VirtioGpuCtrlType.OkNoData);
        Assert.Equal(2, rig.Device.BlobTransfersSkipped);
        Assert.Equal(0UL, rig.Device.ScanoutBytesCopied);
        rig.AssertNoWarnings();
    }

    [Fact]
    public void Unref_Blobs_GoneAndRefunded()
    {
        using var rig = BlobRig();
        rig.NewGuestBlob(1, 16, 16);
        ulong guestOnly = rig.Device.HostMemoryInUse;
        rig.NewHostBlob(2, 4096);
        var host = rig.Blob(2).HostMemory!;
        host.AddRef();
        rig.Driver.Unref(2).Is(VirtioGpuCtrlType.OkNoData);
        Assert.True(host.IsExclusive); // the device let go of its memory
        host.Release();
        Assert.Equal(guestOnly, rig.Device.HostMemoryInUse);
        rig.Driver.Unref(1).Is(VirtioGpuCtrlType.OkNoData);
        Assert.Equal(0UL, rig.Device.HostMemoryInUse);
        Assert.Empty(rig.Device.Resources);
    }

    [Fact]
    public void CreateHostBlob_PastTheFdLimit_ErrOutOfMemory()
    {
        using var rig = BlobRig(new GpuDeviceOptions { Blob = true, MaxHostBlobs = 1 });
        rig.NewHostBlob(1, 4096);
        rig.Driver.CreateBlob(2, Host3D, Mappable, 4096, ctxId: 1).Is(VirtioGpuCtrlType.ErrOutOfMemory);
        rig.Driver.Unref(1).Is(VirtioGpuCtrlType.OkNoData);
        rig.Driver.CreateBlob(2, Host3D, Mappable, 4096, ctxId: 1).Is(VirtioGpuCtrlType.OkNoData);
    }

    [Fact]
    public void BlobCursor_64x64Argb_ShownFromTheBlob()
    {
        using var rig = BlobRig();
        var fb = rig.NewGuestBlob(1, 64, 64, scattered: true);
        fb.Fill((x, y) => 0x80000000u | x << 8 | y);
        rig.Driver.UpdateCursor(0, 10, 20, 1, 3, 4);
        var c = rig.Display.Cursor!.Value;
        Assert.Equal((10u, 20u, 3u, 4u), (c.X, c.Y, c.HotX, c.HotY));
        const int at = (7 * 64 + 5) * 4;
        Assert.Equal(new byte[] { 7, 5, 0, 0x80 }, c.Bgra[at..(at + 4)]);
    }

    // ---- RESOURCE_ASSIGN_UUID ----

    [Fact]
    public void AssignUuid_StableRandomV4PerResource()
    {
        using var rig = BlobRig();
        rig.NewHostBlob(1, 4096);
        rig.Driver.CreateResource2D(2, VirtioGpuFormat.B8G8R8X8Unorm, 4, 4).Is(VirtioGpuCtrlType.OkNoData);
        var a = rig.Driver.AssignUuid(1).Is(VirtioGpuCtrlType.OkResourceUuid);
        Assert.Equal(40u, a.Written);
        Assert.Equal(a.Uuid, rig.Driver.AssignUuid(1).Uuid);
        var b = rig.Driver.AssignUuid(2).Uuid!;
        Assert.NotEqual(a.Uuid, b);
        Assert.Equal(0x40, a.Uuid![6] & 0xF0); // version 4
        Assert.Equal(0x80, a.Uuid[8] & 0xC0); // RFC 4122 variant
        Assert.Equal(new Guid(a.Uuid, bigEndian: true), rig.Device.Resources[1].Uuid);
    }

    [Fact]
    public void AssignUuid_UnknownResource_ErrInvalidResourceId()
    {
        using var rig = BlobRig();
        rig.Driver.AssignUuid(3).Is(VirtioGpuCtrlType.ErrInvalidResourceId);
        rig.AssertOneGuestError("RESOURCE_ASSIGN_UUID", "resource_id 3");
    }

    [Fact]
    public void AssignUuid_NotNegotiated_ErrUnspec()
    {
        using var rig = DeviceRig.Create();
        rig.Driver.CreateResource2D(2, VirtioGpuFormat.B8G8R8X8Unorm, 4, 4).Is(VirtioGpuCtrlType.OkNoData);
        rig.Driver.AssignUuid(2).Is(VirtioGpuCtrlType.ErrUnspec);
        Assert.Null(rig.Device.Resources[2].Uuid);
        rig.AssertOneGuestError("VIRTIO_GPU_F_RESOURCE_UUID");
    }
}
