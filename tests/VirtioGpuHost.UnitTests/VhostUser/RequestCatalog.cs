using System.Buffers.Binary;
using VirtioGpuHost.FrontEnd;
using VirtioGpuHost.Interop;
using VirtioGpuHost.VhostUser.Wire;

namespace VirtioGpuHost.UnitTests.VhostUser;

/// <summary>A front-end request as bytes plus the fds that go with it (the test closes its copies after sending).</summary>
internal sealed record RawRequest(VhostUserRequest Request, byte[] Payload, FdHandle[] Fds) : IDisposable
{
    public void Dispose()
    {
        foreach (var fd in Fds) fd.Dispose();
    }
}

/// <summary>
/// A valid example of every front-end request that has no reply of its own (only an ack),
/// for tests that send each one well-formed, malformed, or with NEED_REPLY.
/// </summary>
internal static class RequestCatalog
{
    /// <summary>Requests answered only by an ack.</summary>
    public static readonly VhostUserRequest[] AckOnly =
    [
        VhostUserRequest.SetFeatures, VhostUserRequest.SetOwner, VhostUserRequest.ResetOwner, VhostUserRequest.SetMemTable,
        VhostUserRequest.SetVringNum, VhostUserRequest.SetVringAddr, VhostUserRequest.SetVringBase, VhostUserRequest.SetVringKick,
        VhostUserRequest.SetVringCall, VhostUserRequest.SetVringErr, VhostUserRequest.SetProtocolFeatures, VhostUserRequest.SetVringEnable,
        VhostUserRequest.SetBackendReqFd, VhostUserRequest.SetConfig, VhostUserRequest.GpuSetSocket, VhostUserRequest.ResetDevice,
        VhostUserRequest.AddMemReg, VhostUserRequest.RemMemReg,
    ];

    /// <summary>Requests that always get a reply payload of their own.</summary>
    public static readonly VhostUserRequest[] WithReply =
    [
        VhostUserRequest.GetFeatures, VhostUserRequest.GetProtocolFeatures, VhostUserRequest.GetQueueNum, VhostUserRequest.GetMaxMemSlots,
        VhostUserRequest.GetVringBase, VhostUserRequest.GetConfig, VhostUserRequest.GetShmemConfig,
    ];

    /// <summary>How the handler names the request in its refusal log lines.</summary>
    public static string LogName(VhostUserRequest r) => r == VhostUserRequest.GpuSetSocket ? "GPU_SET_SOCKET" : r.ToString();

    /// <summary>The spec's spelling: GetConfig → GET_CONFIG.</summary>
    public static string SpecName(VhostUserRequest r) =>
        string.Concat(r.ToString().Select((c, i) => i > 0 && char.IsUpper(c) ? "_" + c : char.ToUpperInvariant(c).ToString()));

    public static byte[] U64(ulong v)
    {
        var b = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(b, v);
        return b;
    }

    public static byte[] State(uint index, uint num)
    {
        var b = new byte[VringState.Size];
        new VringState(index, num).Write(b);
        return b;
    }

    public static byte[] Region(MemoryRegionDescriptor d)
    {
        var b = new byte[SingleMemoryRegion.Size];
        SingleMemoryRegion.Write(b, d);
        return b;
    }

    public static byte[] Table(params MemoryRegionDescriptor[] regions)
    {
        var b = new byte[MemoryTable.SizeFor(regions.Length)];
        BinaryPrimitives.WriteUInt32LittleEndian(b, (uint)regions.Length);
        for (int i = 0; i < regions.Length; i++) regions[i].Write(b.AsSpan(MemoryTable.HeaderSize + i * MemoryRegionDescriptor.Size));
        return b;
    }

    public static byte[] Config(uint offset, uint size, uint flags, int dataBytes = -1)
    {
        var b = new byte[ConfigHeader.Length + (dataBytes < 0 ? (int)size : dataBytes)];
        new ConfigHeader(offset, size, flags).Write(b);
        return b;
    }

    /// <summary>
    /// A well-formed <paramref name="request"/> for ring 0 / the guest RAM of <paramref name="vm"/>.
    /// Sockets handed over get their peer end added to <paramref name="keep"/>.
    /// </summary>
    public static RawRequest Valid(VhostUserRequest request, RawVm vm, List<IDisposable> keep)
    {
        switch (request)
        {
            case VhostUserRequest.SetFeatures: return new(request, U64(RawVm.DefaultFeatures), []);
            case VhostUserRequest.SetOwner or VhostUserRequest.ResetOwner or VhostUserRequest.ResetDevice: return new(request, [], []);
            case VhostUserRequest.SetProtocolFeatures:
                return new(request, U64((ulong)(VhostUserProtocolFeatures.ReplyAck | VhostUserProtocolFeatures.Config | VhostUserProtocolFeatures.Mq |
                                               VhostUserProtocolFeatures.BackendReq | VhostUserProtocolFeatures.ConfigureMemSlots)), []);
            case VhostUserRequest.SetMemTable: return new(request, Table(vm.Region), [vm.Ram.Fd.Duplicate()]);
            case VhostUserRequest.AddMemReg or VhostUserRequest.RemMemReg:
                return new(request, Region(vm.Region), request == VhostUserRequest.AddMemReg ? [vm.Ram.Fd.Duplicate()] : []);
            case VhostUserRequest.SetVringNum: return new(request, State(0, 64), []);
            case VhostUserRequest.SetVringBase: return new(request, State(0, 0), []);
            case VhostUserRequest.SetVringEnable: return new(request, State(0, 1), []);
            case VhostUserRequest.SetVringAddr:
                var a = new byte[VringAddress.Size];
                vm.Address(0).Write(a);
                return new(request, a, []);
            case VhostUserRequest.SetVringKick or VhostUserRequest.SetVringCall or VhostUserRequest.SetVringErr:
                return new(request, U64(0), [EventFd.Create()]);
            case VhostUserRequest.SetConfig: return new(request, Config(4, 4, 0), []);
            case VhostUserRequest.SetBackendReqFd or VhostUserRequest.GpuSetSocket:
                var (mine, theirs) = UnixSocket.CreatePair();
                keep.Add(mine);
                return new(request, [], [theirs]);
            default: throw new ArgumentOutOfRangeException(nameof(request), request, "not in the catalog");
        }
    }

    /// <summary>What must come before a valid <paramref name="request"/> (REM_MEM_REG needs its region added).</summary>
    public static void Prepare(VhostUserRequest request, RawVm vm)
    {
        if (request == VhostUserRequest.RemMemReg) Assert.True(vm.FrontEnd.AddMemReg(vm.Region, vm.Ram.Fd));
    }

    /// <summary>Sends <paramref name="r"/> with NEED_REPLY and returns the ack value (0 = success).</summary>
    public static ulong SendForAck(VhostUserFrontEnd fe, RawRequest r)
    {
        fe.Send(r.Request, r.Payload, r.Fds, needReply: true);
        return ReadAck(fe, r.Request);
    }

    public static ulong ReadAck(VhostUserFrontEnd fe, VhostUserRequest request)
    {
        using var reply = fe.ReceiveReply(request);
        Assert.Equal(8, reply.Payload.Length);
        return BinaryPrimitives.ReadUInt64LittleEndian(reply.Payload);
    }
}
