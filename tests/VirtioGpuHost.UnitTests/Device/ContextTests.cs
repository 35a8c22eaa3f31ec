using VirtioGpuHost.Device;
using VirtioGpuHost.Device.Wire;
using VirtioGpuHost.FrontEnd;
using VirtioGpuHost.TestKit;
using static VirtioGpuHost.UnitTests.Device.BlobTestKit;
using static VirtioGpuHost.UnitTests.Device.DeviceTestHelpers;

namespace VirtioGpuHost.UnitTests.Device;

/// <summary>CTX_CREATE/DESTROY/ATTACH/DETACH, SUBMIT_3D, and fences per (ctx_id, ring_idx) timeline.</summary>
public class ContextTests
{
    private const uint Ring = VirtioGpuCtrlHeader.FlagInfoRingIdx;

    /// <summary>Heads returned to the used ring after the first <paramref name="skip"/> elements.</summary>
    private static ushort[] UsedHeads(DeviceRig rig, int skip) =>
        rig.UsedElements(rig.ControlDriverQueue).Skip(skip).Select(e => (ushort)e.Head).ToArray();

    [Fact]
    public void CtxCreate_CrossDomain_Created()
    {
        using var rig = BlobRig();
        rig.Driver.CtxCreate(3, 5, "wayland-proxy").Is(VirtioGpuCtrlType.OkNoData);
        Assert.Equal([3u], rig.Device.ContextIds);
        rig.AssertNoWarnings();
    }

    [Theory]
    [InlineData(0u, 5u, "", VirtioGpuCtrlType.ErrInvalidContextId, "ctx_id 0")]
    [InlineData(7u, 6u, "", VirtioGpuCtrlType.ErrInvalidParameter, "capset 6")]
    [InlineData(7u, 0x105u, "", VirtioGpuCtrlType.ErrInvalidParameter, "context_init 0x105")]
    public void CtxCreate_Invalid_RefusedAndNothingCreated(uint ctx, uint init, string name, VirtioGpuCtrlType error, string field)
    {
        using var rig = BlobRig();
        rig.Driver.CtxCreate(ctx, init, name).Is(error);
        Assert.Empty(rig.Device.ContextIds);
        rig.AssertOneGuestError("CTX_CREATE", field);
    }

    [Fact]
    public void CtxCreate_VirglContextWithoutVirglCompat_Refused()
    {
        using var rig = BlobRig(new GpuDeviceOptions { Blob = true });
        rig.Driver.CtxCreate(7, 0).Is(VirtioGpuCtrlType.ErrInvalidParameter);
        Assert.Empty(rig.Device.ContextIds);
        rig.AssertOneGuestError("CTX_CREATE", "virgl");
    }

    [Fact]
    public void CtxCreate_VirglContextWithVirglCompat_CreatedWithoutImplementation()
    {
        // Offering VIRGL makes the Linux driver create a virgl context (context_init 0) per DRM client.
        using var rig = BlobRig(new GpuDeviceOptions { Blob = true, VirglCompat = true });
        rig.Driver.CtxCreate(4, 0, "insmod").Is(VirtioGpuCtrlType.OkNoData);
        Assert.Equal([4u], rig.Device.ContextIds);
        rig.AssertNoWarnings();
        rig.Driver.Submit3D(4, new byte[16]).Is(VirtioGpuCtrlType.ErrUnspec);
        rig.Driver.CtxDestroy(4).Is(VirtioGpuCtrlType.OkNoData);
        Assert.Empty(rig.Device.ContextIds);
    }

    [Fact]
    public void CtxCreate_Existing_ErrInvalidContextId()
    {
        using var rig = BlobRig();
        rig.NewContext(1);
        rig.Driver.CtxCreate(1, 5).Is(VirtioGpuCtrlType.ErrInvalidContextId);
        rig.AssertOneGuestError("CTX_CREATE", "already exists");
    }

    [Fact]
    public void CtxCreate_NameLengthOver64_ErrInvalidParameter()
    {
        using var rig = BlobRig();
        var c = new VirtioGpuCtxCreate { Header = rig.Driver.Header(VirtioGpuCtrlType.CtxCreate, 1u), ContextInit = 5, NameLength = 65 };
        rig.Driver.Submit(c).Is(VirtioGpuCtrlType.ErrInvalidParameter);
        Assert.Empty(rig.Device.ContextIds);
        rig.AssertOneGuestError("nlen 65");
    }

