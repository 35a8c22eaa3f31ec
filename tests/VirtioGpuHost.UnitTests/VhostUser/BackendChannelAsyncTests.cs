using System.Buffers.Binary;
using VirtioGpuHost.Backend;
using VirtioGpuHost.GuestMemory;
using VirtioGpuHost.Interop;
using VirtioGpuHost.VhostUser.Backend;
using VirtioGpuHost.VhostUser.Transport;
using VirtioGpuHost.VhostUser.Wire;

namespace VirtioGpuHost.UnitTests.VhostUser;

/// <summary>
/// The back-end side of host-visible shared memory: GET_SHMEM_CONFIG, the SHMEM protocol feature,
/// and SHMEM_MAP/UNMAP sent asynchronously on the connection's event loop over a back-end channel
/// whose front-end end the test plays by hand (delayed, missing, closed, malformed replies).
/// </summary>
[Collection(ProcessWideCollection.Name)]
public class BackendChannelAsyncTests
{
    private const ulong Region = 64UL << 20;
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(10);

    /// <summary>A negotiated GPU connection with a host-visible region, and the raw front-end end of its back-end channel.</summary>
    private sealed class Setup : IDisposable
    {
        public Setup(VhostUserProtocolFeatures? protocol = null, TimeSpan? replyTimeout = null)
        {
            Rig = ConnectionRig.StartGpuWithHostVisible(Region, replyTimeout);
            Rig.Negotiate(protocol);
            var (mine, theirs) = UnixSocket.CreatePair();
            using (theirs) Assert.True(Rig.FrontEnd.SetBackendReqFd(theirs));
            Rig.AssertAlive(); // without REPLY_ACK nothing waited for SET_BACKEND_REQ_FD to be handled
            UnixSocket.SetReceiveTimeout(mine, Wait);
            Peer = new FramedSocket(mine);
            Blob = MappedBlock.CreateMemFd("vgh-bca-blob", 1 << 20);
        }

        public ConnectionRig Rig { get; }
        public FramedSocket Peer { get; }
        public MappedBlock Blob { get; }

        public VhostUserHostVisibleRegion? HostVisible => Rig.OnLoop(() => Rig.Gpu.HostVisible);

        public Task<bool> Map(ulong shmOffset, ulong length = 0x10000, ulong blobOffset = 0, bool writable = true) =>
            Rig.OnLoop(() => Rig.Gpu.HostVisible!.MapAsync(Blob, blobOffset, shmOffset, length, writable));

        public Task<bool> Unmap(ulong shmOffset, ulong length = 0x10000) =>
            Rig.OnLoop(() => Rig.Gpu.HostVisible!.UnmapAsync(shmOffset, length));

        public ReceivedMessage Receive() => Peer.Receive() ?? throw new IOException("the back-end closed its channel");

        public void Reply(uint request, ulong value, uint flags = VhostUserHeader.Version | VhostUserHeader.FlagReply)
        {
            var p = new byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(p, value);
            Peer.Send(request, flags, p);
        }

        public void Dispose()
        {
            Rig.Dispose();
            Peer.Dispose();
            Blob.Release();
        }
    }

    private static void Completes(Task<bool> t, TimeSpan timeout) => Assert.True(t.Wait(timeout), "the request did not complete");
    private static bool Value(Task<bool> t) => t.Wait(Wait) ? t.Result : throw new TimeoutException("the request did not complete");
    private static bool WaitAll(Task<bool>[] tasks, TimeSpan timeout) => Task.WaitAll(tasks, timeout);

    // ---- GET_SHMEM_CONFIG and the feature ----

