using System.Buffers.Binary;
using Microsoft.Extensions.Logging;
using VirtioGpuHost.GuestMemory;
using VirtioGpuHost.Interop;
using VirtioGpuHost.Virtio;
using VirtioGpuHost.VhostUser.Transport;
using VirtioGpuHost.VhostUser.Wire;

namespace VirtioGpuHost.VhostUser.Backend;

/// <summary>
/// The back-end side of one vhost-user connection: parses every front-end request, keeps
/// the protocol state (features, memory table, rings, fds) and hands the rings to the
/// device. Runs its own event loop on the calling thread until the front-end goes away,
/// then releases every fd and mapping it holds.
///
/// Error policy (docs/architecture.md): a request with a bad field is refused (REPLY_ACK
/// failure, or an empty GET_CONFIG reply) with a log line naming the connection and the
/// field, and the connection goes on; a broken frame (bad version, oversized or truncated
/// message, a malformed request that must be answered) closes this connection only.
/// </summary>
public sealed partial class VhostUserBackendConnection : IVhostUserBackendServices, IDisposable
{
    /// <summary>Protocol features this handler implements itself.</summary>
    public const VhostUserProtocolFeatures CoreProtocolFeatures =
        VhostUserProtocolFeatures.Mq | VhostUserProtocolFeatures.ReplyAck | VhostUserProtocolFeatures.BackendReq |
        VhostUserProtocolFeatures.BackendSendFd | VhostUserProtocolFeatures.ConfigureMemSlots | VhostUserProtocolFeatures.ResetDevice;

    /// <summary>Protocol features a device may add (it implements their payloads).</summary>
    public const VhostUserProtocolFeatures DeviceProtocolFeatures =
        VhostUserProtocolFeatures.Config | VhostUserProtocolFeatures.Shmem;

    /// <summary>GET_MAX_MEM_SLOTS answer (libvhost-user's value).</summary>
    public const int MaxMemSlots = 509;

    /// <summary>
    /// Regions accepted beyond <see cref="MaxMemSlots"/>: QEMU 11.1 sends one ADD_MEM_REG per
    /// SHMEM_MAP mapping (its gpa inside the shared-memory BAR, our own memfd) and does not count
    /// them against GET_MAX_MEM_SLOTS; refusing them only makes QEMU log
    /// `vhost_set_mem_table failed` and retry. Every field is still validated.
    /// </summary>
    public const int ExtraMemRegions = 1024;

    /// <summary>The hard cap on regions in the memory table (ADD_MEM_REG past it is refused).</summary>
    public const int MaxMemRegions = MaxMemSlots + ExtraMemRegions;

    private readonly FramedSocket _socket;
    private readonly IVhostUserDevice _device;
    private readonly ILogger _log;
    private readonly VirtqueueContext[] _queues;
    private readonly List<IDisposable> _kickWatches;
    private GuestMemoryMap _memory = GuestMemoryMap.Empty();
    private ulong _ackedFeatures;
    private VhostUserProtocolFeatures _protocol;
    private BackendChannel? _backendChannel;
    private bool _disposed;

    /// <summary>How long a reply may wait for a front-end that does not read before the connection is dropped.</summary>
    public static readonly TimeSpan DefaultSendTimeout = TimeSpan.FromSeconds(10);

    /// <summary>How long a back-end channel request (SHMEM_MAP/UNMAP) waits for its reply.</summary>
    public TimeSpan BackendReplyTimeout { get; init; } = BackendChannel.DefaultReplyTimeout;

    /// <param name="sendTimeout">How long a reply may wait for the front-end to read (default <see cref="DefaultSendTimeout"/>).</param>
    public VhostUserBackendConnection(FdHandle socket, IVhostUserDevice device, ILogger logger, string connectionName, TimeSpan? sendTimeout = null)
    {
        _socket = new FramedSocket(socket) { SendTimeout = sendTimeout ?? DefaultSendTimeout };
        _device = device;
        _log = logger;
        ConnectionName = connectionName;
        Loop = new EventLoop();
        _queues = Enumerable.Range(0, device.QueueCount).Select(i => new VirtqueueContext(i, () => _memory)).ToArray();
        _kickWatches = new List<IDisposable>(new IDisposable[device.QueueCount].Select(_ => (IDisposable)NoWatch.Instance));
        // A message that starts must finish within this time, or the connection is dropped; a
        // front-end that stops reading our replies is dropped the same way (never a stuck loop).
        UnixSocket.SetReceiveTimeout(socket, TimeSpan.FromSeconds(10));
        UnixSocket.SetSendTimeout(socket, sendTimeout ?? DefaultSendTimeout);
        device.Attach(this);
    }

