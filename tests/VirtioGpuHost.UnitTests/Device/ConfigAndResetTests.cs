using System.Buffers.Binary;
using VirtioGpuHost.Device;
using VirtioGpuHost.Device.Wire;
using VirtioGpuHost.TestKit;
using static VirtioGpuHost.UnitTests.Device.DeviceTestHelpers;

namespace VirtioGpuHost.UnitTests.Device;

/// <summary>The config space (virtio 1.x §5.7.4) and device reset.</summary>
public class ConfigAndResetTests
{
    private static uint ReadU32(GpuDevice d, uint offset)
    {
        var b = new byte[4];
        Assert.True(d.ReadConfig(offset, b));
        return BinaryPrimitives.ReadUInt32LittleEndian(b);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(4)]
    [InlineData(16)]
    public void ReadConfig_Layout_NumScanoutsFromOptionsNoCapsets(int scanouts)
    {
        using var rig = DeviceRig.Create(new GpuDeviceOptions { Scanouts = scanouts });
        var all = new byte[16];
        Assert.True(rig.Device.ReadConfig(0, all));
        Assert.Equal(0u, BinaryPrimitives.ReadUInt32LittleEndian(all));            // events_read
        Assert.Equal(0u, BinaryPrimitives.ReadUInt32LittleEndian(all.AsSpan(4)));  // events_clear
        Assert.Equal((uint)scanouts, BinaryPrimitives.ReadUInt32LittleEndian(all.AsSpan(8)));
        Assert.Equal(0u, BinaryPrimitives.ReadUInt32LittleEndian(all.AsSpan(12))); // num_capsets
    }

    [Fact]
    public void ReadConfig_PartialAndUnalignedReads_ReturnTheRightBytes()
    {
        using var rig = DeviceRig.Create(new GpuDeviceOptions { Scanouts = 0x0C });
        var one = new byte[1];
        Assert.True(rig.Device.ReadConfig(8, one));
        Assert.Equal(0x0C, one[0]);
        var two = new byte[2];
        Assert.True(rig.Device.ReadConfig(7, two));
        Assert.Equal(new byte[] { 0, 0x0C }, two);
        Assert.True(rig.Device.ReadConfig(16, Array.Empty<byte>()));
    }

    [Fact]
    public void ReadConfig_LargerConfigSpaceThanTheStruct_TailReadsAsZero()
    {
        // QEMU's generic vhost-user-test-device reads its whole config_size (24) in one GET_CONFIG.
        using var rig = DeviceRig.Create(new GpuDeviceOptions { Scanouts = 3 });
        var all = Enumerable.Repeat((byte)0xAA, 24).ToArray();
        Assert.True(rig.Device.ReadConfig(0, all));
        Assert.Equal(3u, BinaryPrimitives.ReadUInt32LittleEndian(all.AsSpan(8)));
        Assert.All(all[16..], b => Assert.Equal(0, b));
        var tail = new byte[] { 1, 2, 3 };
        Assert.True(rig.Device.ReadConfig(14, tail));
        Assert.Equal(new byte[] { 0, 0, 0 }, tail);
    }

    [Theory]
    [InlineData(253u, 4)]
    [InlineData(256u, 1)]
    [InlineData(257u, 0)]
    [InlineData(0u, 257)]
    [InlineData(uint.MaxValue, 4)]
    public void ReadConfig_PastTheLargestConfigSpace_False(uint offset, int length)
    {
        using var rig = DeviceRig.Create();
        Assert.False(rig.Device.ReadConfig(offset, new byte[length]));
    }

    [Fact]
    public void WriteConfig_EventsClear_ClearsOnlyTheWrittenBits()
    {
        using var rig = DeviceRig.Create();
        rig.Device.RaiseDisplayEvent();
        Assert.Equal(VirtioGpuConfig.EventDisplay, ReadU32(rig.Device, 0));

        // Writing 0 clears nothing.
        Assert.True(rig.Device.WriteConfig(4, new byte[4]));
        Assert.Equal(VirtioGpuConfig.EventDisplay, ReadU32(rig.Device, 0));

        // Writing 1 clears the bit; events_clear itself reads back as 0.
        Assert.True(rig.Device.WriteConfig(4, [1, 0, 0, 0]));
        Assert.Equal(0u, ReadU32(rig.Device, 0));
        Assert.Equal(0u, ReadU32(rig.Device, 4));
    }

    [Fact]
    public void WriteConfig_OtherFields_Ignored()
    {
        using var rig = DeviceRig.Create(new GpuDeviceOptions { Scanouts = 2 });
        rig.Device.RaiseDisplayEvent();
        Assert.True(rig.Device.WriteConfig(0, [0, 0, 0, 0]));        // events_read is read-only
        Assert.True(rig.Device.WriteConfig(8, [9, 9, 9, 9, 9, 9, 9, 9])); // num_scanouts, num_capsets
        Assert.Equal(VirtioGpuConfig.EventDisplay, ReadU32(rig.Device, 0));
        Assert.Equal(2u, ReadU32(rig.Device, 8));
        Assert.Equal(0u, ReadU32(rig.Device, 12));
    }

