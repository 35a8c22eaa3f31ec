using System.Buffers.Binary;
using System.Diagnostics;
using VirtioGpuHost.Device;
using VirtioGpuHost.Device.Edid;
using VirtioGpuHost.Device.Wire;
using VirtioGpuHost.FrontEnd;
using VirtioGpuHost.TestKit;
using static VirtioGpuHost.UnitTests.Device.DeviceTestHelpers;

namespace VirtioGpuHost.UnitTests.Device;

/// <summary>GET_EDID: feature negotiation, scanout checks, our own EDID blocks, and EDIDs forwarded from the display.</summary>
public class EdidTests
{
    private const string EdidDecode = "/usr/bin/edid-decode";

    public static TheoryData<uint, uint, uint> Modes => new()
    {
        { 1280, 800, 60 },
        { 1920, 1080, 60 },
        { 1024, 768, 60 },
        { 640, 480, 60 },
        { 800, 600, 75 },
        { 2560, 1440, 60 },
        { 3840, 2160, 30 },
        { 1366, 768, 60 },
        { 1280, 1024, 60 },
    };

    /// <summary>Modes whose CVT-RB pixel clock at the requested rate exceeds what a detailed timing can hold (655.35 MHz).</summary>
    public static TheoryData<uint, uint, uint> FastModes => new()
    {
        { 3840, 2160, 60 },
        { 3840, 2160, 120 },
        { 2560, 1600, 240 },
        { 4095, 4095, 60 },
    };

    /// <summary>Modes whose CVT-RB pixel clock is under the 10 MHz that an EDID detailed timing needs, and degenerate sizes.</summary>
    public static TheoryData<uint, uint, uint> SmallModes => new()
    {
        { 320, 240, 60 },
        { 320, 200, 24 },
        { 640, 480, 24 },
        { 16, 16, 60 },
        { 1, 1, 60 },
        { 4095, 1, 24 },
        { 1, 4095, 240 },
    };

    private static DeviceRig RigWithMode(uint w, uint h, uint hz, int scanouts = 1) =>
        DeviceRig.Create(new GpuDeviceOptions { Scanouts = scanouts, Modes = [new OutputMode(w, h, hz)] });

    private static byte[] OwnEdidOf(DeviceRig rig, uint scanout = 0)
    {
        var reply = rig.Driver.GetEdid(scanout).Is(VirtioGpuCtrlType.OkEdid);
        Assert.Equal((uint)VirtioGpuResponseSizes.Edid, reply.Written);
        return GpuDriver.ParseEdid(reply);
    }

    private static void AssertValidBaseBlock(byte[] edid)
    {
        Assert.Equal(EdidBuilder.BlockSize, edid.Length);
        Assert.Equal(new byte[] { 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x00 }, edid[..8]);
        Assert.Equal(0, edid.Sum(b => b) % 256);
        Assert.Equal(1, edid[18]); // EDID 1.x
        Assert.Equal(4, edid[19]); // .4
    }

    [Fact]
    public void GetEdid_FeatureNotNegotiated_ErrUnspec()
    {
        using var rig = DeviceRig.Create();
        rig.Device.AcknowledgeFeatures(0);
        var reply = rig.Driver.GetEdid(0);
        Assert.Equal(VirtioGpuCtrlType.ErrUnspec, reply.Type);
        Assert.Equal(24u, reply.Written);
        rig.AssertOneGuestError("GET_EDID", "VIRTIO_GPU_F_EDID");
    }

    [Fact]
    public void GetEdid_EdidOptionOff_NotOfferedAndErrUnspec()
    {
        using var rig = DeviceRig.Create(new GpuDeviceOptions { Edid = false });
        Assert.Equal(0UL, rig.Device.OfferedFeatures & VirtioGpuFeatures.Edid);
        Assert.Equal(0UL, rig.Device.AckedFeatures & VirtioGpuFeatures.Edid);
        rig.Driver.GetEdid(0).Is(VirtioGpuCtrlType.ErrUnspec);
        rig.AssertOneGuestError("GET_EDID");
    }