    public string ConnectionName { get; }
    public EventLoop Loop { get; }
    public GuestMemoryMap Memory => _memory;
    public IReadOnlyList<VirtqueueContext> Queues => _queues;
    public BackendChannel? BackendChannel => _backendChannel;
    public VhostUserProtocolFeatures NegotiatedProtocolFeatures => _protocol;

    /// <summary>The features this back-end offers in GET_FEATURES.</summary>
    public ulong OfferedFeatures => _device.Features | VhostUserFeatures.ProtocolFeatures;

    /// <summary>The protocol features offered in GET_PROTOCOL_FEATURES.</summary>
    public VhostUserProtocolFeatures OfferedProtocolFeatures => CoreProtocolFeatures | (_device.ProtocolFeatures & DeviceProtocolFeatures);

    /// <summary>Serves the connection until the front-end disconnects or <see cref="Stop"/> is called.</summary>
    public void Run()
    {
        using var watch = Loop.Watch(_socket.Socket, () => PollEvents.In, _ => OnSocketReadable());
        try
        {
            Loop.Run();
        }
        finally
        {
            Dispose();
        }
    }

    /// <summary>Stops serving (thread-safe); <see cref="Run"/> returns and cleans up.</summary>
    public void Stop() => Loop.Stop();

    private void OnSocketReadable()
    {
        ReceivedMessage? msg;
        try
        {
            msg = _socket.Receive();
        }
        catch (ProtocolViolationException e)
        {
            _log.LogError("{Conn}: protocol violation, closing the connection: {Error}", ConnectionName, e.Message);
            Loop.Stop();
            return;
        }
        catch (IOException e)
        {
            _log.LogWarning("{Conn}: connection error: {Error}", ConnectionName, e.Message);
            Loop.Stop();
            return;
        }
        if (msg is null)
        {
            _log.LogInformation("{Conn}: front-end disconnected", ConnectionName);
            Loop.Stop();
            return;
        }
        using (msg)
        {
            try
            {
                Dispatch(msg);
                CheckMemoryFaults();
            }
            catch (ProtocolViolationException e)
            {
                _log.LogError("{Conn}: protocol violation, closing the connection: {Error}", ConnectionName, e.Message);
                Loop.Stop();
            }
            catch (IOException e)
            {
                _log.LogWarning("{Conn}: connection error while answering {Request}: {Error}", ConnectionName, (VhostUserRequest)msg.Header.Request, e.Message);
                Loop.Stop();
            }
        }
    }

    private void Dispatch(ReceivedMessage msg)
    {
        var h = msg.Header;
        if ((h.Flags & VhostUserHeader.VersionMask) != VhostUserHeader.Version)
            throw new ProtocolViolationException($"request {h.Request}: header version {h.Flags & VhostUserHeader.VersionMask}, expected 1 (flags 0x{h.Flags:x})");
        if (h.IsReply)
            throw new ProtocolViolationException($"request {h.Request}: the front-end sent a message marked as a reply (flags 0x{h.Flags:x})");
        var request = (VhostUserRequest)h.Request;
        _log.LogDebug("{Conn}: {Request} flags=0x{Flags:x} size={Size} fds={Fds}", ConnectionName, request, h.Flags, h.Size, msg.Fds.Count);

        bool? ok = request switch
        {
            VhostUserRequest.GetFeatures => ReplyU64(msg, OfferedFeatures),
            VhostUserRequest.SetFeatures => SetFeatures(msg),
            VhostUserRequest.SetOwner => Expect(msg, 0, 0) && True(() => { }),
            VhostUserRequest.ResetOwner => Expect(msg, 0, 0) && True(ResetDevice),
            VhostUserRequest.ResetDevice => Expect(msg, 0, 0) && True(ResetDevice),
            VhostUserRequest.SetMemTable => SetMemTable(msg),
            VhostUserRequest.AddMemReg => AddMemReg(msg),
            VhostUserRequest.RemMemReg => RemMemReg(msg),
            VhostUserRequest.GetMaxMemSlots => ReplyU64(msg, MaxMemSlots),
            VhostUserRequest.SetVringNum => SetVringNum(msg),
            VhostUserRequest.SetVringAddr => SetVringAddr(msg),
            VhostUserRequest.SetVringBase => SetVringBase(msg),
            VhostUserRequest.GetVringBase => GetVringBase(msg),
            VhostUserRequest.SetVringKick => SetVringFd(msg, VhostUserRequest.SetVringKick),
            VhostUserRequest.SetVringCall => SetVringFd(msg, VhostUserRequest.SetVringCall),
            VhostUserRequest.SetVringErr => SetVringFd(msg, VhostUserRequest.SetVringErr),
            VhostUserRequest.SetVringEnable => SetVringEnable(msg),
            VhostUserRequest.GetProtocolFeatures => ReplyU64(msg, (ulong)OfferedProtocolFeatures),
            VhostUserRequest.SetProtocolFeatures => SetProtocolFeatures(msg),
            VhostUserRequest.GetQueueNum => ReplyU64(msg, (ulong)_device.QueueCount),
            VhostUserRequest.SetBackendReqFd => SetBackendReqFd(msg),
            VhostUserRequest.GetConfig => GetConfig(msg),
            VhostUserRequest.SetConfig => SetConfig(msg),
            VhostUserRequest.GetShmemConfig => GetShmemConfig(msg),
            // Requests with a reply of their own that we do not implement: the front-end would
            // wait forever for an answer we cannot give, so the connection ends.
            VhostUserRequest.GetInflightFd or VhostUserRequest.GetStatus or VhostUserRequest.IotlbMsg or
            VhostUserRequest.PostcopyAdvise or VhostUserRequest.PostcopyEnd or VhostUserRequest.GetSharedObject or
            VhostUserRequest.SetDeviceStateFd or VhostUserRequest.CheckDeviceState or VhostUserRequest.SetLogBase =>
                throw new ProtocolViolationException($"{request} needs a protocol feature this back-end never offered"),
            _ => _device.HandleDeviceRequest(msg) ?? Refuse(msg, $"unknown or unsupported request {h.Request}"),
        };
        if (ok is bool success) Ack(msg, success);
    }