    [Fact]
    public void WriteConfig_WholeStructWithClearBit_ClearsEvents()
    {
        using var rig = DeviceRig.Create();
        rig.Device.RaiseDisplayEvent();
        var cfg = new byte[16];
        cfg[4] = 1;
        Assert.True(rig.Device.WriteConfig(0, cfg));
        Assert.Equal(0u, ReadU32(rig.Device, 0));
    }

    [Theory]
    [InlineData(13u, 4)]
    [InlineData(17u, 1)]
    [InlineData(uint.MaxValue, 1)]
    public void WriteConfig_PastTheEnd_FalseAndNothingCleared(uint offset, int length)
    {
        using var rig = DeviceRig.Create();
        rig.Device.RaiseDisplayEvent();
        Assert.False(rig.Device.WriteConfig(offset, Enumerable.Repeat((byte)0xFF, length).ToArray()));
        Assert.Equal(VirtioGpuConfig.EventDisplay, ReadU32(rig.Device, 0));
    }

    [Fact]
    public void Reset_DropsResourcesScanoutsEventsAndFeatures()
    {
        using var rig = DeviceRig.Create(new GpuDeviceOptions { Scanouts = 2 });
        var fb = rig.NewFrameBuffer(1, 16, 16, scanout: 0);
        rig.NewFrameBuffer(2, 8, 8, scanout: 1);
        rig.Driver.CreateResource2D(3, VirtioGpuFormat.R8G8B8A8Unorm, 4, 4).Is(VirtioGpuCtrlType.OkNoData);
        rig.Device.RaiseDisplayEvent();
        rig.Display.ScanoutEvents.Clear();

        rig.Device.Reset();

        Assert.Empty(rig.Device.Resources);
        Assert.Equal(0UL, rig.Device.HostMemoryInUse);
        Assert.Null(rig.Device.GetScanout(0).Resource);
        Assert.Null(rig.Device.GetScanout(1).Resource);
        Assert.Equal([(0u, false, default(VirtioGpuRect)), (1u, false, default(VirtioGpuRect))], rig.Display.ScanoutEvents);
        Assert.Empty(rig.Display.Consoles);
        Assert.Equal(0u, ReadU32(rig.Device, 0));
        Assert.Equal(0UL, rig.Device.AckedFeatures);
        rig.AssertNoWarnings();
    }

    [Fact]
    public void Reset_ThenDriverStartsOver_SameIdsUsableAgain()
    {
        using var rig = DeviceRig.Create();
        var fb = rig.NewFrameBuffer(1, 16, 16, scanout: 0);
        rig.Device.Reset();
        rig.Device.AcknowledgeFeatures(rig.Device.OfferedFeatures);
        // The rings keep going (the rig's queues were not reset); the device state is new.
        rig.Driver.TransferToHost2D(1, new VirtioGpuRect(0, 0, 16, 16), 0).Is(VirtioGpuCtrlType.ErrInvalidResourceId);
        rig.Driver.SetUpFrameBuffer(1, fb, 0);
        fb.Fill(Colour);
        rig.Driver.Present(1, fb, new VirtioGpuRect(0, 0, 16, 16));
        Assert.Equal(ExpectedConsole(new VirtioGpuRect(0, 0, 16, 16), Colour), rig.Display.Console(0));
        rig.Driver.GetEdid(0).Is(VirtioGpuCtrlType.OkEdid);
    }

    [Fact]
    public void Reset_GetEdidBeforeFeaturesAckedAgain_ErrUnspec()
    {
        using var rig = DeviceRig.Create();
        rig.Device.Reset();
        rig.Driver.GetEdid(0).Is(VirtioGpuCtrlType.ErrUnspec);
    }

    [Fact]
    public void Dispose_ReleasesResources()
    {
        var rig = DeviceRig.Create();
        rig.NewFrameBuffer(1, 16, 16, scanout: 0);
        rig.Device.Dispose();
        Assert.Empty(rig.Device.Resources);
        Assert.Equal(0UL, rig.Device.HostMemoryInUse);
        rig.Dispose();
    }

    [Theory]
    [InlineData(0)]
    [InlineData(17)]
    public void Options_ScanoutsOutOfRange_Throw(int scanouts)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new GpuDeviceOptions { Scanouts = scanouts }.Validate());
    }

    [Theory]
    [InlineData("1920x1080", 1920u, 1080u, 60u)]
    [InlineData("800x600@75", 800u, 600u, 75u)]
    public void OutputMode_Parse_Valid(string s, uint w, uint h, uint hz) =>
        Assert.Equal(new OutputMode(w, h, hz), OutputMode.Parse(s));

    [Theory]
    [InlineData("1920")]
    [InlineData("0x600")]
    [InlineData("800x16385")]
    [InlineData("800x600@0")]
    [InlineData("800x600@abc")]
    public void OutputMode_Parse_Invalid_Throws(string s) => Assert.Throws<FormatException>(() => OutputMode.Parse(s));
}