    [Fact]
    public void GetShmemConfig_WithRegion_Is2056BytesWithOneRegionAtShmid1()
    {
        using var rig = ConnectionRig.StartGpuWithHostVisible(Region);
        Assert.True((rig.FrontEnd.GetProtocolFeatures() & VhostUserProtocolFeatures.Shmem) != 0);
        Assert.Equal(1UL << 22, (ulong)VhostUserProtocolFeatures.Shmem);
        rig.Negotiate();
        var reply = rig.FrontEnd.GetShmemConfig();
        Assert.Equal(2056, reply.Length);
        var expected = new byte[2056];
        BinaryPrimitives.WriteUInt32LittleEndian(expected, 1);          // nregions = non-zero entries
        BinaryPrimitives.WriteUInt64LittleEndian(expected.AsSpan(8 + 8 * 1), Region); // memory_sizes[1]
        Assert.Equal(expected, reply);
    }

    [Fact]
    public void GetShmemConfig_WithoutRegion_NoShmemFeatureAndNoRegions()
    {
        using var rig = ConnectionRig.StartGpu();
        Assert.Equal(VhostUserProtocolFeatures.None, rig.FrontEnd.GetProtocolFeatures() & (VhostUserProtocolFeatures.Shmem | VhostUserProtocolFeatures.GpaAddresses | VhostUserProtocolFeatures.GetVringBaseInflight));
        rig.Negotiate();
        Assert.Equal(new byte[2056], rig.FrontEnd.GetShmemConfig());
    }

