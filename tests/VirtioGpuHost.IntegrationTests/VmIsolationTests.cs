using System.Runtime.InteropServices;
using VirtioGpuHost.Device.Wire;
using VirtioGpuHost.FrontEnd;
using static VirtioGpuHost.Device.Wire.VirtioGpuCtrlType;

namespace VirtioGpuHost.IntegrationTests;

/// <summary>
/// Resource ids, contexts, blobs, mappings and scanouts are per VM: through real sockets, VM B
/// sends every control and cursor command naming VM A's objects. Each gets the spec's error or
/// acts on B's own namespace only (B's own resource 1 is independent of A's), and A's picture,
/// objects and mappings are untouched and still work.
/// </summary>
public sealed class VmIsolationTests : IDisposable
{
    private readonly MultiVmRig _rig = new(2);

    public void Dispose() => _rig.Dispose();

    private static uint PixelA(uint x, uint y) => 0xFF000000 | 0x40u << 16 | (x & 0xFF) << 8 | (y & 0xFF);
    private static uint PixelB(uint x, uint y) => 0xFF000000 | 0xC0u << 16 | (y & 0xFF) << 8 | (x & 0xFF);

    // A's objects: 2D resource 1 on scanout 0, GUEST blob 2, mappable GUEST blob 3 (mapped, attached to ctx 1), cursor resource 4, context 1.
    private const uint Res2D = 1, GuestBlob = 2, MappedBlob = 3, CursorRes = 4, Ctx = 1;
    private const ulong MapAt = 0x10_0000;

