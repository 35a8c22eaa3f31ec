using System.Buffers.Binary;
using VirtioGpuHost.Interop;
using VirtioGpuHost.VhostUser.Transport;
using VirtioGpuHost.VhostUser.Wire;

namespace VirtioGpuHost.FrontEnd;

/// <summary>
/// The front-end (VMM) end of a vhost-user connection: typed requests as QEMU sends
/// them, and raw sends for tests that need malformed ones. Replies are awaited with a
/// timeout so a broken back-end shows up as an exception, not a hang.
/// </summary>
public sealed class VhostUserFrontEnd : IDisposable
{
    private readonly FramedSocket _socket;
    private readonly object _requestLock = new();

    public VhostUserFrontEnd(FdHandle socket, TimeSpan? replyTimeout = null)
    {
        _socket = new FramedSocket(socket, maxPayload: 1 << 20);
        UnixSocket.SetReceiveTimeout(socket, replyTimeout ?? TimeSpan.FromSeconds(10));
    }

    public static VhostUserFrontEnd Connect(string path, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(10));
        while (true)
        {
            try
            {
                return new VhostUserFrontEnd(UnixSocket.Connect(path));
            }
            catch (SyscallException) when (DateTime.UtcNow < deadline)
            {
                Thread.Sleep(20); // the back-end is still starting
            }
        }
    }

    public FdHandle Socket => _socket.Socket;

    /// <summary>
    /// Held for each typed request and its reply, so that another thread (the back-end channel's
    /// QEMU-like ADD_MEM_REG feedback) can send requests too. Raw <see cref="Send"/> +
    /// <see cref="ReceiveReply"/> pairs are not covered: don't mix them with feedback.
    /// </summary>
    public object RequestLock => _requestLock;

    /// <summary>Protocol features agreed with SET_PROTOCOL_FEATURES.</summary>
    public VhostUserProtocolFeatures Protocol { get; private set; }

    public bool ReplyAck => (Protocol & VhostUserProtocolFeatures.ReplyAck) != 0;

    // ---- raw ----

    public void Send(VhostUserRequest request, ReadOnlySpan<byte> payload, ReadOnlySpan<FdHandle> fds = default, bool needReply = false, uint? flagsOverride = null)
    {
        uint flags = flagsOverride ?? (VhostUserHeader.Version | (needReply ? VhostUserHeader.FlagNeedReply : 0));
        _socket.Send((uint)request, flags, payload, fds);
    }

    /// <summary>Sends raw bytes (a broken frame, a half message).</summary>
    public void SendRaw(ReadOnlySpan<byte> bytes, ReadOnlySpan<FdHandle> fds = default)
    {
        int sent = 0;
        while (sent < bytes.Length)
        {
            var status = UnixSocket.Send(_socket.Socket, bytes[sent..], sent == 0 ? fds : default, out int n);
            if (status != IoStatus.Ok) throw new IOException($"send failed: {status}");
            sent += n;
        }
    }

    /// <summary>Reads the reply to <paramref name="request"/>; throws if something else (or nothing) comes.</summary>
    public ReceivedMessage ReceiveReply(VhostUserRequest request)
    {
        var msg = _socket.Receive() ?? throw new IOException($"back-end closed the connection instead of answering {request}");
        if (msg.Header.Request != (uint)request || !msg.Header.IsReply)
        {
            msg.Dispose();
            throw new IOException($"expected the reply to {request}, got request {msg.Header.Request} flags 0x{msg.Header.Flags:x}");
        }
        return msg;
    }

    /// <summary>True when the back-end closed the connection (EOF) within the timeout.</summary>
    public bool WaitForClose(int timeoutMs)
    {
        if (!Poller.WaitReadable(_socket.Socket, timeoutMs)) return false;
        try
        {
            using var m = _socket.Receive();
            return m is null;
        }
        catch (Exception e) when (e is IOException or ProtocolViolationException)
        {
            return true;
        }
    }

    /// <summary>Sends a request with NEED_REPLY (when REPLY_ACK is on) and returns the ack (true = success).</summary>
    public bool SendWithAck(VhostUserRequest request, ReadOnlySpan<byte> payload, ReadOnlySpan<FdHandle> fds = default)
    {
        lock (_requestLock)
        {
            Send(request, payload, fds, needReply: ReplyAck);
            if (!ReplyAck) return true;
            using var reply = ReceiveReply(request);
            if (reply.Payload.Length != 8) throw new IOException($"{request}: ack of {reply.Payload.Length} bytes");
            return BinaryPrimitives.ReadUInt64LittleEndian(reply.Payload) == 0;
        }
    }

    public ulong GetU64(VhostUserRequest request)
    {
        lock (_requestLock)
        {
            Send(request, []);
            using var reply = ReceiveReply(request);
            if (reply.Payload.Length != 8) throw new IOException($"{request}: reply of {reply.Payload.Length} bytes");
            return BinaryPrimitives.ReadUInt64LittleEndian(reply.Payload);
        }
    }

    /// <summary>GET_SHMEM_CONFIG: the raw reply payload (2056 bytes from a conforming back-end; validated by the caller).</summary>
    public byte[] GetShmemConfig()
    {
        lock (_requestLock)
        {
            Send(VhostUserRequest.GetShmemConfig, []);
            using var reply = ReceiveReply(VhostUserRequest.GetShmemConfig);
            return reply.Payload;
        }
    }

    private static byte[] U64(ulong v)
    {
        var b = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(b, v);
        return b;
    }

    // ---- typed (vhost-user.rst) ----

    public ulong GetFeatures() => GetU64(VhostUserRequest.GetFeatures);
    public bool SetFeatures(ulong features) => SendWithAck(VhostUserRequest.SetFeatures, U64(features));
    public VhostUserProtocolFeatures GetProtocolFeatures() => (VhostUserProtocolFeatures)GetU64(VhostUserRequest.GetProtocolFeatures);

    public void SetProtocolFeatures(VhostUserProtocolFeatures features)
    {
        // Not yet acked: REPLY_ACK only applies once negotiated.
        Send(VhostUserRequest.SetProtocolFeatures, U64((ulong)features));
        Protocol = features;
    }

    public ulong GetQueueNum() => GetU64(VhostUserRequest.GetQueueNum);
    public ulong GetMaxMemSlots() => GetU64(VhostUserRequest.GetMaxMemSlots);
    public bool SetOwner() => SendWithAck(VhostUserRequest.SetOwner, []);
    public bool ResetDevice() => SendWithAck(VhostUserRequest.ResetDevice, []);

    public bool SetBackendReqFd(FdHandle fd) => SendWithAck(VhostUserRequest.SetBackendReqFd, [], [fd]);

    public bool SetMemTable(IReadOnlyList<(MemoryRegionDescriptor Region, FdHandle Fd)> regions)
    {
        var p = new byte[MemoryTable.SizeFor(regions.Count)];
        BinaryPrimitives.WriteUInt32LittleEndian(p, (uint)regions.Count);
        for (int i = 0; i < regions.Count; i++) regions[i].Region.Write(p.AsSpan(MemoryTable.HeaderSize + i * MemoryRegionDescriptor.Size));
        return SendWithAck(VhostUserRequest.SetMemTable, p, regions.Select(r => r.Fd).ToArray());
    }

    public bool AddMemReg(MemoryRegionDescriptor region, FdHandle fd)
    {
        var p = new byte[SingleMemoryRegion.Size];
        SingleMemoryRegion.Write(p, region);
        return SendWithAck(VhostUserRequest.AddMemReg, p, [fd]);
    }

    public bool RemMemReg(MemoryRegionDescriptor region)
    {
        var p = new byte[SingleMemoryRegion.Size];
        SingleMemoryRegion.Write(p, region);
        return SendWithAck(VhostUserRequest.RemMemReg, p);
    }

    public bool SetVringNum(uint index, uint num) => SendState(VhostUserRequest.SetVringNum, index, num);
    public bool SetVringBase(uint index, uint num) => SendState(VhostUserRequest.SetVringBase, index, num);
    public bool SetVringEnable(uint index, bool enable) => SendState(VhostUserRequest.SetVringEnable, index, enable ? 1u : 0u);

    public bool SetVringAddr(VringAddress a)
    {
        var p = new byte[VringAddress.Size];
        a.Write(p);
        return SendWithAck(VhostUserRequest.SetVringAddr, p);
    }

    public uint GetVringBase(uint index)
    {
        var p = new byte[VringState.Size];
        new VringState(index, 0).Write(p);
        lock (_requestLock)
        {
            Send(VhostUserRequest.GetVringBase, p);
            using var reply = ReceiveReply(VhostUserRequest.GetVringBase);
            if (reply.Payload.Length != VringState.Size) throw new IOException("GET_VRING_BASE: bad reply size");
            return VringState.Read(reply.Payload).Num;
        }
    }

    public bool SetVringFd(VhostUserRequest which, uint index, FdHandle? fd)
    {
        ulong v = index | (fd is null ? VringFdPayload.InvalidFdFlag : 0);
        return fd is null ? SendWithAck(which, U64(v)) : SendWithAck(which, U64(v), [fd]);
    }

    /// <summary>GET_CONFIG; null when the back-end refused (empty reply).</summary>
    public byte[]? GetConfig(uint offset, uint size)
    {
        var p = new byte[ConfigHeader.Length + size];
        new ConfigHeader(offset, size, 0).Write(p);
        lock (_requestLock)
        {
            Send(VhostUserRequest.GetConfig, p);
            using var reply = ReceiveReply(VhostUserRequest.GetConfig);
            if (reply.Payload.Length != p.Length) return null;
            return reply.Payload.AsSpan(ConfigHeader.Length).ToArray();
        }
    }

    public bool SetConfig(uint offset, ReadOnlySpan<byte> data, uint flags = 0)
    {
        var p = new byte[ConfigHeader.Length + data.Length];
        new ConfigHeader(offset, (uint)data.Length, flags).Write(p);
        data.CopyTo(p.AsSpan(ConfigHeader.Length));
        return SendWithAck(VhostUserRequest.SetConfig, p);
    }

    /// <summary>GPU_SET_SOCKET (QEMU sends it without NEED_REPLY).</summary>
    public void GpuSetSocket(FdHandle displaySocket) => Send(VhostUserRequest.GpuSetSocket, [], [displaySocket]);

    private bool SendState(VhostUserRequest request, uint index, uint num)
    {
        var p = new byte[VringState.Size];
        new VringState(index, num).Write(p);
        return SendWithAck(request, p);
    }

    public void Dispose() => _socket.Dispose();
}
