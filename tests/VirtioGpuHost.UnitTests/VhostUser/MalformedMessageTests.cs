using System.Buffers.Binary;
using VirtioGpuHost.Device.Wire;
using VirtioGpuHost.Interop;
using VirtioGpuHost.VhostUser.Wire;

namespace VirtioGpuHost.UnitTests.VhostUser;

/// <summary>
/// Broken and hostile front-end messages: a bad field is refused (failure ack + a log line
/// naming the connection, the request and the field) and the connection goes on; a broken
/// frame, or a request that must be answered but cannot be, closes the connection.
/// </summary>
public class MalformedMessageTests
{
    public static TheoryData<VhostUserRequest, bool> SizeCases()
    {
        var d = new TheoryData<VhostUserRequest, bool>();
        foreach (var r in RequestCatalog.AckOnly)
        {
            if (r is not (VhostUserRequest.SetOwner or VhostUserRequest.ResetOwner or VhostUserRequest.ResetDevice or
                          VhostUserRequest.SetBackendReqFd or VhostUserRequest.GpuSetSocket))
                d.Add(r, false); // empty payloads cannot be shorter
            d.Add(r, true);
        }
        return d;
    }

    [Theory]
    [MemberData(nameof(SizeCases))]
    public void WrongPayloadSize_EachRequest_RefusedLoggedAndConnectionStillWorks(VhostUserRequest request, bool oversized)
    {
        using var rig = ConnectionRig.StartGpu();
        rig.Negotiate();
        using var vm = new RawVm(rig.FrontEnd);
        var keep = new List<IDisposable>();
        try
        {
            RequestCatalog.Prepare(request, vm);
            using (var valid = RequestCatalog.Valid(request, vm, keep))
            {
                var payload = oversized ? [.. valid.Payload, .. new byte[8]] : valid.Payload[..^(request == VhostUserRequest.SetMemTable ? 36 : 1)];
                using var bad = valid with { Payload = payload };
                Assert.NotEqual(0UL, RequestCatalog.SendForAck(rig.FrontEnd, bad));
            }
            rig.AssertLogged(rig.Name, RequestCatalog.LogName(request), "payload");
            rig.AssertAlive();
            // The same request, well-formed, still works.
            using var again = RequestCatalog.Valid(request, vm, keep);
            Assert.Equal(0UL, RequestCatalog.SendForAck(rig.FrontEnd, again));
        }
        finally
        {
            foreach (var k in keep) k.Dispose();
        }
    }

    [Fact]
    public void Payload_OverTheFourKibCap_ClosesTheConnection()
    {
        using var rig = ConnectionRig.StartGpu();
        rig.Negotiate();
        var header = new byte[VhostUserHeader.Length];
        new VhostUserHeader((uint)VhostUserRequest.SetConfig, VhostUserHeader.Version, 0x1001).Write(header);
        rig.FrontEnd.SendRaw(header);
        rig.AssertClosed();
        rig.AssertLogged(rig.Name, "protocol violation", "exceeds the limit");
    }

    [Fact]
    public void Payload_ExactlyAtTheCap_IsReadAndRefusedAndTheConnectionContinues()
    {
        using var rig = ConnectionRig.StartGpu();
        rig.Negotiate();
        rig.FrontEnd.Send((VhostUserRequest)99, new byte[0x1000], needReply: true);
        Assert.NotEqual(0UL, RequestCatalog.ReadAck(rig.FrontEnd, (VhostUserRequest)99));
        rig.AssertAlive();
    }

    [Fact]
    public void Header_CutShortThenEof_ClosesTheConnection()
    {
        using var rig = ConnectionRig.StartGpu();
        rig.Negotiate();
        rig.FrontEnd.SendRaw(new byte[] { 1, 0, 0, 0, 1, 0 });
        UnixSocket.Shutdown(rig.FrontEnd.Socket);
        Assert.True(rig.WaitForEnd(TimeSpan.FromSeconds(10)));
        Assert.Null(rig.Failure);
        rig.AssertLogged(rig.Name, "protocol violation", "inside a message header (6 of 12 bytes)");
    }

    [Fact]
    public void Message_StartedThenSilence_ClosesTheConnectionAfterTheReceiveTimeout()
    {
        using var rig = ConnectionRig.StartGpu();
        rig.Negotiate();
        var msg = new byte[VhostUserHeader.Length + 4];
        new VhostUserHeader((uint)VhostUserRequest.SetFeatures, VhostUserHeader.Version, 8).Write(msg);
        rig.FrontEnd.SendRaw(msg); // 4 of 8 payload bytes, then nothing: the back-end gives up after 10 s
        Assert.True(rig.FrontEnd.WaitForClose(30_000), "the back-end waited forever for the rest of the message");
        Assert.True(rig.WaitForEnd(TimeSpan.FromSeconds(10)));
        rig.AssertLogged(rig.Name, "protocol violation", "payload cut short (4 of 8 bytes, timed out)");
    }