    [Fact]
    public void ForeignIds_EveryCommand_SpecErrorsOrOwnNamespace_AUntouched()
    {
        using var a = _rig.Connect(0);
        var fbA = MultiVmRig.Draw2D(a, Res2D, PixelA);
        var da = a.Driver;
        var blobFb = FrameBuffer.Allocate(a.Ram, 64, 64, VirtioGpuFormat.B8G8R8X8Unorm, scattered: false);
        GpuDriver.Expect(da.CreateBlob(GuestBlob, VirtioGpuResourceCreateBlob.MemGuest, VirtioGpuResourceCreateBlob.FlagUseShareable | VirtioGpuResourceCreateBlob.FlagUseMappable, blobFb.Length, blobFb.Entries), "A CREATE_BLOB guest");
        GpuDriver.Expect(da.CtxCreate(Ctx, VirtioGpuCapsetId.CrossDomain, "a"), "A CTX_CREATE");
        // The host's cross-domain contexts hand out HOST3D memory only for their own items, so the
        // mapped blob is a GUEST blob in A's RAM memfd (MAP_BLOB → SHMEM_MAP of that region).
        var mappedFb = FrameBuffer.Allocate(a.Ram, 32, 32, VirtioGpuFormat.B8G8R8X8Unorm, scattered: false);
        GpuDriver.Expect(da.CreateBlob(MappedBlob, VirtioGpuResourceCreateBlob.MemGuest, VirtioGpuResourceCreateBlob.FlagUseMappable | VirtioGpuResourceCreateBlob.FlagUseShareable, mappedFb.Length, mappedFb.Entries), "A CREATE_BLOB mappable");
        Assert.Equal(OkMapInfo, da.MapBlob(MappedBlob, MapAt).Type);
        Assert.Equal(HostVisibleAccess.Mapped, a.HostVisible!.Write(MapAt, [1, 2, 3, 4]));
        GpuDriver.Expect(da.CtxAttachResource(Ctx, MappedBlob), "A CTX_ATTACH");
        var cursorFb = FrameBuffer.Allocate(a.Ram, 64, 64, VirtioGpuFormat.B8G8R8A8Unorm, scattered: true);
        GpuDriver.Expect(da.CreateResource2D(CursorRes, VirtioGpuFormat.B8G8R8A8Unorm, 64, 64), "A cursor resource");
        GpuDriver.Expect(da.AttachBacking(CursorRes, cursorFb.Entries), "A cursor backing");
        da.UpdateCursor(0, 5, 5, CursorRes, 0, 0);
        Assert.True(_rig.ComposeUntil(() => _rig.ZoneShows(0, (x, y) => PixelA((uint)x, (uint)y))), "A's picture never showed");
        var before = _rig.ZonePixels(0);
        var statsA = _rig.Host.DeviceStats("vm0")!;
        (int resA, int mappedA) = (statsA.Resources, statsA.MappedBlobs);
        Assert.Equal((4, 1), (resA, mappedA));

        using var b = _rig.Connect(1);
        var db = b.Driver;
        var full = new VirtioGpuRect(0, 0, MultiVmRig.W, MultiVmRig.H);
        var tried = new List<string>();
        void Expect(VirtioGpuCtrlType expected, GpuReply reply, string what)
        {
            tried.Add(what);
            Assert.True(reply.Type == expected, $"B {what}: {reply.Type}, expected {expected}");
        }

        // Every command that names a resource, with each of A's ids.
        foreach (uint id in new[] { Res2D, GuestBlob, MappedBlob, CursorRes })
        {
            Expect(ErrInvalidResourceId, db.TransferToHost2D(id, new VirtioGpuRect(0, 0, 1, 1), 0), $"TRANSFER_TO_HOST_2D {id}");
            Expect(ErrInvalidResourceId, db.Flush(id, new VirtioGpuRect(0, 0, 1, 1)), $"RESOURCE_FLUSH {id}");
            Expect(ErrInvalidResourceId, db.SetScanout(0, id, full), $"SET_SCANOUT {id}");
            Expect(ErrInvalidResourceId, db.SetScanoutBlob(0, id, full, MultiVmRig.W, MultiVmRig.H, VirtioGpuFormat.B8G8R8X8Unorm, MultiVmRig.W * 4), $"SET_SCANOUT_BLOB {id}");
            Expect(ErrInvalidResourceId, db.AttachBacking(id, [new GuestBuffer(b.Ram.Allocator.Allocate(4096), 4096)]), $"ATTACH_BACKING {id}");
            Expect(ErrInvalidResourceId, db.DetachBacking(id), $"DETACH_BACKING {id}");
            Expect(ErrInvalidResourceId, db.MapBlob(id, 2 * MapAt), $"MAP_BLOB {id}");
            Expect(ErrInvalidResourceId, db.UnmapBlob(id), $"UNMAP_BLOB {id}");
            Expect(ErrInvalidResourceId, db.AssignUuid(id), $"ASSIGN_UUID {id}");
            Expect(ErrInvalidResourceId, db.Unref(id), $"RESOURCE_UNREF {id}");
        }
        // Everything that names a context.
        Expect(ErrInvalidContextId, db.CtxDestroy(Ctx), "CTX_DESTROY");
        Expect(ErrInvalidContextId, db.CtxAttachResource(Ctx, MappedBlob), "CTX_ATTACH_RESOURCE");
        Expect(ErrInvalidContextId, db.CtxDetachResource(Ctx, MappedBlob), "CTX_DETACH_RESOURCE");
        Expect(ErrInvalidContextId, db.Submit3D(Ctx, new byte[8]), "SUBMIT_3D");
        Expect(ErrInvalidContextId, db.CreateBlob(9, VirtioGpuResourceCreateBlob.MemHost3D, VirtioGpuResourceCreateBlob.FlagUseMappable, 4096, blobId: 1, ctxId: Ctx), "CREATE_BLOB host3d in A's ctx");
        // Cursor commands with A's cursor resource: no response type on the cursor queue; B's own cursor only.
        db.UpdateCursor(0, 10, 10, CursorRes, 0, 0);
        db.MoveCursor(0, 20, 20, CursorRes);
        tried.Add("UPDATE_CURSOR / MOVE_CURSOR");
        // Scanout ids are per device: B's scanout 0 is B's; disabling it leaves A's alone.
        Expect(OkNoData, db.SetScanout(0, 0, default), "SET_SCANOUT 0 disable (B's own scanout)");
        Expect(ErrInvalidScanoutId, db.SetScanout(1, 0, default), "SET_SCANOUT 1 (beyond B's scanouts)");

        // B's own namespace: the same ids are B's own objects, independent of A's.
        MultiVmRig.Draw2D(b, Res2D, PixelB);
        Expect(OkNoData, db.CtxCreate(Ctx, VirtioGpuCapsetId.CrossDomain, "b"), "CTX_CREATE same id");
        var bFb = FrameBuffer.Allocate(b.Ram, 32, 32, VirtioGpuFormat.B8G8R8X8Unorm, scattered: false);
        Expect(OkNoData, db.CreateBlob(MappedBlob, VirtioGpuResourceCreateBlob.MemGuest, VirtioGpuResourceCreateBlob.FlagUseMappable, bFb.Length, bFb.Entries), "CREATE_BLOB same id");
        Expect(OkMapInfo, db.MapBlob(MappedBlob, MapAt), "MAP_BLOB same offset in B's region");
        Assert.Equal(HostVisibleAccess.Mapped, b.HostVisible!.Write(MapAt, [9, 9, 9, 9]));

        Assert.True(_rig.ComposeUntil(() => _rig.ZoneShows(1, (x, y) => PixelB((uint)x, (uint)y))), "B's own picture never showed");
        Assert.Equal(before, _rig.ZonePixels(0));
        var after = _rig.Host.DeviceStats("vm0")!;
        Assert.Equal((resA, mappedA), (after.Resources, after.MappedBlobs));

        // A's blob memory was not touched by B's mapping at the same offset, and A still works.
        var readBack = new byte[4];
        Assert.Equal(HostVisibleAccess.Mapped, a.HostVisible.Read(MapAt, readBack));
        Assert.Equal(new byte[] { 1, 2, 3, 4 }, readBack);
        fbA.Fill((x, y) => PixelB(x, y) ^ 0x00FFFFFF);
        da.Present(Res2D, fbA, full);
        Assert.True(_rig.ComposeUntil(() => _rig.ZoneShows(0, (x, y) => PixelB((uint)x, (uint)y) ^ 0x00FFFFFF)), "A's next frame never showed");
        Assert.Equal(OkNoData, da.UnmapBlob(MappedBlob).Type);
        Assert.Equal(OkNoData, da.CtxDestroy(Ctx).Type);
        Assert.True(tried.Count >= 49, string.Join(", ", tried));
    }
}
