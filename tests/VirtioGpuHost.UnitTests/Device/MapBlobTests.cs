using VirtioGpuHost.Device.Wire;
using VirtioGpuHost.FrontEnd;
using VirtioGpuHost.TestKit;
using static VirtioGpuHost.UnitTests.Device.BlobTestKit;
using static VirtioGpuHost.UnitTests.Device.DeviceTestHelpers;

namespace VirtioGpuHost.UnitTests.Device;

/// <summary>RESOURCE_MAP_BLOB / RESOURCE_UNMAP_BLOB through the host-visible region, and what unref, reset and disconnect do to mappings.</summary>
public class MapBlobTests
{
    private const ulong Mib = 1 << 20;

    private static (DeviceRig Rig, FakeHostVisibleRegion Region) MapRig(bool sharedRam = true)
    {
        var rig = BlobRig(sharedRam: sharedRam);
        var region = new FakeHostVisibleRegion(64 * Mib);
        rig.Device.HostVisible = region;
        return (rig, region);
    }

    [Fact]
    public void MapHostBlob_OkMapInfoCachedAndTheMemfdMapped()
    {
        var (rig, region) = MapRig();
        using var _ = rig;
        rig.NewHostBlob(1, 5000);
        var reply = rig.Driver.MapBlob(1, 2 * Mib).Is(VirtioGpuCtrlType.OkMapInfo);
        Assert.Equal((32u, VirtioGpuMapInfo.CacheCached), (reply.Written, reply.MapInfo));
        var m = Assert.Single(region.Maps);
        Assert.Same(rig.Blob(1).HostMemory, m.Memory);
        Assert.Equal((0UL, 2 * Mib, 8192UL, true), (m.Offset, m.ShmOffset, m.Length, m.Writable));
        Assert.Equal(1, rig.Device.MappedBlobs);
        Assert.Equal((2 * Mib, 8192UL), rig.Blob(1).MappedRange);
        rig.AssertNoWarnings();
    }

    [Fact]
    public void MapGuestBlob_ContiguousInAnFdRegion_RegionFdMappedAtItsOffset()
    {
        var (rig, region) = MapRig();
        using var _ = rig;
        var fb = rig.NewGuestBlob(1, 32, 32, flags: Mappable);
        rig.Driver.MapBlob(1, 0).Is(VirtioGpuCtrlType.OkMapInfo);
        var m = Assert.Single(region.Maps);
        Assert.Same(rig.Ram.Block, m.Memory);
        Assert.NotNull(m.Memory.Fd);
        Assert.Equal((fb.Entries[0].Address.Value - rig.Ram.GuestBase.Value, 4096UL), (m.Offset, m.Length));
    }

    [Fact]
    public void MapGuestBlob_Scattered_ErrInvalidParameter()
    {
        var (rig, region) = MapRig();
        using var _ = rig;
        rig.NewGuestBlob(1, 32, 64, scattered: true, flags: Mappable);
        rig.Driver.MapBlob(1, 0).Is(VirtioGpuCtrlType.ErrInvalidParameter);
        Assert.Empty(region.Maps);
        rig.AssertOneGuestError("RESOURCE_MAP_BLOB", "not contiguous");
    }

    [Fact]
    public void MapGuestBlob_RegionWithoutFd_ErrInvalidParameter()
    {
        var (rig, region) = MapRig(sharedRam: false);
        using var _ = rig;
        rig.NewGuestBlob(1, 32, 32, flags: Mappable);
        rig.Driver.MapBlob(1, 0).Is(VirtioGpuCtrlType.ErrInvalidParameter);
        Assert.Empty(region.Maps);
        rig.AssertOneGuestError("RESOURCE_MAP_BLOB", "no fd");
    }

    public static TheoryData<string, VirtioGpuCtrlType, string> BadMaps => new()
    {
        { "unknown", VirtioGpuCtrlType.ErrInvalidResourceId, "resource_id 9" },
        { "2d", VirtioGpuCtrlType.ErrInvalidParameter, "not a blob" },
        { "not-mappable", VirtioGpuCtrlType.ErrInvalidParameter, "USE_MAPPABLE" },
        { "already-mapped", VirtioGpuCtrlType.ErrInvalidParameter, "already mapped" },
        { "unaligned", VirtioGpuCtrlType.ErrInvalidParameter, "not page-aligned" },
        { "past-end", VirtioGpuCtrlType.ErrInvalidParameter, "outside the" },
        { "straddles-end", VirtioGpuCtrlType.ErrInvalidParameter, "outside the" },
        { "offset-overflow", VirtioGpuCtrlType.ErrInvalidParameter, "outside the" },
        { "overlap", VirtioGpuCtrlType.ErrInvalidParameter, "overlaps blob 1" },
        { "short", VirtioGpuCtrlType.ErrUnspec, "shorter" },
    };