    /// <summary>Answers NEED_REPLY with the u64 ack (0 = success) when REPLY_ACK is negotiated.</summary>
    private void Ack(ReceivedMessage msg, bool success)
    {
        if (!msg.Header.NeedsReply || (_protocol & VhostUserProtocolFeatures.ReplyAck) == 0) return;
        Span<byte> payload = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(payload, success ? 0UL : 1UL);
        SendReply(msg, payload);
    }

    private void SendReply(ReceivedMessage msg, ReadOnlySpan<byte> payload) =>
        _socket.Send(msg.Header.Request, VhostUserHeader.Version | VhostUserHeader.FlagReply, payload);

    private bool? ReplyU64(ReceivedMessage msg, ulong value)
    {
        ExpectOrClose(msg, 0, 0);
        Span<byte> payload = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(payload, value);
        SendReply(msg, payload);
        return null; // the value is the reply; no separate ack
    }

    /// <summary>Logs the refusal, naming the connection, the request and the reason; returns false.</summary>
    private bool Refuse(ReceivedMessage msg, string reason)
    {
        _log.LogWarning("{Conn}: refused {Request}: {Reason}", ConnectionName, (VhostUserRequest)msg.Header.Request, reason);
        return false;
    }

    /// <summary>Checks payload size and fd count; on mismatch logs and returns false.</summary>
    private bool Expect(ReceivedMessage msg, int size, int fds)
    {
        if (msg.Payload.Length != size)
            return Refuse(msg, $"payload is {msg.Payload.Length} bytes, expected {size}");
        if (msg.Fds.Count != fds)
            return Refuse(msg, $"{msg.Fds.Count} fds attached, expected {fds}");
        return true;
    }

    /// <summary>As <see cref="Expect"/>, for requests that must be answered: a mismatch ends the connection.</summary>
    private void ExpectOrClose(ReceivedMessage msg, int size, int fds)
    {
        if (msg.Payload.Length != size || msg.Fds.Count != fds)
            throw new ProtocolViolationException(
                $"{(VhostUserRequest)msg.Header.Request}: payload {msg.Payload.Length} bytes with {msg.Fds.Count} fds, expected {size} bytes and {fds} fds");
    }

    private static bool True(Action a)
    {
        a();
        return true;
    }

    private bool TryGetQueue(ReceivedMessage msg, uint index, out VirtqueueContext queue)
    {
        if (index < (uint)_queues.Length)
        {
            queue = _queues[index];
            return true;
        }
        queue = null!;
        Refuse(msg, $"ring index {index} out of range (the device has {_queues.Length} rings)");
        return false;
    }

    private sealed class NoWatch : IDisposable
    {
        public static readonly NoWatch Instance = new();
        public void Dispose() { }
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        try { _device.Reset(); }
        catch (Exception e) { _log.LogError(e, "{Conn}: device reset failed during disconnect", ConnectionName); }
        foreach (var w in _kickWatches) w.Dispose();
        foreach (var q in _queues)
        {
            q.Queue.Reset();
            q.CloseFds();
        }
        _backendChannel?.Dispose();
        _backendChannel = null;
        _memory.Dispose();
        _memory = GuestMemoryMap.Empty();
        _socket.Dispose();
        Loop.Dispose();
    }
}
