using System.Runtime.InteropServices;
using VirtioGpuHost.Device.Wire;
using VirtioGpuHost.Virtio;
using VirtioGpuHost.VhostUser.Display;
using VirtioGpuHost.VhostUser.Wire;

namespace VirtioGpuHost.UnitTests.Wire;

/// <summary>Every wire struct has the size the spec gives (our stand-in for a no-padding proof).</summary>
public class WireSizeTests
{
    public static TheoryData<Type, int> VirtioGpuStructs => new()
    {
        { typeof(VirtioGpuCtrlHeader), 24 },
        { typeof(VirtioGpuRect), 16 },
        { typeof(VirtioGpuDisplayOne), 24 },
        { typeof(VirtioGpuResourceCreate2D), 40 },
        { typeof(VirtioGpuResourceRef), 32 },
        { typeof(VirtioGpuSetScanout), 48 },
        { typeof(VirtioGpuResourceFlush), 48 },
        { typeof(VirtioGpuTransferToHost2D), 56 },
        { typeof(VirtioGpuResourceAttachBacking), 32 },
        { typeof(VirtioGpuMemEntry), 16 },
        { typeof(VirtioGpuGetEdid), 32 },
        { typeof(VirtioGpuGetCapsetInfo), 32 },
        { typeof(VirtioGpuGetCapset), 32 },
        { typeof(VirtioGpuCursorPos), 16 },
        { typeof(VirtioGpuUpdateCursor), 56 },
        { typeof(VirtioGpuConfig), 16 },
        { typeof(VirtqDescriptor), 16 },
    };

    [Theory]
    [MemberData(nameof(VirtioGpuStructs))]
    public void StructSize_MatchesSpec(Type type, int size) => Assert.Equal(size, Marshal.SizeOf(type));

    [Fact]
    public void ResponseSizes_MatchSpec()
    {
        Assert.Equal(408, VirtioGpuResponseSizes.DisplayInfo);
        Assert.Equal(1056, VirtioGpuResponseSizes.Edid);
        Assert.Equal(408, GpuDisplayWire.DisplayInfoReplySize);
        Assert.Equal(1056, GpuDisplayWire.EdidReplySize);
        Assert.Equal(16404, GpuDisplayWire.CursorUpdateSize);
    }

    [Fact]
    public void VhostUserPayloadSizes_MatchSpec()
    {
        Assert.Equal(12, VhostUserHeader.Length);
        Assert.Equal(8, VringState.Size);
        Assert.Equal(40, VringAddress.Size);
        Assert.Equal(32, MemoryRegionDescriptor.Size);
        Assert.Equal(40, SingleMemoryRegion.Size);
        Assert.Equal(40, ShmemMapRequest.Size);
        Assert.Equal(2056, ShmemConfig.Size);
        Assert.Equal(8 + 8 * 32, MemoryTable.SizeFor(8));
    }

    [Fact]
    public void ProtocolFeatureBits_MatchMergedSpec()
    {
        Assert.Equal(1UL << 3, (ulong)VhostUserProtocolFeatures.ReplyAck);
        Assert.Equal(1UL << 9, (ulong)VhostUserProtocolFeatures.Config);
        Assert.Equal(1UL << 15, (ulong)VhostUserProtocolFeatures.ConfigureMemSlots);
        Assert.Equal(1UL << 22, (ulong)VhostUserProtocolFeatures.Shmem);
        Assert.Equal(0x4000_0000UL, VhostUserFeatures.ProtocolFeatures);
        // Bit positions, not values (rust-vmm's vhost declares EDID = 0, DMABUF2 = 1).
        Assert.Equal(1UL, (ulong)GpuDisplayProtocolFeatures.Edid);
        Assert.Equal(2UL, (ulong)GpuDisplayProtocolFeatures.Dmabuf2);
    }

    [Fact]
    public void VringAddress_RoundTripsWithUsedBeforeAvail()
    {
        var a = new VringAddress(1, 0, 0x1000, 0x3000, 0x2000, 0x4000);
        var b = new byte[VringAddress.Size];
        a.Write(b);
        Assert.Equal(0x3000UL, BitConverter.ToUInt64(b, 16)); // used @16
        Assert.Equal(0x2000UL, BitConverter.ToUInt64(b, 24)); // avail @24
        Assert.Equal(a, VringAddress.Read(b));
    }
}