    [Fact]
    public void CtxCreate_PastLimit_ErrOutOfMemory()
    {
        using var rig = BlobRig(new GpuDeviceOptions { Blob = true, MaxContexts = 2 });
        rig.NewContext(1);
        rig.NewContext(2);
        rig.Driver.CtxCreate(3, 5).Is(VirtioGpuCtrlType.ErrOutOfMemory);
        Assert.Equal(2, rig.Device.ContextIds.Count);
        rig.AssertOneGuestError("limit of 2 contexts");
    }

    [Fact]
    public void CtxCreate_DebugName_SanitisedForLogs()
    {
        var capset = new FakeCapset();
        using var rig = BlobRig(Options([capset]));
        var c = new VirtioGpuCtxCreate { Header = rig.Driver.Header(VirtioGpuCtrlType.CtxCreate, 1u), ContextInit = 5, NameLength = 5 };
        "ab\ncd"u8.CopyTo(c.DebugName);
        rig.Driver.Submit(c).Is(VirtioGpuCtrlType.OkNoData);
        Assert.Equal("ab?cd", capset.Last!.Host.DebugName);
    }

    [Theory]
    [InlineData(VirtioGpuCtrlType.CtxCreate)]
    [InlineData(VirtioGpuCtrlType.CtxDestroy)]
    [InlineData(VirtioGpuCtrlType.CtxAttachResource)]
    [InlineData(VirtioGpuCtrlType.CtxDetachResource)]
    [InlineData(VirtioGpuCtrlType.Submit3D)]
    public void ContextCommands_ContextInitNotNegotiated_ErrUnspec(VirtioGpuCtrlType type)
    {
        using var rig = BlobRig();
        rig.Device.AcknowledgeFeatures(VirtioGpuFeatures.ResourceBlob);
        var bytes = new byte[96];
        Bytes(rig.Driver.Header(type, 1u)).CopyTo(bytes, 0);
        BitConverter.GetBytes(5u).CopyTo(bytes, 28);
        rig.Driver.Submit(bytes).Is(VirtioGpuCtrlType.ErrUnspec);
        Assert.Empty(rig.Device.ContextIds);
        rig.AssertOneGuestError(type.ToString(), "VIRTIO_GPU_F_CONTEXT_INIT was not negotiated");
    }

    [Theory]
    [InlineData(VirtioGpuCtrlType.ResourceCreate3D)]
    [InlineData(VirtioGpuCtrlType.TransferToHost3D)]
    [InlineData(VirtioGpuCtrlType.TransferFromHost3D)]
    public void Virgl3DCommands_WithVirglCompat_ErrUnspecNotImplemented(VirtioGpuCtrlType type)
    {
        using var rig = BlobRig();
        var bytes = new byte[72];
        Bytes(rig.Driver.Header(type)).CopyTo(bytes, 0);
        rig.Driver.Submit(bytes).Is(VirtioGpuCtrlType.ErrUnspec);
        rig.AssertOneGuestError(type.ToString(), "virgl 3D resources are not implemented");
    }

    [Fact]
    public void CtxDestroy_Unknown_ErrInvalidContextId()
    {
        using var rig = BlobRig();
        rig.Driver.CtxDestroy(9).Is(VirtioGpuCtrlType.ErrInvalidContextId);
        rig.AssertOneGuestError("CTX_DESTROY", "ctx_id 9");
    }

    [Fact]
    public void AttachDetach_TrackedOnBothSidesAndToldToTheContext()
    {
        var capset = new FakeCapset();
        using var rig = BlobRig(Options([capset]));
        rig.NewContext(1);
        rig.NewGuestBlob(10, 16, 16);
        rig.Driver.CtxAttachResource(1, 10).Is(VirtioGpuCtrlType.OkNoData);
        rig.Driver.CtxAttachResource(1, 10).Is(VirtioGpuCtrlType.OkNoData); // twice: no-op
        Assert.Equal([10u], rig.Device.ContextResources(1));
        Assert.Equal([10u], capset.Last!.Attached);
        Assert.Same(rig.Device.Resources[10], capset.Last.Host.AttachedResource(10));
        rig.Driver.CtxDetachResource(1, 10).Is(VirtioGpuCtrlType.OkNoData);
        rig.Driver.CtxDetachResource(1, 10).Is(VirtioGpuCtrlType.OkNoData); // not attached: no-op
        Assert.Empty(rig.Device.ContextResources(1));
        Assert.Equal([10u], capset.Last.Detached);
        rig.AssertNoWarnings();
    }