    [Theory]
    [InlineData(1UL)]
    [InlineData(2048UL)]
    [InlineData(0x3000000UL)]        // 48 MiB: QEMU aborts on a non-power-of-two BAR
    [InlineData(128UL << 30)]        // past the cap
    public void HostVisibleSize_Invalid_IsRejected(ulong size)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => VhostUserGpuDevice.ValidateHostVisibleSize(size));
        var server = new GpuBackendServer(new VirtioGpuHost.Device.GpuDeviceOptions(), Microsoft.Extensions.Logging.Abstractions.NullLoggerFactory.Instance);
        Assert.Throws<ArgumentOutOfRangeException>(() => server.HostVisibleSize = size);
        Assert.Equal(0UL, server.HostVisibleSize);
    }

    [Fact]
    public void HostVisible_NeedsShmemBackendReqAndSendFd()
    {
        var all = VhostUserConnectionFeatures();
        using (var s = new Setup(all & ~VhostUserProtocolFeatures.BackendSendFd)) Assert.Null(s.HostVisible);
        using (var s = new Setup(all & ~VhostUserProtocolFeatures.Shmem)) Assert.Null(s.HostVisible);
        using (var s = new Setup(all))
        {
            Assert.NotNull(s.HostVisible);
            Assert.Equal(Region, s.HostVisible!.Size);
        }
    }

    private static VhostUserProtocolFeatures VhostUserConnectionFeatures() =>
        VhostUserBackendConnection.CoreProtocolFeatures | VhostUserProtocolFeatures.Config | VhostUserProtocolFeatures.Shmem;

    // ---- the asynchronous channel ----

    [Fact]
    public void Map_CompletesWhileTheMainSocketKeepsBeingServed()
    {
        using var s = new Setup();
        var task = s.Map(0x20000, 0x10000, blobOffset: 0x1000, writable: true);
        using (var req = s.Receive())
        {
            Assert.Equal((uint)VhostUserBackendRequest.ShmemMap, req.Header.Request);
            Assert.Equal(VhostUserHeader.Version | VhostUserHeader.FlagNeedReply, req.Header.Flags);
            Assert.Equal(40, req.Payload.Length);
            Assert.Equal(new ShmemMapRequest(1, 0x1000, 0x20000, 0x10000, 1), ShmemMapRequest.Read(req.Payload));
            Assert.Equal(0, req.Payload.AsSpan(1, 7).IndexOfAnyExcept((byte)0) + 1); // padding is zero
            Assert.Equal(1, req.Fds.Count);
            using var fd = req.Fds.Take(0);
            Assert.Equal(1UL << 20, MemFd.GetSize(fd)); // the blob's memfd

            // Not answered yet: the loop still serves the main socket (QEMU may be blocked on it).
            for (int i = 0; i < 3; i++) s.Rig.AssertAlive();
            Assert.NotNull(s.Rig.FrontEnd.GetConfig(0, 16));
            Assert.False(task.IsCompleted);
            s.Reply(req.Header.Request, 0);
        }
        Completes(task, Wait);
        Assert.True(Value(task));

        var unmap = s.Unmap(0x20000);
        using (var req = s.Receive())
        {
            Assert.Equal((uint)VhostUserBackendRequest.ShmemUnmap, req.Header.Request);
            Assert.Equal(0, req.Fds.Count);
            Assert.Equal(new ShmemMapRequest(1, 0, 0x20000, 0x10000, 0), ShmemMapRequest.Read(req.Payload));
            s.Reply(req.Header.Request, 1); // refused
        }
        Completes(unmap, Wait);
        Assert.False(Value(unmap));
        s.Rig.AssertLogged(s.Rig.Name, "refused", "ShmemUnmap");
    }

    [Fact]
    public void Map_RepliesComeInOrder_EachCompletesItsOwnTask()
    {
        using var s = new Setup();
        var tasks = Enumerable.Range(0, 8).Select(i => s.Map((ulong)i * 0x10000)).ToArray();
        var values = new ulong[] { 0, 1, 0, 0, 1, 0, 1, 0 };
        for (int i = 0; i < tasks.Length; i++)
        {
            using var req = s.Receive();
            Assert.Equal((ulong)i * 0x10000, ShmemMapRequest.Read(req.Payload).ShmOffset);
            s.Reply(req.Header.Request, values[i]);
        }
        Assert.True(WaitAll(tasks, Wait));
        Assert.Equal(values.Select(v => v == 0), tasks.Select(Value));
        Assert.Equal(0, s.Rig.OnLoop(() => s.Rig.Connection.BackendChannel!.PendingCount));
    }

    [Fact]
    public void Map_NoReplyInTime_FailsThePendingOnes_LateSuccessIsUndone()
    {
        using var s = new Setup(replyTimeout: TimeSpan.FromMilliseconds(300));
        var first = s.Map(0);
        var second = s.Map(0x10000);
        Assert.True(WaitAll([first, second], Wait));
        Assert.False(Value(first));
        Assert.False(Value(second));
        s.Rig.AssertLogged(s.Rig.Name, "no reply to ShmemMap", "failed 2 pending");
        s.Rig.AssertAlive();

        // The late replies are recognised: the first mapping did happen, so it is undone.
        using (var r1 = s.Receive()) s.Reply(r1.Header.Request, 0);
        using (var r2 = s.Receive()) s.Reply(r2.Header.Request, 1);
        using (var undo = s.Receive())
        {
            Assert.Equal((uint)VhostUserBackendRequest.ShmemUnmap, undo.Header.Request);
            Assert.Equal(new ShmemMapRequest(1, 0, 0, 0x10000, 0), ShmemMapRequest.Read(undo.Payload));
            s.Reply(undo.Header.Request, 0);
        }
        s.Rig.AssertLogged(s.Rig.Name, "undoing the late mapping");

        // The channel still works.
        var third = s.Map(0x40000);
        using (var r3 = s.Receive()) s.Reply(r3.Header.Request, 0);
        Completes(third, Wait);
        Assert.True(Value(third));
        Assert.NotNull(s.HostVisible);
    }

    [Fact]
    public void ChannelClosedByTheFrontEnd_FailsPending_DropsTheChannel_ConnectionGoesOn()
    {
        using var s = new Setup();
        var pending = s.Map(0);
        using (s.Receive()) { }
        UnixSocket.Shutdown(s.Peer.Socket);
        Completes(pending, Wait);
        Assert.False(Value(pending));
        Assert.True(ProcessResources.WaitUntil(() => s.Rig.OnLoop(() => s.Rig.Connection.BackendChannel) is null, Wait));
        Assert.Null(s.HostVisible);
        s.Rig.AssertLogged(s.Rig.Name, "back-end channel closed");
        s.Rig.AssertAlive();
        // Later requests fail at once, with a log line.
        var later = s.Rig.OnLoop(() => new VhostUserHostVisibleRegion(Region, s.Rig.Connection, NullLog).MapAsync(s.Blob, 0, 0, 0x1000, true));
        Completes(later, Wait);
        Assert.False(Value(later));
    }

    private static readonly Microsoft.Extensions.Logging.ILogger NullLog = Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance;

    public static TheoryData<string, uint, uint, int, bool> MalformedReplies => new()
    {
        // name, request id, flags, payload size, attach an fd
        { "reply to another request", (uint)VhostUserBackendRequest.ShmemUnmap, 0x5, 8, false },
        { "payload of 4 bytes", (uint)VhostUserBackendRequest.ShmemMap, 0x5, 4, false },
        { "payload of 16 bytes", (uint)VhostUserBackendRequest.ShmemMap, 0x5, 16, false },
        { "not marked as a reply", (uint)VhostUserBackendRequest.ShmemMap, 0x1, 8, false },
        { "wrong version", (uint)VhostUserBackendRequest.ShmemMap, 0x6, 8, false },
        { "an fd attached", (uint)VhostUserBackendRequest.ShmemMap, 0x5, 8, true },
    };

    [Theory]
    [MemberData(nameof(MalformedReplies))]
    public void MalformedReply_IsAProtocolViolationOfTheChannel(string name, uint request, uint flags, int size, bool withFd)
    {
        _ = name;
        int baseline = ProcessResources.OpenFds();
        using (var s = new Setup())
        {
            var pending = s.Map(0);
            var second = s.Map(0x10000);
            using (s.Receive()) { }
            using var extra = EventFd.Create();
            s.Peer.Send(request, flags, new byte[size], withFd ? [extra] : default);
            Assert.True(WaitAll([pending, second], Wait));
            Assert.False(Value(pending));
            Assert.False(Value(second));
            s.Rig.AssertLogged(s.Rig.Name, "back-end channel protocol violation");
            Assert.True(ProcessResources.WaitUntil(() => s.Rig.OnLoop(() => s.Rig.Connection.BackendChannel) is null, Wait));
            s.Rig.AssertAlive();
        }
        ProcessResources.AssertFdsBackTo(baseline, "after the connection ended");
    }

    [Fact]
    public void UnsolicitedReply_IsAProtocolViolation()
    {
        using var s = new Setup();
        s.Reply((uint)VhostUserBackendRequest.ShmemMap, 0);
        Assert.True(ProcessResources.WaitUntil(() => s.Rig.OnLoop(() => s.Rig.Connection.BackendChannel) is null, Wait));
        s.Rig.AssertLogged(s.Rig.Name, "no request awaits a reply");
        s.Rig.AssertAlive();
    }

    [Fact]
    public void WithoutReplyAck_NoNeedReply_CompletesOnceSent()
    {
        using var s = new Setup(VhostUserConnectionFeatures() & ~VhostUserProtocolFeatures.ReplyAck);
        var task = s.Map(0);
        Completes(task, Wait);
        Assert.True(Value(task));
        using var req = s.Receive();
        Assert.Equal(VhostUserHeader.Version, req.Header.Flags); // no NEED_REPLY
        Assert.Equal(1, req.Fds.Count);
        s.Rig.AssertLogged(s.Rig.Name, "REPLY_ACK not negotiated");
    }

    [Fact]
    public void FrontEndThatDoesNotRead_RequestsQueueWithoutBlockingTheLoop()
    {
        using var s = new Setup(replyTimeout: TimeSpan.FromSeconds(30));
        // Enough requests to fill the socket buffer several times over; none is read yet.
        var tasks = Enumerable.Range(0, 2000).Select(i => s.Map((ulong)(i % 1000) * 0x10000)).ToArray();
        s.Rig.AssertAlive();
        int queued = s.Rig.OnLoop(() => s.Rig.Connection.BackendChannel!.PendingCount);
        Assert.Equal(2000, queued);
        for (int i = 0; i < tasks.Length; i++)
        {
            using var req = s.Receive();
            Assert.Equal(1, req.Fds.Count);
            s.Reply(req.Header.Request, 0);
        }
        Assert.True(WaitAll(tasks, TimeSpan.FromSeconds(60)));
        Assert.All(tasks, t => Assert.True(Value(t)));
    }

    [Fact]
    public void DeviceReset_FailsPendingRequests()
    {
        using var s = new Setup();
        var pending = s.Map(0);
        using (s.Receive()) { }
        Assert.True(s.Rig.FrontEnd.ResetDevice());
        Completes(pending, Wait);
        Assert.False(Value(pending));
        s.Rig.AssertLogged(s.Rig.Name, "pending request(s) failed", "device reset");
    }

    [Fact]
    public void Disconnect_FailsPendingRequests_NoFdLeak()
    {
        int baseline = ProcessResources.OpenFds();
        Task<bool> pending;
        using (var s = new Setup())
        {
            pending = s.Map(0);
            using (s.Receive()) { }
            s.Rig.FrontEnd.Dispose();
            Assert.True(s.Rig.WaitForEnd(Wait));
            Completes(pending, Wait);
            Assert.False(Value(pending));
        }
        ProcessResources.AssertFdsBackTo(baseline, "after the connection ended");
    }

    [Fact]
    public void SynchronousRequest_OnAnAttachedChannel_IsRefused()
    {
        using var s = new Setup();
        var ex = s.Rig.OnLoop(() => Record.Exception(() => s.Rig.Connection.BackendChannel!.Request(VhostUserBackendRequest.ShmemUnmap, new byte[40])));
        Assert.IsType<InvalidOperationException>(ex);
    }

    // ---- the memory table takes the mappings QEMU feeds back ----

    [Fact]
    public void AddMemReg_BeyondTheSlotsReported_IsAcceptedUpToTheHardCap()
    {
        using var rig = ConnectionRig.StartGpuWithHostVisible(Region);
        rig.Negotiate();
        using var mem = MemFd.Create("vgh-bca-slots", 4096);
        int cap = VhostUserBackendConnection.MaxMemRegions;
        Assert.Equal(509 + 1024, cap);
        for (int i = 0; i < cap; i++)
        {
            var d = new MemoryRegionDescriptor(0x80_0000_0000UL + (ulong)i * 0x1000, 0x1000, 0x7100_0000_0000UL + (ulong)i * 0x1000, 0);
            Assert.True(rig.FrontEnd.AddMemReg(d, mem), $"region {i} refused");
        }
        Assert.False(rig.FrontEnd.AddMemReg(new MemoryRegionDescriptor(0x90_0000_0000UL, 0x1000, 0x7200_0000_0000UL, 0), mem));
        rig.AssertLogged(rig.Name, "memory regions are in use");
        Assert.False(rig.Logged("memory slots are in use"));
        // Fields are still checked past the slot limit, and REM_MEM_REG frees a place.
        Assert.True(rig.FrontEnd.RemMemReg(new MemoryRegionDescriptor(0x80_0000_0000UL, 0x1000, 0x7100_0000_0000UL, 0)));
        Assert.False(rig.FrontEnd.AddMemReg(new MemoryRegionDescriptor(0x90_0000_0000UL, 0x2000, 0x7200_0000_0000UL, 0), mem)); // past the 4 KiB file
        Assert.True(rig.FrontEnd.AddMemReg(new MemoryRegionDescriptor(0x90_0000_0000UL, 0x1000, 0x7200_0000_0000UL, 0), mem));
        Assert.Equal(cap, rig.OnLoop(() => rig.Connection.Memory.Regions.Count));
    }
}
