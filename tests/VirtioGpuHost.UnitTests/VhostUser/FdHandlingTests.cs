using Tmds.Linux;
using VirtioGpuHost.Device.Wire;
using VirtioGpuHost.Interop;
using VirtioGpuHost.TestKit;
using VirtioGpuHost.VhostUser.Display;
using VirtioGpuHost.VhostUser.Wire;
using static Tmds.Linux.LibC;

namespace VirtioGpuHost.UnitTests.VhostUser;

/// <summary>
/// Fds that arrive where they don't belong, too few or too many: the request is refused (or
/// the connection closed) and every fd the front-end sent is closed, counted in /proc/self/fd.
/// </summary>
[Collection(ProcessWideCollection.Name)]
public class FdHandlingTests
{
    /// <summary>Runs <paramref name="body"/> on a fresh negotiated GPU connection and checks that no fd outlives it.</summary>
    /// <param name="connectionSurvives">The connection must still work afterwards, and the fds sent must be closed already then.</param>
    /// <param name="backEndKeepsState">The body gave the back-end fds it keeps (rings, memory): count only after the connection ended.</param>
    private static void WithoutFdLeak(Action<ConnectionRig> body, bool connectionSurvives = true, bool backEndKeepsState = false)
    {
        int baseline = ProcessResources.OpenFds();
        using (var rig = ConnectionRig.StartGpu())
        {
            rig.Negotiate();
            int afterSetUp = ProcessResources.OpenFds();
            body(rig);
            if (connectionSurvives) rig.AssertAlive();
            if (connectionSurvives && !backEndKeepsState)
            {
                // Every fd sent with the message is closed once it was handled.
                ProcessResources.AssertFdsBackTo(afterSetUp, "after the request was handled");
            }
        }
        ProcessResources.AssertFdsBackTo(baseline, "after the connection ended");
    }

    [Fact]
    public void SetMemTable_FewerFdsThanRegions_IsRefusedAndItsFdsClosed() => WithoutFdLeak(rig =>
    {
        using var a = new NamedMemFd("vgh-fdtest-a");
        using var b = new NamedMemFd("vgh-fdtest-b");
        var table = RequestCatalog.Table(a.Region(0), b.Region(0x100000));
        using (var fd = a.Fd.Duplicate())
            Assert.False(rig.FrontEnd.SendWithAck(VhostUserRequest.SetMemTable, table, [fd]));
        rig.AssertLogged(rig.Name, "SetMemTable", "1 fds for 2 regions");
        Assert.Equal(0, a.Mappings + b.Mappings);
    });

    [Fact]
    public void SetMemTable_MoreFdsThanRegions_IsRefusedAndItsFdsClosed() => WithoutFdLeak(rig =>
    {
        using var a = new NamedMemFd("vgh-fdtest-c");
        using (var fd1 = a.Fd.Duplicate())
        using (var fd2 = EventFd.Create())
            Assert.False(rig.FrontEnd.SendWithAck(VhostUserRequest.SetMemTable, RequestCatalog.Table(a.Region(0)), [fd1, fd2]));
        rig.AssertLogged(rig.Name, "SetMemTable", "2 fds for 1 regions");
    });

    [Fact]
    public void AddMemReg_WithoutItsFd_IsRefused() => WithoutFdLeak(rig =>
    {
        using var a = new NamedMemFd("vgh-fdtest-d");
        Assert.False(rig.FrontEnd.SendWithAck(VhostUserRequest.AddMemReg, RequestCatalog.Region(a.Region(0))));
        rig.AssertLogged(rig.Name, "AddMemReg", "0 fds attached, expected 1");
    });

    [Fact]
    public void AddMemReg_WithTwoFds_IsRefusedAndBothClosed() => WithoutFdLeak(rig =>
    {
        using var a = new NamedMemFd("vgh-fdtest-e");
        using (var fd1 = a.Fd.Duplicate())
        using (var fd2 = a.Fd.Duplicate())
            Assert.False(rig.FrontEnd.SendWithAck(VhostUserRequest.AddMemReg, RequestCatalog.Region(a.Region(0)), [fd1, fd2]));
        rig.AssertLogged(rig.Name, "AddMemReg", "2 fds attached, expected 1");
    });

    [Fact]
    public void SetVringKick_NoFdAndNoInvalidFdFlag_IsRefused() => WithoutFdLeak(rig =>
    {
        Assert.False(rig.FrontEnd.SendWithAck(VhostUserRequest.SetVringKick, RequestCatalog.U64(0)));
        rig.AssertLogged(rig.Name, "SetVringKick", "0 fds attached, expected 1");
    });