    [Fact]
    public void Attach_UnknownContextOrResource_Refused()
    {
        using var rig = BlobRig();
        rig.NewContext(1);
        rig.Driver.CtxAttachResource(2, 1).Is(VirtioGpuCtrlType.ErrInvalidContextId);
        rig.Driver.CtxAttachResource(1, 99).Is(VirtioGpuCtrlType.ErrInvalidResourceId);
        rig.Driver.CtxDetachResource(1, 99).Is(VirtioGpuCtrlType.ErrInvalidResourceId);
        Assert.Empty(rig.Device.ContextResources(1));
        Assert.Equal(3, rig.Logs.Warnings.Count());
    }

    [Fact]
    public void Unref_AttachedResource_DetachedFromItsContexts()
    {
        var capset = new FakeCapset();
        using var rig = BlobRig(Options([capset]));
        rig.NewContext(1);
        rig.Driver.CreateResource2D(4, VirtioGpuFormat.B8G8R8X8Unorm, 8, 8).Is(VirtioGpuCtrlType.OkNoData);
        rig.Driver.CtxAttachResource(1, 4).Is(VirtioGpuCtrlType.OkNoData);
        rig.Driver.Unref(4).Is(VirtioGpuCtrlType.OkNoData);
        Assert.Empty(rig.Device.ContextResources(1));
        Assert.Equal([4u], capset.Last!.Detached);
    }

    [Fact]
    public void CtxDestroy_DetachesResourcesAndDisposesTheContext()
    {
        var capset = new FakeCapset();
        using var rig = BlobRig(Options([capset]));
        rig.NewContext(1);
        rig.NewGuestBlob(10, 8, 8);
        rig.Driver.CtxAttachResource(1, 10).Is(VirtioGpuCtrlType.OkNoData);
        rig.Driver.CtxDestroy(1).Is(VirtioGpuCtrlType.OkNoData);
        Assert.Empty(rig.Device.ContextIds);
        Assert.True(capset.Last!.Disposed);
        Assert.Equal([10u], capset.Last.Detached);
        Assert.True(rig.Device.Resources.ContainsKey(10)); // the resource stays
        rig.Driver.CtxAttachResource(1, 10).Is(VirtioGpuCtrlType.ErrInvalidContextId);
    }

    // ---- SUBMIT_3D ----

    [Fact]
    public void Submit3D_ContextWithoutImplementation_ErrUnspec()
    {
        using var rig = BlobRig();
        rig.NewContext(1);
        rig.Driver.Submit3D(1, new byte[16]).Is(VirtioGpuCtrlType.ErrUnspec);
        rig.AssertOneGuestError("SUBMIT_3D", "no command implementation");
    }

    [Fact]
    public void Submit3D_UnknownContext_ErrInvalidContextId()
    {
        using var rig = BlobRig();
        rig.Driver.Submit3D(4, new byte[16]).Is(VirtioGpuCtrlType.ErrInvalidContextId);
        rig.AssertOneGuestError("SUBMIT_3D", "ctx_id 4");
    }

    [Fact]
    public void Submit3D_SizeBeyondTheCommand_ErrInvalidParameter()
    {
        var capset = new FakeCapset();
        using var rig = BlobRig(Options([capset]));
        rig.NewContext(1);
        var bytes = rig.Driver.Submit3DCommand(1, new byte[16]);
        BitConverter.GetBytes(17u).CopyTo(bytes, 24);
        rig.Driver.Submit(bytes).Is(VirtioGpuCtrlType.ErrInvalidParameter);
        Assert.Empty(capset.Last!.Submits);
        rig.AssertOneGuestError("SUBMIT_3D", "size 17");
    }

    [Fact]
    public void Submit3D_ToTheContext_BytesDeliveredAndErrorsAnswered()
    {
        var capset = new FakeCapset();
        using var rig = BlobRig(Options([capset]));
        rig.NewContext(1);
        rig.Driver.Submit3D(1, [1, 2, 3, 4, 5, 6, 7, 8]).Is(VirtioGpuCtrlType.OkNoData);
        Assert.Equal(new byte[] { 1, 2, 3, 4, 5, 6, 7, 8 }, Assert.Single(capset.Last!.Submits));
        capset.Last.Refuse = new(VirtioGpuCtrlType.ErrInvalidParameter, "bad command 9");
        rig.Driver.Submit3D(1, [9, 0, 8, 0, 0, 0, 0, 0]).Is(VirtioGpuCtrlType.ErrInvalidParameter);
        rig.AssertOneGuestError("SUBMIT_3D", "ctx_id 1", "bad command 9");
    }

