using System.Runtime.InteropServices;
using VirtioGpuHost.Device;
using VirtioGpuHost.Device.Capsets;
using VirtioGpuHost.Device.Wire;
using VirtioGpuHost.TestKit;
using static VirtioGpuHost.UnitTests.Device.BlobTestKit;

namespace VirtioGpuHost.UnitTests.Device;

/// <summary>Features offered with Blob/VirglCompat, num_capsets, GET_CAPSET_INFO and GET_CAPSET.</summary>
public class CapsetTests
{
    [Fact]
    public void WireStructs_HaveTheSpecSizes()
    {
        Assert.Equal(56, Marshal.SizeOf<VirtioGpuResourceCreateBlob>());
        Assert.Equal(96, Marshal.SizeOf<VirtioGpuSetScanoutBlob>());
        Assert.Equal(96, Marshal.SizeOf<VirtioGpuCtxCreate>());
        Assert.Equal(32, Marshal.SizeOf<VirtioGpuCtxResource>());
        Assert.Equal(32, Marshal.SizeOf<VirtioGpuSubmit3D>());
        Assert.Equal(40, Marshal.SizeOf<VirtioGpuResourceMapBlob>());
        Assert.Equal(16, Marshal.SizeOf<VirtioGpuCapsetInfo>());
        Assert.Equal(64, (int)Marshal.OffsetOf<VirtioGpuSetScanoutBlob>(nameof(VirtioGpuSetScanoutBlob.Strides)));
        Assert.Equal(80, (int)Marshal.OffsetOf<VirtioGpuSetScanoutBlob>(nameof(VirtioGpuSetScanoutBlob.Offsets)));
        Assert.Equal(32, (int)Marshal.OffsetOf<VirtioGpuCtxCreate>(nameof(VirtioGpuCtxCreate.DebugName)));
    }

    [Fact]
    public void Features_DefaultOptions_OnlyEdid()
    {
        using var rig = DeviceRig.Create();
        Assert.Equal(VirtioGpuFeatures.Edid, rig.Device.OfferedFeatures);
        Assert.Equal(0u, rig.Device.Config.NumCapsets);
    }

    [Fact]
    public void Features_Blob_OffersBlobContextInitUuid_VirglCompatAddsVirgl()
    {
        using var rig = DeviceRig.Create(new GpuDeviceOptions { Blob = true });
        Assert.Equal(VirtioGpuFeatures.Edid | VirtioGpuFeatures.ResourceBlob | VirtioGpuFeatures.ContextInit | VirtioGpuFeatures.ResourceUuid, rig.Device.OfferedFeatures);
        using var virgl = DeviceRig.Create(Options());
        Assert.Equal(rig.Device.OfferedFeatures | VirtioGpuFeatures.Virgl, virgl.Device.OfferedFeatures);
        // Acknowledging masks to what is offered.
        virgl.Device.AcknowledgeFeatures(ulong.MaxValue);
        Assert.Equal(virgl.Device.OfferedFeatures, virgl.Device.AckedFeatures);
    }

    [Fact]
    public void Options_VirglCompatWithoutBlob_Refused() =>
        Assert.Throws<ArgumentException>(() => new GpuDeviceOptions { VirglCompat = true }.Validate());

    [Fact]
    public void Config_Blob_ReportsOneCapset()
    {
        using var rig = BlobRig();
        Assert.Equal(1u, rig.Device.Config.NumCapsets);
        var bytes = new byte[4];
        Assert.True(rig.Device.ReadConfig(12, bytes));
        Assert.Equal(1u, BitConverter.ToUInt32(bytes));
    }

    [Fact]
    public void GetCapsetInfo_Index0_CrossDomainVersion0Size16()
    {
        using var rig = BlobRig();
        var reply = rig.Driver.GetCapsetInfo(0).Is(VirtioGpuCtrlType.OkCapsetInfo);
        Assert.Equal(40u, reply.Written);
        var info = reply.CapsetInfo;
        Assert.Equal((VirtioGpuCapsetId.CrossDomain, 0u, 16u, 0u), (info.CapsetId, info.CapsetMaxVersion, info.CapsetMaxSize, info.Padding));
        rig.AssertNoWarnings();
    }

    [Fact]
    public void GetCapsetInfo_IndexPastCount_ErrInvalidParameter()
    {
        using var rig = BlobRig();
        rig.Driver.GetCapsetInfo(1).Is(VirtioGpuCtrlType.ErrInvalidParameter);
        rig.AssertOneGuestError("GET_CAPSET_INFO", "capset_index 1");
    }

    [Fact]
    public void GetCapset_CrossDomain_CrossDomainCapabilities()
    {
        using var rig = BlobRig();
        var reply = rig.Driver.GetCapset(VirtioGpuCapsetId.CrossDomain, 0, 16).Is(VirtioGpuCtrlType.OkCapset);
        Assert.Equal(40u, reply.Written);
        // version 1, supported_channels = 1 << WAYLAND(1), no dma-buf, no external GPU memory.
        Assert.Equal(new uint[] { 1, 2, 0, 0 }, MemoryMarshal.Cast<byte, uint>(reply.Bytes.AsSpan(24, 16)).ToArray());
    }

    [Theory]
    [InlineData(4u, 0u, "capset_id 4")]
    [InlineData(0u, 0u, "capset_id 0")]
    [InlineData(5u, 1u, "capset_version 1")]
    public void GetCapset_UnknownIdOrVersion_ErrInvalidParameter(uint id, uint version, string field)
    {
        using var rig = BlobRig();
        rig.Driver.GetCapset(id, version, 16).Is(VirtioGpuCtrlType.ErrInvalidParameter);
        rig.AssertOneGuestError("GET_CAPSET", field);
    }

    [Fact]
    public void GetCapset_ShortRequest_ErrUnspec()
    {
        using var rig = BlobRig();
        rig.Driver.Submit(rig.Driver.Header(VirtioGpuCtrlType.GetCapset)).Is(VirtioGpuCtrlType.ErrUnspec);
        rig.AssertOneGuestError("GET_CAPSET", "shorter");
    }

    [Fact]
    public void Registry_ConfiguredCapsets_ReportedInOrder()
    {
        using var rig = BlobRig(Options([new FakeCapset(5), new FakeCapset(9)]));
        Assert.Equal(2u, rig.Device.Config.NumCapsets);
        Assert.Equal(9u, rig.Driver.GetCapsetInfo(1).Is(VirtioGpuCtrlType.OkCapsetInfo).CapsetInfo.CapsetId);
        var data = rig.Driver.GetCapset(9, 2, 8).Is(VirtioGpuCtrlType.OkCapset);
        Assert.Equal(new byte[] { 2, 1, 2, 3, 4, 5, 6, 7 }, data.Bytes[24..32]);
    }

    [Fact]
    public void Registry_DuplicateOrOutOfRangeIds_Refused()
    {
        Assert.Throws<ArgumentException>(() => new CapsetRegistry([new FakeCapset(5), new FakeCapset(5)]));
        Assert.Throws<ArgumentException>(() => new CapsetRegistry([new FakeCapset(256)]));
    }
}