    [Theory]
    [MemberData(nameof(BadMaps))]
    public void MapBlob_Invalid_RefusedAndNothingMapped(string which, VirtioGpuCtrlType error, string field)
    {
        var (rig, region) = MapRig();
        using var _ = rig;
        rig.NewHostBlob(1, 8192);
        rig.Driver.MapBlob(1, 0).Is(VirtioGpuCtrlType.OkMapInfo);
        rig.NewHostBlob(2, 8192);
        rig.NewHostBlob(3, 8192, flags: Shareable);
        rig.Driver.CreateResource2D(4, VirtioGpuFormat.B8G8R8X8Unorm, 4, 4).Is(VirtioGpuCtrlType.OkNoData);
        var d = rig.Driver;
        var reply = which switch
        {
            "unknown" => d.MapBlob(9, Mib),
            "2d" => d.MapBlob(4, Mib),
            "not-mappable" => d.MapBlob(3, Mib),
            "already-mapped" => d.MapBlob(1, Mib),
            "unaligned" => d.MapBlob(2, Mib + 512),
            "past-end" => d.MapBlob(2, 64 * Mib),
            "straddles-end" => d.MapBlob(2, 64 * Mib - 4096),
            "offset-overflow" => d.MapBlob(2, ulong.MaxValue - 4095),
            "overlap" => d.MapBlob(2, 4096),
            "short" => d.Submit(Bytes(new VirtioGpuResourceRef { Header = d.Header(VirtioGpuCtrlType.ResourceMapBlob), ResourceId = 2 })),
            _ => throw new ArgumentException(which),
        };
        reply.Is(error);
        Assert.Single(region.Maps);
        Assert.Equal(1, rig.Device.MappedBlobs);
        rig.AssertOneGuestError("RESOURCE_MAP_BLOB", field);
    }

    [Fact]
    public void MapBlob_NoHostVisibleRegion_ErrUnspec()
    {
        using var rig = BlobRig();
        rig.NewHostBlob(1, 4096);
        rig.Driver.MapBlob(1, 0).Is(VirtioGpuCtrlType.ErrUnspec);
        rig.Driver.UnmapBlob(1).Is(VirtioGpuCtrlType.ErrUnspec);
        Assert.Equal(2, rig.Logs.Warnings.Count(w => w.Contains("no host-visible region")));
    }

    [Fact]
    public void MapBlob_NotNegotiated_ErrUnspec()
    {
        var (rig, region) = MapRig();
        using var _ = rig;
        rig.NewHostBlob(1, 4096);
        rig.Device.AcknowledgeFeatures(VirtioGpuFeatures.ContextInit);
        rig.Driver.MapBlob(1, 0).Is(VirtioGpuCtrlType.ErrUnspec);
        Assert.Empty(region.Maps);
    }

    [Fact]
    public void MapBlob_VmmRefuses_ErrUnspecAndTheRangeIsFreeAgain()
    {
        var (rig, region) = MapRig();
        using var _ = rig;
        rig.NewHostBlob(1, 4096);
        region.Refuse = true;
        rig.Driver.MapBlob(1, 0).Is(VirtioGpuCtrlType.ErrUnspec);
        Assert.Equal(0, rig.Device.MappedBlobs);
        region.Refuse = false;
        rig.Driver.MapBlob(1, 0).Is(VirtioGpuCtrlType.OkMapInfo);
        Assert.Equal(1, rig.Device.MappedBlobs);
    }

    [Fact]
    public void MapBlob_VmmAnswersLater_RingWaitsAndAnswersInOrder()
    {
        var (rig, region) = MapRig();
        using var _ = rig;
        rig.NewHostBlob(1, 4096);
        region.Defer = true;
        var map = rig.Driver.Queue(Bytes(new VirtioGpuResourceMapBlob { Header = rig.Driver.Header(VirtioGpuCtrlType.ResourceMapBlob), ResourceId = 1, Offset = 0 }), 32);
        var next = rig.Driver.Queue(Bytes(rig.Driver.Header(VirtioGpuCtrlType.GetDisplayInfo)), VirtioGpuResponseSizes.DisplayInfo);
        int before = rig.UsedElements(rig.ControlDriverQueue).Count;
        rig.Driver.KickControl();
        Assert.True(rig.ControlProcessor.IsWaiting);
        Assert.Equal(before, rig.UsedElements(rig.ControlDriverQueue).Count);
        // No display timeout applies: the VMM's channel has its own.
        rig.Scheduler.Advance(TimeSpan.FromSeconds(10));
        Assert.True(rig.ControlProcessor.IsWaiting);

        region.PendingMaps[0].SetResult(true);
        Assert.Equal(VirtioGpuMapInfo.CacheCached, rig.Driver.Wait(map).Is(VirtioGpuCtrlType.OkMapInfo).MapInfo);
        rig.Driver.Wait(next).Is(VirtioGpuCtrlType.OkDisplayInfo);
        var heads = rig.UsedElements(rig.ControlDriverQueue).Skip(before).Select(e => (ushort)e.Head);
        Assert.Equal([map.Head, next.Head], heads);
        Assert.Equal(1, rig.Device.MappedBlobs);
    }