    [Fact]
    public void Payload_CutShortThenEof_ClosesTheConnection()
    {
        using var rig = ConnectionRig.StartGpu();
        rig.Negotiate();
        var msg = new byte[VhostUserHeader.Length + 10];
        new VhostUserHeader((uint)VhostUserRequest.SetVringAddr, VhostUserHeader.Version, VringAddress.Size).Write(msg);
        rig.FrontEnd.SendRaw(msg);
        UnixSocket.Shutdown(rig.FrontEnd.Socket);
        Assert.True(rig.WaitForEnd(TimeSpan.FromSeconds(10)));
        Assert.Null(rig.Failure);
        rig.AssertLogged(rig.Name, "protocol violation", "payload cut short (10 of 40 bytes");
    }

    [Theory]
    [InlineData(0u)]
    [InlineData(2u)]
    [InlineData(3u)]
    [InlineData(0x9u & ~1u)]
    public void Header_BadVersion_ClosesTheConnection(uint flags)
    {
        using var rig = ConnectionRig.StartGpu();
        rig.Negotiate();
        rig.FrontEnd.Send(VhostUserRequest.SetOwner, [], flagsOverride: flags);
        rig.AssertClosed();
        rig.AssertLogged(rig.Name, "header version");
    }

    [Fact]
    public void Header_FlaggedAsReply_ClosesTheConnection()
    {
        using var rig = ConnectionRig.StartGpu();
        rig.Negotiate();
        rig.FrontEnd.Send(VhostUserRequest.GetFeatures, [], flagsOverride: VhostUserHeader.Version | VhostUserHeader.FlagReply);
        rig.AssertClosed();
        rig.AssertLogged(rig.Name, "marked as a reply");
    }

    [Theory]
    [InlineData(0u)]
    [InlineData(45u)]
    [InlineData(1000u)]
    [InlineData(0xFFFFFFFFu)]
    [InlineData((uint)VhostUserRequest.SendRarp)]
    [InlineData((uint)VhostUserRequest.NetSetMtu)]
    [InlineData((uint)VhostUserRequest.SetVringEndian)]
    [InlineData((uint)VhostUserRequest.VringKick)]
    [InlineData((uint)VhostUserRequest.SetStatus)]
    [InlineData((uint)VhostUserRequest.PostcopyListen)]
    public void UnknownOrUnsupportedRequest_IsRefusedAndTheConnectionContinues(uint id)
    {
        using var rig = ConnectionRig.StartGpu();
        rig.Negotiate();
        rig.FrontEnd.Send((VhostUserRequest)id, new byte[8], needReply: true);
        Assert.NotEqual(0UL, RequestCatalog.ReadAck(rig.FrontEnd, (VhostUserRequest)id));
        rig.AssertLogged(rig.Name, "refused", "unknown or unsupported request " + id);
        rig.AssertAlive();
    }

    public static TheoryData<VhostUserRequest, int> BadGetSizes => new()
    {
        { VhostUserRequest.GetFeatures, 8 },
        { VhostUserRequest.GetProtocolFeatures, 4 },
        { VhostUserRequest.GetQueueNum, 8 },
        { VhostUserRequest.GetMaxMemSlots, 1 },
        { VhostUserRequest.GetVringBase, 4 },
        { VhostUserRequest.GetVringBase, 16 },
        { VhostUserRequest.GetVringBase, 0 },
        { VhostUserRequest.GetConfig, 0 },
        { VhostUserRequest.GetConfig, 11 },
        { VhostUserRequest.GetShmemConfig, 8 },
    };

    [Theory]
    [MemberData(nameof(BadGetSizes))]
    public void GetRequest_BadPayloadSize_ClosesTheConnection(VhostUserRequest request, int size)
    {
        using var rig = ConnectionRig.StartGpu();
        rig.Negotiate();
        rig.FrontEnd.Send(request, new byte[size]);
        rig.AssertClosed();
        if (!rig.Logged(rig.Name, "protocol violation", RequestCatalog.SpecName(request)))
            rig.AssertLogged(rig.Name, "protocol violation", request.ToString());
    }

    [Theory]
    [InlineData(VhostUserRequest.GetInflightFd)]
    [InlineData(VhostUserRequest.GetStatus)]
    [InlineData(VhostUserRequest.IotlbMsg)]
    [InlineData(VhostUserRequest.SetLogBase)]
    [InlineData(VhostUserRequest.GetSharedObject)]
    [InlineData(VhostUserRequest.CheckDeviceState)]
    public void RequestNeedingAnUnofferedFeature_WithAReplyOfItsOwn_ClosesTheConnection(VhostUserRequest request)
    {
        using var rig = ConnectionRig.StartGpu();
        rig.Negotiate();
        rig.FrontEnd.Send(request, new byte[8]);
        rig.AssertClosed();
        rig.AssertLogged(rig.Name, request.ToString(), "never offered");
    }

