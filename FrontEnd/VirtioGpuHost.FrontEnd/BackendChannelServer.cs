using System.Buffers.Binary;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using VirtioGpuHost.Interop;
using VirtioGpuHost.VhostUser.Transport;
using VirtioGpuHost.VhostUser.Wire;

namespace VirtioGpuHost.FrontEnd;

/// <summary>
/// The front-end's end of the back-end channel, on its own thread: reads back-end requests,
/// carries out SHMEM_MAP / SHMEM_UNMAP on the <see cref="Region"/>, and acks each request that
/// asks for it (0 = done, 1 = refused). Nothing the back-end sends can crash it or leak an fd:
/// every fd that arrives belongs to its message and is closed unless a mapping keeps it; bad
/// sizes, fd counts and unknown requests are refused with a log line naming the field; a broken
/// frame (oversized, cut short, too many fds) ends the channel, never the process.
/// </summary>
public sealed class BackendChannelServer : IDisposable
{
    /// <summary>How many entries <see cref="Received"/> and <see cref="Errors"/> keep (the newest).</summary>
    public const int HistoryLimit = 4096;

    private readonly FramedSocket _socket;
    private readonly Thread _thread;
    private readonly bool _replyAck;
    private readonly ILogger _log;
    private readonly object _sendLock = new();
    private volatile HostVisibleRegion? _region;
    private volatile bool _ended;

    public BackendChannelServer(FdHandle socket, bool replyAck, HostVisibleRegion? region = null, ILogger? logger = null)
    {
        _socket = new FramedSocket(socket);
        _replyAck = replyAck;
        _region = region;
        _log = logger ?? NullLogger.Instance;
        _thread = new Thread(Run) { IsBackground = true, Name = "backend-channel" };
        _thread.Start();
    }

    /// <summary>The host-visible region SHMEM requests act on (null: they are refused).</summary>
    public HostVisibleRegion? Region
    {
        get => _region;
        set => _region = value;
    }

    /// <summary>Called on the channel thread after a mapping was made and acked (QEMU-like feedback: ADD_MEM_REG).</summary>
    public Action<HostVisibleMapping>? Mapped { get; set; }

    /// <summary>Called on the channel thread after a mapping was removed and acked (feedback: REM_MEM_REG).</summary>
    public Action<HostVisibleMapping>? Unmapped { get; set; }

    /// <summary>Requests received: id and payload size (the newest <see cref="HistoryLimit"/>).</summary>
    public List<(VhostUserBackendRequest Request, int Size)> Received { get; } = new();

    /// <summary>Why requests were refused (the newest <see cref="HistoryLimit"/>).</summary>
    public List<string> Errors { get; } = new();

    /// <summary>Requests handled, and how many of them were refused.</summary>
    public long Requests => Interlocked.Read(ref _requests);
    public long Refusals => Interlocked.Read(ref _refusals);
    private long _requests, _refusals;

    /// <summary>The channel thread has ended (the back-end closed it or broke the framing).</summary>
    public bool Ended => _ended;

    private void Run()
    {
        try
        {
            while (_socket.Receive() is { } msg)
            {
                using (msg)
                {
                    Interlocked.Increment(ref _requests);
                    lock (Received)
                    {
                        Received.Add(((VhostUserBackendRequest)msg.Header.Request, msg.Payload.Length));
                        if (Received.Count > HistoryLimit) Received.RemoveRange(0, Received.Count - HistoryLimit);
                    }
                    Action? after = null;
                    bool ok;
                    try
                    {
                        ok = Handle(msg, out after);
                    }
                    catch (Exception e) when (e is not OutOfMemoryException)
                    {
                        // A bug here must not take the VMM down: refuse and go on.
                        ok = Refuse(msg, $"internal error: {e.GetType().Name}: {e.Message}");
                        after = null;
                    }
                    if (msg.Header.NeedsReply && _replyAck && !msg.Header.IsReply)
                    {
                        var ack = new byte[8];
                        BinaryPrimitives.WriteUInt64LittleEndian(ack, ok ? 0UL : 1UL);
                        lock (_sendLock) _socket.Send(msg.Header.Request, VhostUserHeader.Version | VhostUserHeader.FlagReply, ack);
                    }
                    try { after?.Invoke(); }
                    catch (Exception e) when (e is not OutOfMemoryException)
                    {
                        _log.LogWarning("back-end channel: feedback after {Request} failed: {Error}", (VhostUserBackendRequest)msg.Header.Request, e.Message);
                    }
                }
            }
        }
        catch (Exception e) when (e is IOException or ProtocolViolationException or ObjectDisposedException)
        {
            // The channel ends with the connection, or because the back-end broke the framing.
            if (e is ProtocolViolationException) _log.LogWarning("back-end channel: closed after a broken message: {Error}", e.Message);
        }
        catch (Exception e)
        {
            _log.LogError(e, "back-end channel: unexpected failure; the channel stops");
        }
        finally
        {
            _ended = true;
        }
    }