    [Fact]
    public void Submit3D_RingIdxOver63_ErrInvalidParameter()
    {
        var capset = new FakeCapset();
        using var rig = BlobRig(Options([capset]));
        rig.NewContext(1);
        rig.Driver.Submit3D(1, new byte[8], fence: true, ringIdx: 64).Is(VirtioGpuCtrlType.ErrInvalidParameter);
        Assert.Empty(capset.Last!.Submits);
    }

    [Fact]
    public void Fence_SignalledAtOnce_EchoedWithCtxAndRing()
    {
        var capset = new FakeCapset();
        using var rig = BlobRig(Options([capset]));
        rig.NewContext(3);
        var h = rig.Driver.Submit3D(3, new byte[8], fence: true, ringIdx: 0).Is(VirtioGpuCtrlType.OkNoData).Header;
        Assert.Equal((VirtioGpuCtrlHeader.FlagFence | Ring, 3u, (byte)0), (h.Flags, h.CtxId, h.RingIdx));
        Assert.Equal([((byte?)0, h.FenceId)], capset.Last!.Fences);
        Assert.Equal(0, rig.ControlProcessor.HeldFences);
    }

    [Fact]
    public void Fence_HeldByTheContext_LaterCommandsGoOnAndItIsAnsweredWhenSignalled()
    {
        var capset = new FakeCapset();
        using var rig = BlobRig(Options([capset]));
        rig.NewContext(1);
        int before = rig.UsedElements(rig.ControlDriverQueue).Count;
        var ctx = capset.Last!;
        ctx.HeldRings.Add(1);
        var poll = rig.Driver.Queue(rig.Driver.Submit3DCommand(1, new byte[16], fence: true, ringIdx: 1));
        var create = rig.Driver.Queue(Bytes(new VirtioGpuResourceCreate2D { Header = rig.Driver.Header(VirtioGpuCtrlType.ResourceCreate2D), ResourceId = 5, Format = VirtioGpuFormat.B8G8R8X8Unorm, Width = 4, Height = 4 }));
        var query = rig.Driver.Queue(rig.Driver.Submit3DCommand(1, new byte[16], fence: true, ringIdx: 0));
        rig.Driver.KickControl();
        // The POLL is held; the 2D command and the query ring's fence are answered past it.
        Assert.Equal([create.Head, query.Head], UsedHeads(rig, before));
        Assert.Equal(1, rig.ControlProcessor.HeldFences);
        Assert.Equal(1, rig.Device.Fences.Count);
        rig.Driver.Wait(create).Is(VirtioGpuCtrlType.OkNoData);
        rig.Driver.Wait(query).Is(VirtioGpuCtrlType.OkNoData);

        ulong pollFence = ctx.Fences[0].Fence;
        ctx.Host.SignalFence(1, pollFence);
        var h = rig.Driver.Wait(poll).Is(VirtioGpuCtrlType.OkNoData).Header; // runs the posted release
        Assert.Equal((VirtioGpuCtrlHeader.FlagFence | Ring, pollFence, 1u, (byte)1), (h.Flags, h.FenceId, h.CtxId, h.RingIdx));
        Assert.Equal(0, rig.ControlProcessor.HeldFences);
        Assert.Equal(0, rig.Device.Fences.Count);
    }