    [Fact]
    public void AcknowledgeFeatures_UnofferedBits_AreDropped()
    {
        using var rig = DeviceRig.Create();
        rig.Device.AcknowledgeFeatures(ulong.MaxValue);
        Assert.Equal(VirtioGpuFeatures.Edid, rig.Device.AckedFeatures);
    }

    [Theory]
    [InlineData(1, false, 1u)]
    [InlineData(2, false, 2u)]
    [InlineData(1, false, 16u)]
    [InlineData(1, true, 16u)]
    [InlineData(1, true, uint.MaxValue)]
    public void GetEdid_ScanoutOutOfRange_ErrInvalidScanoutId(int scanouts, bool displayOwnsOutputs, uint scanout)
    {
        using var rig = DeviceRig.Create(new GpuDeviceOptions { Scanouts = scanouts });
        rig.Display.OwnsOutputCount = displayOwnsOutputs;
        rig.Driver.GetEdid(scanout).Is(VirtioGpuCtrlType.ErrInvalidScanoutId);
        rig.AssertOneGuestError("GET_EDID", $"scanout {scanout}");
    }

    [Fact]
    public void GetEdid_DisplayOwnsOutputCount_Scanout15Answered()
    {
        using var rig = DeviceRig.Create();
        rig.Display.OwnsOutputCount = true;
        var edid = OwnEdidOf(rig, 15);
        AssertValidBaseBlock(edid);
        Assert.Equal(15u, BinaryPrimitives.ReadUInt32LittleEndian(edid.AsSpan(12))); // serial number = scanout
        rig.AssertNoWarnings();
    }

    [Fact]
    public void GetEdid_RequestShorterThanCommand_ErrUnspec()
    {
        using var rig = DeviceRig.Create();
        var cmd = Bytes(new VirtioGpuGetEdid { Header = Header(VirtioGpuCtrlType.GetEdid) })[..28];
        rig.Driver.Submit(cmd, VirtioGpuResponseSizes.Edid).Is(VirtioGpuCtrlType.ErrUnspec);
        rig.AssertOneGuestError("GET_EDID", "shorter");
    }

    [Theory]
    [MemberData(nameof(Modes))]
    [MemberData(nameof(SmallModes))]
    public void GetEdid_OwnEdid_ValidBlockForConfiguredMode(uint w, uint h, uint hz)
    {
        using var rig = RigWithMode(w, h, hz);
        var reply = rig.Driver.GetEdid(0).Is(VirtioGpuCtrlType.OkEdid);
        Assert.Equal(128u, BinaryPrimitives.ReadUInt32LittleEndian(reply.Bytes.AsSpan(24)));
        Assert.All(reply.Bytes[(32 + 128)..], b => Assert.Equal(0, b)); // nothing after the block
        var edid = GpuDriver.ParseEdid(reply);
        AssertValidBaseBlock(edid);
        var mode = EdidBuilder.ParsePreferredMode(edid);
        Assert.NotNull(mode);
        Assert.Equal(w, mode.Value.Width);
        Assert.Equal(h, mode.Value.Height);
        Assert.InRange(mode.Value.RefreshHz, hz - 0.5, hz + 0.5);
        uint clock10k = (uint)(edid[54] | edid[55] << 8);
        Assert.InRange(clock10k, 1000u, 0xFFFFu); // 10 MHz .. 655.35 MHz
        rig.AssertNoWarnings();
    }

    [Theory]
    [MemberData(nameof(FastModes))]
    public void GetEdid_ModeTooFastForDetailedTiming_ValidBlockWithLowerRefresh(uint w, uint h, uint hz)
    {
        using var rig = RigWithMode(w, h, hz);
        var edid = OwnEdidOf(rig);
        AssertValidBaseBlock(edid);
        var mode = EdidBuilder.ParsePreferredMode(edid);
        Assert.NotNull(mode);
        Assert.Equal(w, mode.Value.Width);
        Assert.Equal(h, mode.Value.Height);
        Assert.InRange(mode.Value.RefreshHz, 23.5, hz + 0.5);
    }