    public static TheoryData<uint, uint, int> BadGetConfigs => new()
    {
        { 0, 300, 300 },  // larger than QEMU's 256-byte cap
        { 0, 16, 8 },     // header size does not match the payload
        { 0, 8, 16 },
        { 252, 8, 8 },    // past the largest (256-byte) config space
        { 0xFFFFFFF0, 16, 16 },
    };

    [Theory]
    [MemberData(nameof(BadGetConfigs))]
    public void GetConfig_BadSizeOrRange_GetsAnEmptyReplyAndTheConnectionContinues(uint offset, uint size, int dataBytes)
    {
        using var rig = ConnectionRig.StartGpu();
        rig.Negotiate();
        rig.FrontEnd.Send(VhostUserRequest.GetConfig, RequestCatalog.Config(offset, size, 0, dataBytes));
        using (var reply = rig.FrontEnd.ReceiveReply(VhostUserRequest.GetConfig))
            Assert.Empty(reply.Payload);
        rig.AssertLogged(rig.Name, "refused GET_CONFIG");
        var cfg = rig.FrontEnd.GetConfig(0, 16);
        Assert.NotNull(cfg);
        Assert.Equal(1u, BinaryPrimitives.ReadUInt32LittleEndian(cfg.AsSpan(8))); // num_scanouts
    }

    [Fact]
    public void SetConfig_FlagsOtherThanWriteOrMigration_AreRefused()
    {
        using var rig = ConnectionRig.StartGpu();
        rig.Negotiate();
        rig.FrontEnd.Send(VhostUserRequest.SetConfig, RequestCatalog.Config(4, 4, 2), needReply: true);
        Assert.NotEqual(0UL, RequestCatalog.ReadAck(rig.FrontEnd, VhostUserRequest.SetConfig));
        rig.AssertLogged(rig.Name, "SetConfig", "flags 2");
        Assert.True(rig.FrontEnd.SetConfig(4, new byte[4], flags: 1));
    }

    [Theory]
    [InlineData(0u)]
    [InlineData(3u)]
    [InlineData(100u)]
    [InlineData(2048u)]
    [InlineData(0x10000u)]
    [InlineData(0xFFFFFFFFu)]
    public void SetVringNum_NotAPowerOfTwoOrOver1024_IsRefused(uint num)
    {
        using var rig = ConnectionRig.StartGpu();
        rig.Negotiate();
        Assert.False(rig.FrontEnd.SetVringNum(0, num));
        rig.AssertLogged(rig.Name, "SetVringNum", $"num {num}");
        Assert.True(rig.FrontEnd.SetVringNum(0, 1024));
    }

    [Theory]
    [InlineData(8ul, 0ul, 0ul)]
    [InlineData(0ul, 1ul, 0ul)]
    [InlineData(0ul, 0ul, 2ul)]
    public void SetVringAddr_Misaligned_IsRefused(ulong descOff, ulong availOff, ulong usedOff)
    {
        using var rig = ConnectionRig.StartGpu();
        rig.Negotiate();
        using var vm = new RawVm(rig.FrontEnd);
        var a = vm.Address(0);
        Assert.False(rig.FrontEnd.SetVringAddr(a with { Descriptor = a.Descriptor + descOff, Available = a.Available + availOff, Used = a.Used + usedOff }));
        rig.AssertLogged(rig.Name, "SetVringAddr", "misaligned");
        Assert.True(rig.FrontEnd.SetVringAddr(a));
    }

    public static TheoryData<VhostUserRequest> RingRequests => new(
        VhostUserRequest.SetVringNum, VhostUserRequest.SetVringAddr, VhostUserRequest.SetVringBase, VhostUserRequest.SetVringEnable,
        VhostUserRequest.SetVringKick, VhostUserRequest.SetVringCall, VhostUserRequest.SetVringErr);

    [Theory]
    [MemberData(nameof(RingRequests))]
    public void RingRequest_IndexOutOfRange_IsRefused(VhostUserRequest request)
    {
        using var rig = ConnectionRig.StartGpu();
        rig.Negotiate();
        using var vm = new RawVm(rig.FrontEnd);
        var keep = new List<IDisposable>();
        using var valid = RequestCatalog.Valid(request, vm, keep);
        var p = (byte[])valid.Payload.Clone();
        p[0] = 2; // ring 2 of a two-ring device
        using var bad = valid with { Payload = p };
        Assert.NotEqual(0UL, RequestCatalog.SendForAck(rig.FrontEnd, bad));
        rig.AssertLogged(rig.Name, request.ToString(), "ring index 2 out of range");
        rig.AssertAlive();
    }