    [Fact]
    public void Fence_SameTimeline_LaterFenceWaitsForTheEarlierOne()
    {
        var capset = new FakeCapset();
        using var rig = BlobRig(Options([capset]));
        rig.NewContext(1);
        int before = rig.UsedElements(rig.ControlDriverQueue).Count;
        var ctx = capset.Last!;
        ctx.HeldRings.Add(1);
        var first = rig.Driver.Queue(rig.Driver.Submit3DCommand(1, new byte[8], fence: true, ringIdx: 1));
        rig.Driver.KickControl();
        ctx.HeldRings.Clear(); // the second one is signalled at once, but its timeline is behind the first
        var second = rig.Driver.Queue(rig.Driver.Submit3DCommand(1, new byte[8], fence: true, ringIdx: 1));
        var otherCtx = rig.Driver.Queue(Bytes(rig.Driver.Header(VirtioGpuCtrlType.GetDisplayInfo, fence: true)), VirtioGpuResponseSizes.DisplayInfo);
        rig.Driver.KickControl();
        Assert.Equal([otherCtx.Head], UsedHeads(rig, before));
        Assert.Equal(2, rig.ControlProcessor.HeldFences);

        ctx.Host.SignalFence(1, ctx.Fences[0].Fence);
        rig.Scheduler.RunPending();
        Assert.Equal([otherCtx.Head, first.Head, second.Head], UsedHeads(rig, before));
        rig.Driver.Wait(first).Is(VirtioGpuCtrlType.OkNoData);
        rig.Driver.Wait(second).Is(VirtioGpuCtrlType.OkNoData);
    }

    [Fact]
    public void Fence_SignalN_CompletesEveryEarlierFenceOfTheTimelineOnly()
    {
        var capset = new FakeCapset();
        using var rig = BlobRig(Options([capset]));
        rig.NewContext(1);
        int before = rig.UsedElements(rig.ControlDriverQueue).Count;
        var ctx = capset.Last!;
        ctx.HeldRings.UnionWith([1, 2]);
        var a = rig.Driver.Queue(rig.Driver.Submit3DCommand(1, new byte[8], fence: true, ringIdx: 1));
        var b = rig.Driver.Queue(rig.Driver.Submit3DCommand(1, new byte[8], fence: true, ringIdx: 1));
        var other = rig.Driver.Queue(rig.Driver.Submit3DCommand(1, new byte[8], fence: true, ringIdx: 2));
        rig.Driver.KickControl();
        Assert.Equal(3, rig.ControlProcessor.HeldFences);
        ctx.Host.SignalFence(1, ctx.Fences[1].Fence); // the later one: both on ring 1 complete
        rig.Scheduler.RunPending();
        Assert.Equal([a.Head, b.Head], UsedHeads(rig, before));
        Assert.Equal(1, rig.ControlProcessor.HeldFences);
        // Destroying the context releases what it never signalled.
        rig.Driver.Wait(a);
        rig.Driver.Wait(b);
        rig.Driver.CtxDestroy(1).Is(VirtioGpuCtrlType.OkNoData);
        rig.Driver.Wait(other).Is(VirtioGpuCtrlType.OkNoData);
        Assert.Equal(0, rig.ControlProcessor.HeldFences);
    }

    [Fact]
    public void Fence_RingStops_HeldFencesAnsweredErrUnspec()
    {
        var capset = new FakeCapset();
        using var rig = BlobRig(Options([capset]));
        rig.NewContext(1);
        capset.Last!.HeldRings.Add(1);
        var poll = rig.Driver.Queue(rig.Driver.Submit3DCommand(1, new byte[8], fence: true, ringIdx: 1));
        rig.Driver.KickControl();
        rig.ControlProcessor.FinishInFlight();
        var h = rig.Driver.Wait(poll).Is(VirtioGpuCtrlType.ErrUnspec).Header;
        Assert.Equal(VirtioGpuCtrlHeader.FlagFence | Ring, h.Flags);
        // A late signal finds nothing to answer.
        int used = rig.UsedElements(rig.ControlDriverQueue).Count;
        capset.Last.Host.SignalFence(1, capset.Last.Fences[0].Fence);
        rig.Scheduler.RunPending();
        Assert.Equal(used, rig.UsedElements(rig.ControlDriverQueue).Count);
    }

    [Fact]
    public void Reset_DestroysContextsAndReleasesFences()
    {
        var capset = new FakeCapset();
        using var rig = BlobRig(Options([capset]));
        rig.NewContext(1);
        capset.Last!.HeldRings.Add(1);
        rig.Driver.Queue(rig.Driver.Submit3DCommand(1, new byte[8], fence: true, ringIdx: 1));
        rig.Driver.KickControl();
        Assert.Equal(1, rig.Device.Fences.Count);
        rig.Device.ResetState();
        Assert.Empty(rig.Device.ContextIds);
        Assert.Equal(0, rig.Device.Fences.Count);
        Assert.True(capset.Last.Disposed);
    }
}