    [Fact]
    public void GetEdid_TwoScanouts_EachGetsItsModeAndSerial()
    {
        using var rig = DeviceRig.Create(new GpuDeviceOptions { Scanouts = 2, Modes = [new OutputMode(1920, 1080), new OutputMode(1024, 768)] });
        var e0 = OwnEdidOf(rig, 0);
        var e1 = OwnEdidOf(rig, 1);
        Assert.Equal((1920u, 1080u), (EdidBuilder.ParsePreferredMode(e0)!.Value.Width, EdidBuilder.ParsePreferredMode(e0)!.Value.Height));
        Assert.Equal((1024u, 768u), (EdidBuilder.ParsePreferredMode(e1)!.Value.Width, EdidBuilder.ParsePreferredMode(e1)!.Value.Height));
        Assert.Equal(0u, BinaryPrimitives.ReadUInt32LittleEndian(e0.AsSpan(12)));
        Assert.Equal(1u, BinaryPrimitives.ReadUInt32LittleEndian(e1.AsSpan(12)));
    }

    [Theory]
    [MemberData(nameof(Modes))]
    [MemberData(nameof(FastModes))]
    [MemberData(nameof(SmallModes))]
    public void GetEdid_OwnEdid_PassesEdidDecodeConformityCheck(uint w, uint h, uint hz)
    {
        if (!File.Exists(EdidDecode))
            Assert.Skip($"edid-decode is not installed ({EdidDecode} missing; Debian package edid-decode, installed by scripts/setup-deps.sh): cannot check EDID conformity");
        using var rig = RigWithMode(w, h, hz);
        var edid = OwnEdidOf(rig);
        var (exit, output) = RunEdidDecode(edid);
        Assert.True(exit == 0, $"edid-decode --check exited {exit} for {w}x{h}@{hz}:\n{output}");
        Assert.DoesNotContain("Failures:", output);
        Assert.DoesNotContain("FAIL", output);
        Assert.Contains("EDID conformity: PASS", output);
        Assert.Contains($"{w}x{h}", output);
    }