    private bool Handle(ReceivedMessage msg, out Action? after)
    {
        after = null;
        var h = msg.Header;
        if ((h.Flags & VhostUserHeader.VersionMask) != VhostUserHeader.Version)
            return Refuse(msg, $"header version {h.Flags & VhostUserHeader.VersionMask}, expected 1 (flags 0x{h.Flags:x})");
        if (h.IsReply)
            return Refuse(msg, $"a reply (flags 0x{h.Flags:x}) where requests are expected");
        switch ((VhostUserBackendRequest)h.Request)
        {
            case VhostUserBackendRequest.ShmemMap:
            {
                if (msg.Payload.Length != ShmemMapRequest.Size) return Refuse(msg, $"payload is {msg.Payload.Length} bytes, expected {ShmemMapRequest.Size}");
                if (msg.Fds.Count != 1) return Refuse(msg, $"fd: {msg.Fds.Count} attached, expected exactly 1");
                var region = _region;
                var r = ShmemMapRequest.Read(msg.Payload);
                if (region is null) return Refuse(msg, $"shmid {r.ShmId}: no shared memory region exists");
                if (!region.TryMap(r, msg.Fds.Take(0), out string error)) return Refuse(msg, error);
                var mapped = Mapped;
                if (mapped is not null)
                {
                    var m = new HostVisibleMapping(r.ShmOffset, r.Length, r.FdOffset, (r.Flags & ShmemMapRequest.FlagReadWrite) != 0);
                    after = () => mapped(m);
                }
                return true;
            }
            case VhostUserBackendRequest.ShmemUnmap:
            {
                if (msg.Payload.Length != ShmemMapRequest.Size) return Refuse(msg, $"payload is {msg.Payload.Length} bytes, expected {ShmemMapRequest.Size}");
                if (msg.Fds.Count != 0) return Refuse(msg, $"fd: {msg.Fds.Count} attached, expected none");
                var region = _region;
                var r = ShmemMapRequest.Read(msg.Payload);
                if (region is null) return Refuse(msg, $"shmid {r.ShmId}: no shared memory region exists");
                if (!region.TryUnmap(r, out string error, out var removed)) return Refuse(msg, error);
                var unmapped = Unmapped;
                if (unmapped is not null) after = () => unmapped(removed);
                return true;
            }
            default:
                return Refuse(msg, "not implemented by the reference front-end");
        }
    }

    private bool Refuse(ReceivedMessage msg, string why)
    {
        Interlocked.Increment(ref _refusals);
        string line = $"{(VhostUserBackendRequest)msg.Header.Request}: {why}";
        lock (Errors)
        {
            Errors.Add(line);
            if (Errors.Count > HistoryLimit) Errors.RemoveRange(0, Errors.Count - HistoryLimit);
        }
        _log.LogWarning("back-end channel: refused {Line}", line);
        return false;
    }

    /// <summary>True when one refusal line contains every part.</summary>
    public bool Refused(params string[] parts)
    {
        lock (Errors) return Errors.Any(l => parts.All(p => l.Contains(p, StringComparison.Ordinal)));
    }

    public void Dispose()
    {
        try { UnixSocket.Shutdown(_socket.Socket); }
        catch (Exception e) when (e is IOException or ObjectDisposedException) { }
        _thread.Join(TimeSpan.FromSeconds(2));
        _socket.Dispose();
    }
}