    [Fact]
    public void GetVringBase_IndexOutOfRange_ClosesTheConnection()
    {
        using var rig = ConnectionRig.StartGpu();
        rig.Negotiate();
        rig.FrontEnd.Send(VhostUserRequest.GetVringBase, RequestCatalog.State(2, 0));
        rig.AssertClosed();
        rig.AssertLogged(rig.Name, "GET_VRING_BASE", "out of range");
    }

    [Fact]
    public void SetVringEnable_ValueOtherThanZeroOrOne_IsRefused()
    {
        using var rig = ConnectionRig.StartGpu();
        rig.Negotiate();
        Assert.False(rig.FrontEnd.SendWithAck(VhostUserRequest.SetVringEnable, RequestCatalog.State(0, 2)));
        rig.AssertLogged(rig.Name, "SetVringEnable", "enable value 2");
    }

    [Fact]
    public void SetVringBase_BitsAbove15_AreRefused()
    {
        using var rig = ConnectionRig.StartGpu();
        rig.Negotiate();
        Assert.False(rig.FrontEnd.SetVringBase(0, 0x10000));
        rig.AssertLogged(rig.Name, "SetVringBase", "bits above 15");
        Assert.True(rig.FrontEnd.SetVringBase(0, 0xFFFF));
    }

    [Fact]
    public void SetVringFd_ReservedBitsSet_IsRefused()
    {
        using var rig = ConnectionRig.StartGpu();
        rig.Negotiate();
        using var call = EventFd.Create();
        Assert.False(rig.FrontEnd.SendWithAck(VhostUserRequest.SetVringCall, RequestCatalog.U64(0x200), [call]));
        rig.AssertLogged(rig.Name, "SetVringCall", "reserved bits");
    }

    [Fact]
    public void SetVringKick_PollingModeWithoutFd_IsRefused()
    {
        using var rig = ConnectionRig.StartGpu();
        rig.Negotiate();
        Assert.False(rig.FrontEnd.SetVringFd(VhostUserRequest.SetVringKick, 0, null));
        rig.AssertLogged(rig.Name, "SetVringKick", "polling mode");
        // Call and err without an fd (the front-end polls) are fine.
        Assert.True(rig.FrontEnd.SetVringFd(VhostUserRequest.SetVringCall, 0, null));
        Assert.True(rig.FrontEnd.SetVringFd(VhostUserRequest.SetVringErr, 0, null));
    }

    [Fact]
    public void SetVringNumOrBase_WhileTheRingIsStarted_IsRefused()
    {
        using var rig = ConnectionRig.StartGpu();
        rig.Negotiate();
        using var vm = new RawVm(rig.FrontEnd);
        vm.Start();
        Assert.False(rig.FrontEnd.SetVringNum(0, 128));
        Assert.False(rig.FrontEnd.SetVringBase(0, 5));
        rig.AssertLogged(rig.Name, "SetVringNum", "while the ring is started");
        rig.AssertLogged(rig.Name, "SetVringBase", "while the ring is started");
        // The ring still works with what it had.
        Assert.Equal(VirtioGpuCtrlType.OkDisplayInfo, vm.Driver.GetDisplayInfo().Type);
    }

    [Fact]
    public void SetBackendReqFd_WithoutBackendReqNegotiated_IsRefused()
    {
        using var rig = ConnectionRig.StartGpu();
        rig.Negotiate(VhostUserProtocolFeatures.ReplyAck);
        var (mine, theirs) = UnixSocket.CreatePair();
        using (mine)
        using (theirs)
            Assert.False(rig.FrontEnd.SetBackendReqFd(theirs));
        rig.AssertLogged(rig.Name, "SetBackendReqFd", "BACKEND_REQ was not negotiated");
        rig.AssertAlive();
    }

    [Fact]
    public void ManyMessages_BackToBack_AreAllHandledInOrder()
    {
        using var rig = ConnectionRig.StartGpu();
        rig.Negotiate();
        // 200 requests written before any reply is read: framing must keep each message whole.
        for (int i = 0; i < 100; i++)
        {
            rig.FrontEnd.Send(VhostUserRequest.SetVringNum, RequestCatalog.State(0, (uint)(i % 2 == 0 ? 3 : 64)), needReply: true);
            rig.FrontEnd.Send(VhostUserRequest.GetQueueNum, []);
        }
        for (int i = 0; i < 100; i++)
        {
            ulong ack = RequestCatalog.ReadAck(rig.FrontEnd, VhostUserRequest.SetVringNum);
            Assert.Equal(i % 2 == 0, ack != 0); // num 3 refused, num 64 accepted
            using var q = rig.FrontEnd.ReceiveReply(VhostUserRequest.GetQueueNum);
            Assert.Equal(RequestCatalog.U64(2), q.Payload);
        }
    }
}