    [Fact]
    public void SetVringCall_InvalidFdFlagWithAnFd_IsRefusedAndTheFdClosed() => WithoutFdLeak(rig =>
    {
        using (var fd = EventFd.Create())
            Assert.False(rig.FrontEnd.SendWithAck(VhostUserRequest.SetVringCall, RequestCatalog.U64(VringFdPayload.InvalidFdFlag), [fd]));
        rig.AssertLogged(rig.Name, "SetVringCall", "1 fds attached, expected 0");
    });

    public static TheoryData<string, VhostUserRequest> NotificationFdsOfTheWrongKind()
    {
        var d = new TheoryData<string, VhostUserRequest>();
        foreach (var kind in new[] { "dev-zero", "regular-file", "socket" })
            foreach (var request in new[] { VhostUserRequest.SetVringKick, VhostUserRequest.SetVringCall, VhostUserRequest.SetVringErr })
                d.Add(kind, request);
        return d;
    }

    /// <summary>An fd of <paramref name="kind"/> (never an eventfd or a pipe) and what to dispose afterwards.</summary>
    private static (FdHandle Fd, IDisposable Owner) WrongKindFd(string kind, TempDir dir)
    {
        switch (kind)
        {
            case "dev-zero":
            {
                // Always readable: as a kick fd it would keep the event loop spinning.
                var file = File.OpenHandle("/dev/zero", FileMode.Open, FileAccess.Read);
                return (new FdHandle((int)file.DangerousGetHandle(), ownsHandle: false), file);
            }
            case "regular-file":
            {
                var file = File.OpenHandle(dir.File("not-an-eventfd"), FileMode.Create, FileAccess.ReadWrite);
                return (new FdHandle((int)file.DangerousGetHandle(), ownsHandle: false), file);
            }
            default:
            {
                var (a, b) = UnixSocket.CreatePair();
                b.Dispose();
                return (a, a);
            }
        }
    }

    [Theory]
    [MemberData(nameof(NotificationFdsOfTheWrongKind))]
    public void VringFd_NotAnEventFdOrPipe_IsRefusedWithALogAndAnEventFdWorksAfterwards(string kind, VhostUserRequest request) => WithoutFdLeak(rig =>
    {
        using var vm = new RawVm(rig.FrontEnd);
        using var dir = new TempDir();
        vm.SetFeatures();
        vm.SetMemTable();
        var (fd, owner) = WrongKindFd(kind, dir);
        using (owner)
            Assert.False(rig.FrontEnd.SetVringFd(request, 0, fd), $"{request} with a {kind} fd was accepted");
        rig.AssertLogged(rig.Name, $"refused {request}", "ring 0", "not an eventfd or a pipe");
        rig.AssertAlive();
        // The same ring set up with real eventfds works.
        vm.SetUpRing(0);
        vm.SetUpRing(1);
        Assert.Equal(VirtioGpuCtrlType.OkDisplayInfo, vm.Driver.GetDisplayInfo().Type);
        // Refused on a running ring too, which keeps the eventfd it had.
        (fd, owner) = WrongKindFd(kind, dir);
        using (owner)
            Assert.False(rig.FrontEnd.SetVringFd(request, 0, fd), $"{request} with a {kind} fd was accepted on a running ring");
        Assert.Equal(VirtioGpuCtrlType.OkNoData, vm.Driver.CreateResource2D(1, VirtioGpuFormat.B8G8R8X8Unorm, 8, 8).Type);
        Assert.True(rig.FrontEnd.SetVringEnable(0, false));
        rig.FrontEnd.GetVringBase(0);
        rig.FrontEnd.GetVringBase(1);
    }, backEndKeepsState: true);

    public static TheoryData<uint> RequestsWithoutFds => new(
        (uint)VhostUserRequest.SetFeatures, (uint)VhostUserRequest.SetOwner, (uint)VhostUserRequest.SetVringNum, (uint)VhostUserRequest.SetVringBase,
        (uint)VhostUserRequest.SetVringAddr, (uint)VhostUserRequest.SetVringEnable, (uint)VhostUserRequest.SetConfig,
        (uint)VhostUserRequest.SetProtocolFeatures, (uint)VhostUserRequest.ResetDevice, (uint)VhostUserRequest.ResetOwner, 77u);

