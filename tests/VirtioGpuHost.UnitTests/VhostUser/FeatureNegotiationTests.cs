using VirtioGpuHost.Device;
using VirtioGpuHost.Device.Wire;
using VirtioGpuHost.Virtio;
using VirtioGpuHost.VhostUser.Wire;

namespace VirtioGpuHost.UnitTests.VhostUser;

/// <summary>Features, protocol features and REPLY_ACK, over a real socket to the real handler.</summary>
public class FeatureNegotiationTests
{
    private const ulong RingReset = 1UL << 40;

    [Fact]
    public void GetFeatures_GpuDevice_OffersExactlyTheImplementedBits()
    {
        using var rig = ConnectionRig.StartGpu();
        ulong offered = rig.FrontEnd.GetFeatures();
        Assert.Equal(VirtioFeatures.Version1 | VirtioFeatures.IndirectDesc | VirtioFeatures.EventIdx | VirtioGpuFeatures.Edid |
                     VhostUserFeatures.ProtocolFeatures, offered);
    }

    [Fact]
    public void GetFeatures_EdidDisabled_DoesNotOfferEdid()
    {
        using var rig = ConnectionRig.StartGpu(new GpuDeviceOptions { Edid = false });
        Assert.Equal(0UL, rig.FrontEnd.GetFeatures() & VirtioGpuFeatures.Edid);
    }

    [Fact]
    public void GetProtocolFeatures_GpuDevice_OffersExactlyTheImplementedBits()
    {
        using var rig = ConnectionRig.StartGpu();
        var offered = rig.FrontEnd.GetProtocolFeatures();
        Assert.Equal(VhostUserProtocolFeatures.Mq | VhostUserProtocolFeatures.ReplyAck | VhostUserProtocolFeatures.BackendReq |
                     VhostUserProtocolFeatures.BackendSendFd | VhostUserProtocolFeatures.Config | VhostUserProtocolFeatures.ConfigureMemSlots |
                     VhostUserProtocolFeatures.ResetDevice, offered);
        foreach (var never in new[]
                 {
                     VhostUserProtocolFeatures.HostNotifier, VhostUserProtocolFeatures.LogShmfd, VhostUserProtocolFeatures.InflightShmfd,
                     VhostUserProtocolFeatures.GpaAddresses, VhostUserProtocolFeatures.Shmem, VhostUserProtocolFeatures.InbandNotifications,
                     VhostUserProtocolFeatures.Status, VhostUserProtocolFeatures.DeviceState, VhostUserProtocolFeatures.Pagefault,
                 })
            Assert.Equal(VhostUserProtocolFeatures.None, offered & never);
    }

    [Fact]
    public void GetQueueNumAndMaxMemSlots_GpuDevice_AnswerTwoQueuesAnd509Slots()
    {
        using var rig = ConnectionRig.StartGpu();
        rig.Negotiate();
        Assert.Equal(2UL, rig.FrontEnd.GetQueueNum());
        Assert.Equal(509UL, rig.FrontEnd.GetMaxMemSlots());
    }

    [Fact]
    public void SetFeatures_BitsNeverOffered_AreAckedAndNotPassedToTheDevice()
    {
        var device = new RecordingDevice();
        using var rig = ConnectionRig.Start(device);
        rig.Negotiate();
        // QEMU acks RING_RESET whether or not it was offered; bit 0 (VIRGL) was never offered either.
        Assert.True(rig.FrontEnd.SetFeatures(VirtioFeatures.Version1 | VirtioFeatures.EventIdx | VhostUserFeatures.ProtocolFeatures | RingReset | 1));
        Assert.Equal(VirtioFeatures.Version1 | VirtioFeatures.EventIdx, device.AckedFeatures);
        rig.AssertAlive();
    }

    [Fact]
    public void SetFeatures_RingResetAcked_GpuStillServesCommands()
    {
        using var rig = ConnectionRig.StartGpu();
        rig.Negotiate();
        using var vm = new RawVm(rig.FrontEnd);
        vm.Start(RawVm.DefaultFeatures | RingReset);
        var r = vm.Driver.GetDisplayInfo();
        Assert.Equal(VirtioGpuCtrlType.OkDisplayInfo, r.Type);
    }