    [Fact]
    public void MapBlob_RingStopsWhileMapping_ErrUnspecAndTheLateMappingIsUndone()
    {
        var (rig, region) = MapRig();
        using var _ = rig;
        rig.NewHostBlob(1, 4096);
        region.Defer = true;
        var map = rig.Driver.Queue(Bytes(new VirtioGpuResourceMapBlob { Header = rig.Driver.Header(VirtioGpuCtrlType.ResourceMapBlob), ResourceId = 1, Offset = 8192 }), 32);
        rig.Driver.KickControl();
        rig.ControlProcessor.FinishInFlight();
        rig.Driver.Wait(map).Is(VirtioGpuCtrlType.ErrUnspec);
        Assert.Null(rig.Blob(1).MappedRange);
        region.PendingMaps[0].SetResult(true);
        Assert.Equal([(8192UL, 4096UL)], region.Unmaps);
        Assert.Equal(0, rig.Device.MappedBlobs);
    }

    [Fact]
    public void UnmapBlob_Mapped_UnmappedAndMappableAgain()
    {
        var (rig, region) = MapRig();
        using var _ = rig;
        rig.NewHostBlob(1, 4096);
        rig.Driver.MapBlob(1, Mib).Is(VirtioGpuCtrlType.OkMapInfo);
        rig.Driver.UnmapBlob(1).Is(VirtioGpuCtrlType.OkNoData);
        Assert.Equal([(Mib, 4096UL)], region.Unmaps);
        Assert.Equal(0, rig.Device.MappedBlobs);
        rig.Driver.MapBlob(1, Mib).Is(VirtioGpuCtrlType.OkMapInfo);
        rig.AssertNoWarnings();
    }

    [Fact]
    public void UnmapBlob_NotMappedOrUnknown_Refused()
    {
        var (rig, region) = MapRig();
        using var _ = rig;
        rig.NewHostBlob(1, 4096);
        rig.Driver.UnmapBlob(1).Is(VirtioGpuCtrlType.ErrInvalidParameter);
        rig.Driver.UnmapBlob(7).Is(VirtioGpuCtrlType.ErrInvalidResourceId);
        Assert.Empty(region.Unmaps);
        Assert.Contains(rig.Logs.Warnings, w => w.Contains("RESOURCE_UNMAP_BLOB") && w.Contains("not a mapped blob"));
    }

    [Fact]
    public void Unref_MappedBlob_UnmapsFirst()
    {
        var (rig, region) = MapRig();
        using var _ = rig;
        rig.NewHostBlob(1, 4096);
        rig.Driver.MapBlob(1, 4 * Mib).Is(VirtioGpuCtrlType.OkMapInfo);
        rig.Driver.Unref(1).Is(VirtioGpuCtrlType.OkNoData);
        Assert.Equal([(4 * Mib, 4096UL)], region.Unmaps);
        Assert.Equal(0, rig.Device.MappedBlobs);
        // The range is free for the next blob.
        rig.NewHostBlob(2, 4096);
        rig.Driver.MapBlob(2, 4 * Mib).Is(VirtioGpuCtrlType.OkMapInfo);
    }

    [Fact]
    public void Reset_UnmapsEveryMapping()
    {
        var (rig, region) = MapRig();
        using var _ = rig;
        rig.NewHostBlob(1, 4096);
        rig.NewHostBlob(2, 4096);
        rig.Driver.MapBlob(1, 0).Is(VirtioGpuCtrlType.OkMapInfo);
        rig.Driver.MapBlob(2, Mib).Is(VirtioGpuCtrlType.OkMapInfo);
        rig.Device.ResetState();
        Assert.Equal([(0UL, 4096UL), (Mib, 4096UL)], region.Unmaps.OrderBy(u => u.ShmOffset));
        Assert.Equal(0, rig.Device.MappedBlobs);
        Assert.Empty(rig.Device.Resources);
    }

    [Fact]
    public void Dispose_DropsMappingsWithoutUnmapping()
    {
        var (rig, region) = MapRig();
        rig.NewHostBlob(1, 4096);
        rig.Driver.MapBlob(1, 0).Is(VirtioGpuCtrlType.OkMapInfo);
        rig.Dispose();
        Assert.Empty(region.Unmaps);
        Assert.Equal(0, rig.Device.MappedBlobs);
    }
}