    [Theory]
    [MemberData(nameof(RequestsWithoutFds))]
    public void FdsOnARequestThatTakesNone_AreRefusedAndClosed(uint id) => WithoutFdLeak(rig =>
    {
        using var vm = new RawVm(rig.FrontEnd);
        var request = (VhostUserRequest)id;
        byte[] payload = id == 77 ? [] : RequestCatalog.Valid(request, vm, []).Payload;
        using (var e1 = EventFd.Create())
        using (var e2 = EventFd.Create())
        using (var e3 = EventFd.Create())
        {
            rig.FrontEnd.Send(request, payload, [e1, e2, e3], needReply: true);
            Assert.NotEqual(0UL, RequestCatalog.ReadAck(rig.FrontEnd, request));
        }
        if (id != 77) rig.AssertLogged(rig.Name, request.ToString(), "3 fds attached, expected 0");
    });

    [Fact]
    public void RemMemReg_WithAnFd_IsAcceptedAndTheFdClosed() => WithoutFdLeak(rig =>
    {
        using var a = new NamedMemFd("vgh-fdtest-f");
        using (var fd = a.Fd.Duplicate())
            Assert.True(rig.FrontEnd.AddMemReg(a.Region(0), fd));
        using (var fd = a.Fd.Duplicate())
            Assert.True(rig.FrontEnd.SendWithAck(VhostUserRequest.RemMemReg, RequestCatalog.Region(a.Region(0)), [fd]));
        Assert.Equal(0, a.Mappings); // the back-end unmapped the removed region
    });

    [Fact]
    public void GpuSetSocket_TwoFds_IsRefusedAndBothClosed() => WithoutFdLeak(rig =>
    {
        var (a, b) = UnixSocket.CreatePair();
        var (c, d) = UnixSocket.CreatePair();
        using (a) using (b) using (c) using (d)
            Assert.False(rig.FrontEnd.SendWithAck(VhostUserRequest.GpuSetSocket, [], [b, d]));
        rig.AssertLogged(rig.Name, "GPU_SET_SOCKET", "2 fds");
    });

    [Fact]
    public void GpuSetSocket_NotASocket_TheDisplayIsDroppedAndTheDeviceKeepsWorking() => WithoutFdLeak(rig =>
    {
        using var vm = new RawVm(rig.FrontEnd);
        vm.Start();
        using (var notASocket = EventFd.Create())
            rig.FrontEnd.SendWithAck(VhostUserRequest.GpuSetSocket, [], [notASocket]);
        var info = vm.Driver.GetDisplayInfo();
        Assert.Equal(VirtioGpuCtrlType.OkDisplayInfo, info.Type);
        Assert.Equal(1280u, VirtioGpuHost.FrontEnd.GpuDriver.ParseDisplayInfo(info)[0].Rect.Width); // the device's own modes
        rig.AssertLogged(rig.Name, "display socket closed");
        Assert.True(rig.FrontEnd.SetVringEnable(0, false));
        rig.FrontEnd.GetVringBase(0);
        rig.FrontEnd.GetVringBase(1);
    }, backEndKeepsState: true);

    [Fact]
    public void SetBackendReqFd_NotASocket_IsRefusedAndTheConnectionContinues() => WithoutFdLeak(rig =>
    {
        using (var notASocket = EventFd.Create())
            Assert.False(rig.FrontEnd.SetBackendReqFd(notASocket));
        rig.AssertLogged(rig.Name, "SetBackendReqFd");
    });

    [Fact]
    public void DisplayReply_WithFdsAttached_TheFdsAreClosed() => WithoutFdLeak(rig =>
    {
        using var vm = new RawVm(rig.FrontEnd);
        vm.Start();
        using var display = new ScriptedDisplay();
        display.HandOver(rig.FrontEnd);
        Assert.Equal(GpuDisplayRequest.GetProtocolFeatures, display.Read().Request);
        using (var e1 = EventFd.Create())
        using (var e2 = EventFd.Create())
        {
            var msg = new byte[VhostUserHeader.Length + 8];
            new VhostUserHeader((uint)GpuDisplayRequest.GetProtocolFeatures, VhostUserHeader.FlagReply, 8).Write(msg);
            msg[VhostUserHeader.Length] = 1; // EDID
            Assert.Equal(IoStatus.Ok, UnixSocket.Send(display.Socket, msg, [e1, e2], out _));
        }
        Assert.Equal(GpuDisplayRequest.SetProtocolFeatures, display.Read().Request);
        Assert.Equal(VirtioGpuCtrlType.OkNoData, vm.Driver.CreateResource2D(1, VirtioGpuFormat.B8G8R8X8Unorm, 8, 8).Type);
        Assert.True(rig.FrontEnd.SetVringEnable(0, false));
        rig.FrontEnd.GetVringBase(0);
        rig.FrontEnd.GetVringBase(1);
    }, backEndKeepsState: true);

