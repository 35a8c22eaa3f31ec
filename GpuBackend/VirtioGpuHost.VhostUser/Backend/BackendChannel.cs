using VirtioGpuHost.Interop;
using VirtioGpuHost.VhostUser.Transport;
using VirtioGpuHost.VhostUser.Wire;

namespace VirtioGpuHost.VhostUser.Backend;

/// <summary>
/// The back-end → front-end channel (SET_BACKEND_REQ_FD). Requests are sent with
/// NEED_REPLY when REPLY_ACK is negotiated, and the u64 ack is awaited (the front-end
/// answers promptly; a stuck front-end times out after the socket's receive timeout).
/// </summary>
public sealed class BackendChannel : IDisposable
{
    private readonly FramedSocket _socket;
    private readonly bool _replyAck;

    public BackendChannel(FdHandle socket, bool replyAck)
    {
        UnixSocket.SetReceiveTimeout(socket, TimeSpan.FromSeconds(5)); // throws for an fd that is not a socket
        _socket = new FramedSocket(socket);
        _replyAck = replyAck;
    }

    /// <summary>
    /// Sends one request. Returns the front-end's ack (0 = success) when REPLY_ACK is
    /// negotiated, else 0 once sent.
    /// </summary>
    public ulong Request(VhostUserBackendRequest request, ReadOnlySpan<byte> payload, ReadOnlySpan<FdHandle> fds = default)
    {
        uint flags = VhostUserHeader.Version | (_replyAck ? VhostUserHeader.FlagNeedReply : 0);
        _socket.Send((uint)request, flags, payload, fds);
        if (!_replyAck) return 0;
        using var reply = _socket.Receive() ?? throw new IOException("front-end closed the back-end channel");
        if (reply.Header.Request != (uint)request || !reply.Header.IsReply || reply.Payload.Length != 8)
            throw new ProtocolViolationException($"back-end channel: unexpected reply {reply.Header} to {request}");
        return BitConverter.ToUInt64(reply.Payload);
    }

    public void Dispose() => _socket.Dispose();
}
