using VirtioGpuHost.Device;
using VirtioGpuHost.Device.Wire;
using VirtioGpuHost.TestKit;
using static VirtioGpuHost.UnitTests.Device.BlobTestKit;
using static VirtioGpuHost.UnitTests.Device.DeviceTestHelpers;

namespace VirtioGpuHost.UnitTests.Device;

/// <summary>
/// Per-VM limits (the layout's max_resources, max_host_memory_mib, max_blob_mappings,
/// max_contexts): past each one the guest gets ERR_OUT_OF_MEMORY, the device stays usable,
/// freeing makes room again, and another VM's device (its own options and counters) is not
/// affected.
/// </summary>
public class QuotaTests
{
    private const ulong Mib = 1 << 20;

    public enum Limit { Resources, HostMemory, BlobMappings, Contexts }

    private static GpuDeviceOptions OptionsFor(Limit limit) => limit switch
    {
        Limit.Resources => new GpuDeviceOptions { Blob = true, MaxResources = 2 },
        Limit.HostMemory => new GpuDeviceOptions { Blob = true, MaxHostMemory = 2 * ResourceTests.Charge(64, 64) },
        Limit.BlobMappings => new GpuDeviceOptions { Blob = true, MaxBlobMappings = 2 },
        Limit.Contexts => new GpuDeviceOptions { Blob = true, MaxContexts = 2 },
        _ => throw new ArgumentOutOfRangeException(nameof(limit)),
    };

    /// <summary>Creates object <paramref name="n"/> (1-based) of the kind the limit counts; returns the reply type.</summary>
    private static VirtioGpuCtrlType Take(DeviceRig rig, Limit limit, uint n) => limit switch
    {
        Limit.Resources or Limit.HostMemory => rig.Driver.CreateResource2D(n, VirtioGpuFormat.B8G8R8X8Unorm, 64, 64).Type,
        Limit.BlobMappings => MapNew(rig, n),
        Limit.Contexts => rig.Driver.CtxCreate(n, VirtioGpuCapsetId.CrossDomain, "q").Type,
        _ => throw new ArgumentOutOfRangeException(nameof(limit)),
    };

    private static VirtioGpuCtrlType MapNew(DeviceRig rig, uint n)
    {
        if (!rig.Device.Resources.ContainsKey(100 + n)) rig.NewHostBlob(100 + n, 4096);
        return rig.Driver.MapBlob(100 + n, n * Mib).Type;
    }

    /// <summary>Frees object <paramref name="n"/>.</summary>
    private static void Give(DeviceRig rig, Limit limit, uint n)
    {
        switch (limit)
        {
            case Limit.Resources or Limit.HostMemory: rig.Driver.Unref(n).Is(VirtioGpuCtrlType.OkNoData); break;
            case Limit.BlobMappings: rig.Driver.UnmapBlob(100 + n).Is(VirtioGpuCtrlType.OkNoData); break;
            case Limit.Contexts: rig.Driver.CtxDestroy(n).Is(VirtioGpuCtrlType.OkNoData); break;
        }
    }

    private static VirtioGpuCtrlType Ok(Limit limit) => limit == Limit.BlobMappings ? VirtioGpuCtrlType.OkMapInfo : VirtioGpuCtrlType.OkNoData;

    private static DeviceRig Rig(GpuDeviceOptions options)
    {
        var rig = BlobRig(options);
        rig.Device.HostVisible = new FakeHostVisibleRegion(64 * Mib);
        return rig;
    }

    [Theory]
    [InlineData(Limit.Resources, "2 resources")]
    [InlineData(Limit.HostMemory, "host memory limit")]
    [InlineData(Limit.BlobMappings, "2 mapped blobs")]
    [InlineData(Limit.Contexts, "2 contexts")]
    public void PastTheLimit_ErrOutOfMemory_FreeingMakesRoom_OtherVmUnaffected(Limit limit, string logged)
    {
        using var vmA = Rig(OptionsFor(limit));
        using var vmB = Rig(OptionsFor(limit));
        Assert.Equal(Ok(limit), Take(vmA, limit, 1));
        Assert.Equal(Ok(limit), Take(vmA, limit, 2));
        int warningsBefore = vmA.Logs.Warnings.Count();

        // Past the limit: the spec's error, one log line naming the connection, no state change.
        int resources = vmA.Device.Resources.Count;
        ulong memory = vmA.Device.HostMemoryInUse;
        Assert.Equal(VirtioGpuCtrlType.ErrOutOfMemory, Take(vmA, limit, 3));
        var line = Assert.Single(vmA.Logs.Warnings.Skip(warningsBefore));
        Assert.Contains(logged, line);
        Assert.Contains(Connection, line);
        if (limit != Limit.BlobMappings)
        {
            Assert.Equal(resources, vmA.Device.Resources.Count);
            Assert.Equal(memory, vmA.Device.HostMemoryInUse);
        }
        else Assert.Equal(2, vmA.Device.MappedBlobs); // blob 103 exists, unmapped

        // The other VM's device has its own budget: it still gets everything its limit allows.
        Assert.Equal(Ok(limit), Take(vmB, limit, 1));
        Assert.Equal(Ok(limit), Take(vmB, limit, 2));
        vmB.AssertNoWarnings();

        // The device stays usable: unrelated commands work, and freeing one makes room again.
        vmA.Driver.GetDisplayInfo().Is(VirtioGpuCtrlType.OkDisplayInfo);
        Give(vmA, limit, 1);
        Assert.Equal(Ok(limit), Take(vmA, limit, 3));
        Assert.Equal(VirtioGpuCtrlType.ErrOutOfMemory, Take(vmA, limit, 4));
    }

    [Fact]
    public void MaxBlobMappingsZero_EveryMapRefused()
    {
        using var rig = Rig(new GpuDeviceOptions { Blob = true, MaxBlobMappings = 0 });
        rig.NewHostBlob(1, 4096);
        rig.Driver.MapBlob(1, 0).Is(VirtioGpuCtrlType.ErrOutOfMemory);
        rig.AssertOneGuestError("RESOURCE_MAP_BLOB", "limit of 0 mapped blobs");
    }

    [Fact]
    public void HostBlobs_ChargedToTheHostMemoryBudget()
    {
        using var rig = Rig(new GpuDeviceOptions { Blob = true, MaxHostMemory = 1 * Mib });
        rig.NewHostBlob(1, 768 * 1024);
        rig.Driver.CreateBlob(2, Host3D, Mappable, 512 * 1024, ctxId: 1).Is(VirtioGpuCtrlType.ErrOutOfMemory);
        rig.Driver.Unref(1).Is(VirtioGpuCtrlType.OkNoData);
        rig.Driver.CreateBlob(2, Host3D, Mappable, 512 * 1024, ctxId: 1).Is(VirtioGpuCtrlType.OkNoData);
    }

    [Fact]
    public void Options_NegativeLimits_Refused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new GpuDeviceOptions { MaxBlobMappings = -1 }.Validate());
        Assert.Throws<ArgumentOutOfRangeException>(() => new GpuDeviceOptions { MaxResources = 0 }.Validate());
    }
}