    [Fact]
    public void GetFeatures_WithAnFd_ClosesTheConnectionAndTheFd() => WithoutFdLeak(rig =>
    {
        using (var fd = EventFd.Create())
            rig.FrontEnd.Send(VhostUserRequest.GetFeatures, [], [fd]);
        rig.AssertClosed();
    }, connectionSurvives: false);

    [Fact]
    public void Message_WithMoreThan32Fds_ClosesTheConnectionAndNoFdLeaks() => WithoutFdLeak(rig =>
    {
        var fds = Enumerable.Range(0, 33).Select(_ => EventFd.Create()).ToArray();
        try
        {
            SendWithManyFds(rig.FrontEnd.Socket, VhostUserRequest.SetOwner, fds);
        }
        finally
        {
            foreach (var fd in fds) fd.Dispose();
        }
        rig.AssertClosed();
        rig.AssertLogged(rig.Name, "truncated");
    }, connectionSurvives: false);

    [Fact]
    public void FdsOnTheSecondChunkOfAMessage_AreClosed() => WithoutFdLeak(rig =>
    {
        // The fds ride on the header's first byte; fds that come with later bytes of the same
        // message (a broken sender) must not be attributed to anything, and must be closed.
        var msg = new byte[VhostUserHeader.Length + 8];
        new VhostUserHeader((uint)VhostUserRequest.SetFeatures, VhostUserHeader.Version | VhostUserHeader.FlagNeedReply, 8).Write(msg);
        RequestCatalog.U64(RawVm.DefaultFeatures).CopyTo(msg, VhostUserHeader.Length);
        rig.FrontEnd.SendRaw(msg.AsSpan(0, VhostUserHeader.Length));
        using (var fd = EventFd.Create())
            rig.FrontEnd.SendRaw(msg.AsSpan(VhostUserHeader.Length), [fd]);
        Assert.Equal(0UL, RequestCatalog.ReadAck(rig.FrontEnd, VhostUserRequest.SetFeatures));
    });

    /// <summary>sendmsg with any number of fds (the Interop layer refuses to send more than 32).</summary>
    private static unsafe void SendWithManyFds(FdHandle socket, VhostUserRequest request, FdHandle[] fds)
    {
        var header = new byte[VhostUserHeader.Length];
        new VhostUserHeader((uint)request, VhostUserHeader.Version, 0).Write(header);
        int dataLen = sizeof(int) * fds.Length;
        int controlLen = 16 + ((dataLen + 7) & ~7);
        byte* control = stackalloc byte[controlLen];
        new Span<byte>(control, controlLen).Clear();
        fixed (byte* h = header)
        {
            iovec iov = default;
            iov.iov_base = h;
            iov.iov_len = (size_t)(ulong)header.Length;
            msghdr msg = default;
            msg.msg_iov = &iov;
            msg.msg_iovlen = 1;
            msg.msg_control = control;
            msg.msg_controllen = (socklen_t)controlLen;
            cmsghdr* c = (cmsghdr*)control;
            c->cmsg_len = (socklen_t)(16 + dataLen);
            c->cmsg_level = SOL_SOCKET;
            c->cmsg_type = SCM_RIGHTS;
            int* data = (int*)(control + 16);
            for (int i = 0; i < fds.Length; i++) data[i] = fds[i].Number;
            long rc = sendmsg(socket.Number, &msg, MSG_NOSIGNAL);
            Assert.True(rc == header.Length, $"sendmsg returned {rc}");
        }
    }
}

/// <summary>
/// A named memfd standing for a guest RAM region; the test does not map it, so every
/// mapping of it in /proc/self/maps is the back-end's. The front-end address is made up.
/// </summary>
internal sealed class NamedMemFd : IDisposable
{
    private static long s_nextUserAddress = 0x7000_0000_0000;

    public NamedMemFd(string name, ulong size = 1 << 20)
    {
        Name = name;
        Size = size;
        Fd = MemFd.Create(name, size);
        UserAddress = (ulong)Interlocked.Add(ref s_nextUserAddress, 0x1000_0000);
    }

    public string Name { get; }
    public ulong Size { get; }
    public FdHandle Fd { get; }
    public ulong UserAddress { get; }

    public MemoryRegionDescriptor Region(ulong gpa) => new(gpa, Size, UserAddress, 0);

    /// <summary>Mappings of this memfd in this process (the back-end's).</summary>
    public int Mappings => ProcessResources.MemfdMappings(Name);

    public void Dispose() => Fd.Dispose();
}