    private static (int Exit, string Output) RunEdidDecode(byte[] edid)
    {
        var psi = new ProcessStartInfo(EdidDecode)
        {
            ArgumentList = { "--check", "-" },
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        p.StandardInput.BaseStream.Write(edid);
        p.StandardInput.Close();
        Assert.True(p.WaitForExit(30_000), "edid-decode did not finish");
        return (p.ExitCode, stdout.Result + stderr.Result);
    }

    // ---- EDID forwarded from the display (QEMU answers GET_EDID on the display socket) ----

    private static byte[] DisplayEdidReply(byte[] edid, VirtioGpuCtrlType type = VirtioGpuCtrlType.OkEdid, uint? size = null, int length = VirtioGpuResponseSizes.Edid)
    {
        var reply = new byte[length];
        BinaryPrimitives.WriteUInt32LittleEndian(reply, (uint)type);
        if (length >= 28) BinaryPrimitives.WriteUInt32LittleEndian(reply.AsSpan(24), size ?? (uint)edid.Length);
        edid.AsSpan(0, Math.Min(edid.Length, Math.Max(0, length - 32))).CopyTo(reply.AsSpan(Math.Min(32, length)));
        return reply;
    }

    [Fact]
    public void GetEdid_DisplayAnswers_GuestGetsDisplaysEdid()
    {
        using var rig = DeviceRig.Create(new GpuDeviceOptions { Scanouts = 2 });
        var displayEdid = EdidBuilder.Build(1600, 900, 60, "QEMU Monitor", serial: 77);
        var asked = new List<uint>();
        rig.Display.EdidQuery = s => { asked.Add(s); return Task.FromResult<byte[]?>(DisplayEdidReply(displayEdid)); };
        rig.Driver.Timeout = ContinuationTimeout; // the reply resumes the queue through a thread-pool continuation
        var reply = rig.Driver.GetEdid(1).Is(VirtioGpuCtrlType.OkEdid);
        Assert.Equal([1u], asked);
        Assert.Equal(displayEdid, GpuDriver.ParseEdid(reply));
        Assert.Equal(DisplayEdidReply(displayEdid)[24..], reply.Bytes[24..]);
        rig.AssertNoWarnings();
    }

    [Fact]
    public void GetEdid_DisplayAnswersLater_ControlQueueWaits()
    {
        using var rig = DeviceRig.Create();
        var tcs = new TaskCompletionSource<byte[]?>();
        rig.Display.EdidQuery = _ => tcs.Task;
        rig.Driver.Timeout = ContinuationTimeout; // the reply resumes the queue through a thread-pool continuation
        var edidCmd = rig.Driver.Queue(Bytes(new VirtioGpuGetEdid { Header = Header(VirtioGpuCtrlType.GetEdid) }), VirtioGpuResponseSizes.Edid);
        var create = rig.Driver.Queue(Bytes(new VirtioGpuResourceCreate2D { Header = Header(VirtioGpuCtrlType.ResourceCreate2D), ResourceId = 1, Format = VirtioGpuFormat.B8G8R8X8Unorm, Width = 8, Height = 8 }));
        rig.Driver.KickControl();
        Assert.Equal(0, rig.ControlDriverQueue.ReadUsedIndex());
        Assert.Empty(rig.Device.Resources);

        var displayEdid = EdidBuilder.Build(800, 600, 60, serial: 3);
        tcs.SetResult(DisplayEdidReply(displayEdid));
        Assert.Equal(displayEdid, GpuDriver.ParseEdid(rig.Driver.Wait(edidCmd).Is(VirtioGpuCtrlType.OkEdid)));
        rig.Driver.Wait(create).Is(VirtioGpuCtrlType.OkNoData);
        Assert.Equal([edidCmd.Head, create.Head], rig.UsedElements(rig.ControlDriverQueue).Select(e => (ushort)e.Head));
    }

    public static TheoryData<string> BadEdidReplies => new() { "null", "short", "long", "type", "size0", "size1025", "faulted" };

    [Theory]
    [MemberData(nameof(BadEdidReplies))]
    public void GetEdid_DisplayReplyUnusable_FallsBackToOwnEdid(string kind)
    {
        using var rig = DeviceRig.Create(new GpuDeviceOptions { Modes = [new OutputMode(1920, 1080)] });
        var other = EdidBuilder.Build(800, 600);
        Task<byte[]?> task = kind switch
        {
            "null" => Task.FromResult<byte[]?>(null),
            "short" => Task.FromResult<byte[]?>(DisplayEdidReply(other, length: VirtioGpuResponseSizes.Edid - 1)),
            "long" => Task.FromResult<byte[]?>(DisplayEdidReply(other, length: VirtioGpuResponseSizes.Edid + 4)),
            "type" => Task.FromResult<byte[]?>(DisplayEdidReply(other, type: VirtioGpuCtrlType.OkDisplayInfo)),
            "size0" => Task.FromResult<byte[]?>(DisplayEdidReply(other, size: 0)),
            "size1025" => Task.FromResult<byte[]?>(DisplayEdidReply(other, size: 1025)),
            _ => Task.FromException<byte[]?>(new IOException("display socket closed")),
        };
        rig.Display.EdidQuery = _ => task;
        rig.Driver.Timeout = ContinuationTimeout; // the reply resumes the queue through a thread-pool continuation
        var edid = GpuDriver.ParseEdid(rig.Driver.GetEdid(0).Is(VirtioGpuCtrlType.OkEdid));
        Assert.Equal(rig.Device.OwnEdid(0).Body![8..(8 + 128)], edid);
        Assert.Equal((1920u, 1080u), (EdidBuilder.ParsePreferredMode(edid)!.Value.Width, EdidBuilder.ParsePreferredMode(edid)!.Value.Height));
    }

    [Fact]
    public void GetEdid_DisplayNeverAnswers_TimeoutFallsBackToOwnEdid()
    {
        using var rig = DeviceRig.Create(new GpuDeviceOptions { Modes = [new OutputMode(1024, 768)] });
        rig.Display.EdidQuery = _ => new TaskCompletionSource<byte[]?>().Task;
        rig.Driver.Timeout = ContinuationTimeout; // the reply resumes the queue through a thread-pool continuation
        var p = rig.Driver.Queue(Bytes(new VirtioGpuGetEdid { Header = Header(VirtioGpuCtrlType.GetEdid) }), VirtioGpuResponseSizes.Edid);
        rig.Driver.KickControl();
        rig.Scheduler.Advance(TimeSpan.FromSeconds(2.9));
        Assert.Equal(0, rig.ControlDriverQueue.ReadUsedIndex());
        rig.Scheduler.Advance(TimeSpan.FromSeconds(0.2));
        var edid = GpuDriver.ParseEdid(rig.Driver.Wait(p).Is(VirtioGpuCtrlType.OkEdid));
        Assert.Equal(1024u, EdidBuilder.ParsePreferredMode(edid)!.Value.Width);
        Assert.Contains(rig.Logs.Warnings, l => l.Contains(Connection) && l.Contains("did not answer"));
    }

    // ---- EdidBuilder directly ----

    [Fact]
    public void Checksum_MakesBlockSumToZero()
    {
        var block = RandomBytes(128, 5);
        block[127] = EdidBuilder.Checksum(block);
        Assert.Equal(0, block.Sum(b => b) % 256);
    }

    [Theory]
    [InlineData(0u, 600u, 60u)]
    [InlineData(800u, 0u, 60u)]
    [InlineData(4096u, 600u, 60u)]
    [InlineData(800u, 4096u, 60u)]
    [InlineData(800u, 600u, 23u)]
    [InlineData(800u, 600u, 241u)]
    public void Build_OutOfRange_Throws(uint w, uint h, uint hz) =>
        Assert.Throws<ArgumentOutOfRangeException>(() => EdidBuilder.Build(w, h, hz));

    [Fact]
    public void Build_NameAndSerial_InDescriptors()
    {
        var e = EdidBuilder.Build(1280, 800, 60, "Panel", serial: 42);
        var text = System.Text.Encoding.ASCII.GetString(e);
        Assert.Contains("Panel\n", text);
        Assert.Contains("VGH00000042\n", text);
        Assert.Equal(42u, BinaryPrimitives.ReadUInt32LittleEndian(e.AsSpan(12)));
    }

    [Fact]
    public void ParsePreferredMode_NotAnEdid_Null()
    {
        Assert.Null(EdidBuilder.ParsePreferredMode(new byte[128]));
        Assert.Null(EdidBuilder.ParsePreferredMode(EdidBuilder.Build(800, 600).AsSpan(0, 127)));
    }

    [Theory]
    [InlineData(3840u, 2160u, 120u)]
    [InlineData(2560u, 1600u, 240u)]
    [InlineData(4095u, 4095u, 60u)]
    public void FittingRefreshHz_FastMode_HighestRateWhoseClockFits(uint w, uint h, uint hz)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => EdidBuilder.Build(w, h, hz));
        uint fit = EdidBuilder.FittingRefreshHz(w, h, hz);
        Assert.InRange(fit, 24u, hz - 1);
        Assert.True(EdidBuilder.FitsDetailedTiming(EdidBuilder.CvtReducedBlanking(w, h, fit)));
        Assert.False(EdidBuilder.FitsDetailedTiming(EdidBuilder.CvtReducedBlanking(w, h, fit + 1)));
        Assert.Equal(EdidBuilder.BlockSize, EdidBuilder.Build(w, h, fit).Length);
    }

    [Theory]
    [InlineData(1920u, 1080u, 60u)]
    [InlineData(1280u, 800u, 240u)]
    [InlineData(800u, 600u, 10u)]
    [InlineData(800u, 600u, 1000u)]
    public void FittingRefreshHz_ModeThatFits_RequestedRateClampedTo24To240(uint w, uint h, uint hz) =>
        Assert.Equal(Math.Clamp(hz, 24u, 240u), EdidBuilder.FittingRefreshHz(w, h, hz));
}