    [Fact]
    public void SetProtocolFeatures_BitsNeverOffered_AreIgnoredWithAWarning()
    {
        using var rig = ConnectionRig.StartGpu();
        rig.FrontEnd.GetFeatures();
        rig.FrontEnd.GetProtocolFeatures();
        rig.FrontEnd.SetProtocolFeatures(VhostUserProtocolFeatures.ReplyAck | VhostUserProtocolFeatures.LogShmfd | VhostUserProtocolFeatures.HostNotifier |
                                         VhostUserProtocolFeatures.GpaAddresses);
        Assert.True(rig.FrontEnd.SetOwner()); // acked: REPLY_ACK is on
        Assert.Equal(VhostUserProtocolFeatures.ReplyAck, rig.OnLoop(() => rig.Connection.NegotiatedProtocolFeatures));
        rig.AssertLogged(rig.Name, "SET_PROTOCOL_FEATURES", "unoffered");
    }

    public static TheoryData<VhostUserRequest> AckOnlyRequests => new(RequestCatalog.AckOnly);

    [Theory]
    [MemberData(nameof(AckOnlyRequests))]
    public void NeedReply_ValidRequest_IsAnsweredWithZero(VhostUserRequest request)
    {
        using var rig = ConnectionRig.StartGpu();
        rig.Negotiate();
        using var vm = new RawVm(rig.FrontEnd);
        var keep = new List<IDisposable>();
        try
        {
            RequestCatalog.Prepare(request, vm);
            using var r = RequestCatalog.Valid(request, vm, keep);
            Assert.Equal(0UL, RequestCatalog.SendForAck(rig.FrontEnd, r));
            rig.AssertAlive();
        }
        finally
        {
            foreach (var k in keep) k.Dispose();
        }
    }

    [Theory]
    [MemberData(nameof(AckOnlyRequests))]
    public void NeedReply_RefusedRequest_IsAnsweredWithNonZero(VhostUserRequest request)
    {
        using var rig = ConnectionRig.StartGpu();
        rig.Negotiate();
        using var vm = new RawVm(rig.FrontEnd);
        var keep = new List<IDisposable>();
        try
        {
            RequestCatalog.Prepare(request, vm);
            using var valid = RequestCatalog.Valid(request, vm, keep);
            // Eight bytes too many is wrong for every one of them.
            using var r = valid with { Payload = [.. valid.Payload, .. new byte[8]] };
            Assert.NotEqual(0UL, RequestCatalog.SendForAck(rig.FrontEnd, r));
            rig.AssertAlive();
        }
        finally
        {
            foreach (var k in keep) k.Dispose();
        }
    }

    [Fact]
    public void NeedReply_UnknownRequest_IsAnsweredWithNonZero()
    {
        using var rig = ConnectionRig.StartGpu();
        rig.Negotiate();
        rig.FrontEnd.Send((VhostUserRequest)77, [], needReply: true);
        Assert.NotEqual(0UL, RequestCatalog.ReadAck(rig.FrontEnd, (VhostUserRequest)77));
        rig.AssertAlive();
    }

    [Fact]
    public void NeedReply_WithoutReplyAckNegotiated_NoAckIsSent()
    {
        using var rig = ConnectionRig.StartGpu();
        rig.FrontEnd.GetFeatures();
        var offered = rig.FrontEnd.GetProtocolFeatures();
        rig.FrontEnd.SetProtocolFeatures(offered & ~VhostUserProtocolFeatures.ReplyAck);
        // A good request and a refused one, both asking for a reply that was never negotiated.
        rig.FrontEnd.Send(VhostUserRequest.SetOwner, [], needReply: true);
        rig.FrontEnd.Send(VhostUserRequest.SetVringNum, RequestCatalog.State(0, 3), needReply: true);
        rig.FrontEnd.Send((VhostUserRequest)77, [], needReply: true);
        // The next thing on the socket must be the GET_FEATURES reply, not an ack.
        rig.AssertAlive();
        rig.AssertLogged(rig.Name, "SetVringNum", "num 3");
    }

    [Fact]
    public void NeedReply_OnRequestWithItsOwnReply_OnlyThatReplyIsSent()
    {
        using var rig = ConnectionRig.StartGpu();
        rig.Negotiate();
        rig.FrontEnd.Send(VhostUserRequest.GetQueueNum, [], needReply: true);
        using (var reply = rig.FrontEnd.ReceiveReply(VhostUserRequest.GetQueueNum))
            Assert.Equal(RequestCatalog.U64(2), reply.Payload);
        rig.AssertAlive(); // no ack was queued in between
    }

    [Fact]
    public void DeviceRequest_ClaimedByTheDevice_IsAckedByIt()
    {
        var device = new RecordingDevice();
        using var rig = ConnectionRig.Start(device);
        rig.Negotiate();
        rig.FrontEnd.Send((VhostUserRequest)RecordingDevice.DeviceRequest, [], needReply: true);
        Assert.Equal(0UL, RequestCatalog.ReadAck(rig.FrontEnd, (VhostUserRequest)RecordingDevice.DeviceRequest));
        Assert.True(device.Has("device request"));
    }
}
