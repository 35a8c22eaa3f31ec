using System.Buffers.Binary;
using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using VirtioGpuHost.Interop;
using VirtioGpuHost.VhostUser.Transport;
using VirtioGpuHost.VhostUser.Wire;

namespace VirtioGpuHost.VhostUser.Backend;

/// <summary>
/// The back-end → front-end channel (SET_BACKEND_REQ_FD).
/// </summary>
/// <remarks>
/// <para>
/// Two ways to use it. <see cref="Request"/> is synchronous: it sends and blocks for the ack
/// (tools and tests; only on a channel that is not attached to an event loop).
/// Once <see cref="Attach"/>ed to the connection's <see cref="EventLoop"/>,
/// <see cref="RequestAsync"/> is the only way: the socket is non-blocking and watched by the
/// loop, requests are written as the socket takes them, and each one completes a task when its
/// u64 reply arrives (0 = success → true). The loop keeps serving the main socket and the rings
/// meanwhile: QEMU may itself be blocked on a main-channel request and would then never read
/// this channel (recipes/qemu11-blob-shmem pitfall 9).
/// </para>
/// <para>
/// Replies come in request order (a FIFO of pending requests). With REPLY_ACK negotiated every
/// request carries NEED_REPLY; without it a request completes true once it is written.
/// A request not answered within <see cref="ReplyTimeout"/> fails (with every other pending
/// one: replies are in order), with a log line naming the connection; its reply, if it still
/// comes, is recognised and dropped (a late successful SHMEM_MAP is undone with a SHMEM_UNMAP,
/// since the device already gave up on it). A reply that is not one (wrong request id, size,
/// flags, fds attached, nothing pending) is a protocol violation of this channel; it, an error
/// or EOF closes the channel: every pending request fails and <see cref="Closed"/> fires. The
/// main connection goes on without a back-end channel.
/// </para>
/// </remarks>
public sealed class BackendChannel : IDisposable
{
    /// <summary>How long a request waits for its reply by default.</summary>
    public static readonly TimeSpan DefaultReplyTimeout = TimeSpan.FromSeconds(5);

    /// <summary>Timed-out requests whose replies may still come; past this the channel is given up.</summary>
    public const int MaxAbandoned = 1024;

    private const int ReplySize = VhostUserHeader.Length + 8;

    private readonly FdHandle _fd;
    private readonly FramedSocket _socket;
    private readonly bool _replyAck;
    private readonly Queue<Pending> _pending = new();   // sent (or queued) and awaiting a reply, in order
    private readonly Queue<Outgoing> _outbox = new();   // not yet completely written
    private readonly byte[] _rx = new byte[ReplySize];
    private int _rxFill;
    private EventLoop? _loop;
    private ILogger _log = NullLogger.Instance;
    private string _name = "back-end channel";
    private IDisposable? _watch;
    private IDisposable? _timer;
    private long _timerDue;
    private int _abandoned;
    private bool _closed;

    public BackendChannel(FdHandle socket, bool replyAck)
    {
        UnixSocket.SetReceiveTimeout(socket, TimeSpan.FromSeconds(5)); // throws for an fd that is not a socket
        _fd = socket;
        _socket = new FramedSocket(socket);
        _replyAck = replyAck;
    }

    /// <summary>Whether requests carry NEED_REPLY (REPLY_ACK negotiated).</summary>
    public bool ReplyAck => _replyAck;

    /// <summary>How long an asynchronous request waits for its reply (set before <see cref="Attach"/>).</summary>
    public TimeSpan ReplyTimeout { get; set; } = DefaultReplyTimeout;

    /// <summary>The channel is closed (error, EOF, protocol violation or disposed).</summary>
    public bool IsClosed => _closed;

    /// <summary>Raised once, on the loop thread, when an attached channel closes by itself (not on Dispose).</summary>
    public event Action<BackendChannel>? Closed;

    /// <summary>Requests awaiting their reply (including abandoned ones).</summary>
    public int PendingCount => _pending.Count;

    /// <summary>Counters (loop thread): requests sent, replies received, requests that timed out, requests failed by the front-end.</summary>
    public long RequestsSent { get; private set; }
    public long RepliesReceived { get; private set; }
    public long TimedOut { get; private set; }
    public long Refused { get; private set; }

    /// <summary>
    /// Makes the channel asynchronous on <paramref name="loop"/> (call on the loop thread):
    /// non-blocking socket, watched for replies and for room to write.
    /// </summary>
    public void Attach(EventLoop loop, ILogger logger, string connectionName)
    {
        if (_loop is not null) throw new InvalidOperationException("already attached");
        ObjectDisposedException.ThrowIf(_closed, this);
        _loop = loop;
        _log = logger;
        _name = connectionName;
        _fd.SetNonBlocking(true);
        _watch = loop.Watch(_fd, () => _closed ? PollEvents.None : PollEvents.In | (_outbox.Count > 0 ? PollEvents.Out : PollEvents.None), OnReady);
    }

    /// <summary>
    /// Sends one request synchronously. Returns the front-end's ack (0 = success) when REPLY_ACK
    /// is negotiated, else 0 once sent. Only for a channel not attached to an event loop.
    /// </summary>
    public ulong Request(VhostUserBackendRequest request, ReadOnlySpan<byte> payload, ReadOnlySpan<FdHandle> fds = default)
    {
        if (_loop is not null) throw new InvalidOperationException("the channel runs on an event loop: use RequestAsync");
        uint flags = VhostUserHeader.Version | (_replyAck ? VhostUserHeader.FlagNeedReply : 0);
        _socket.Send((uint)request, flags, payload, fds);
        if (!_replyAck) return 0;
        using var reply = _socket.Receive() ?? throw new IOException("front-end closed the back-end channel");
        if (reply.Header.Request != (uint)request || !reply.Header.IsReply || reply.Payload.Length != 8)
            throw new ProtocolViolationException($"back-end channel: unexpected reply {reply.Header} to {request}");
        return BitConverter.ToUInt64(reply.Payload);
    }

    /// <summary>
    /// Sends one request (on the loop thread); the task completes (its continuations run
    /// asynchronously: an await on the loop resumes on the loop) with true when the
    /// front-end acked it with 0 (or, without REPLY_ACK, once it is written), false when it
    /// refused, the reply timed out or the channel closed. Never throws for I/O errors.
    /// <paramref name="fd"/> stays the caller's (it is duplicated if it must wait to be sent).
    /// </summary>
    public Task<bool> RequestAsync(VhostUserBackendRequest request, ReadOnlySpan<byte> payload, FdHandle? fd = null) =>
        Enqueue(request, payload, fd, abandoned: false, map: null);

    /// <summary>SHMEM_MAP with the blob's fd (the payload is built here).</summary>
    public Task<bool> MapAsync(ShmemMapRequest map, FdHandle fd)
    {
        Span<byte> p = stackalloc byte[ShmemMapRequest.Size];
        map.Write(p);
        return Enqueue(VhostUserBackendRequest.ShmemMap, p, fd, abandoned: false, map);
    }

    /// <summary>SHMEM_UNMAP (no fd).</summary>
    public Task<bool> UnmapAsync(ShmemMapRequest unmap)
    {
        Span<byte> p = stackalloc byte[ShmemMapRequest.Size];
        unmap.Write(p);
        return Enqueue(VhostUserBackendRequest.ShmemUnmap, p, null, abandoned: false, map: null);
    }

    private Task<bool> Enqueue(VhostUserBackendRequest request, ReadOnlySpan<byte> payload, FdHandle? fd, bool abandoned, ShmemMapRequest? map)
    {
        if (_loop is null) throw new InvalidOperationException("the channel is not attached to an event loop");
        if (!_loop.IsLoopThread) throw new InvalidOperationException("RequestAsync must be called on the connection's event loop");
        if (_closed) return Task.FromResult(false);

        var tcs = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
        var bytes = new byte[VhostUserHeader.Length + payload.Length];
        uint flags = VhostUserHeader.Version | (_replyAck ? VhostUserHeader.FlagNeedReply : 0);
        new VhostUserHeader((uint)request, flags, (uint)payload.Length).Write(bytes);
        payload.CopyTo(bytes.AsSpan(VhostUserHeader.Length));
        var outgoing = new Outgoing(request, bytes, _replyAck ? null : tcs);
        if (_replyAck)
        {
            var p = new Pending(request, tcs, Stopwatch.GetTimestamp() + (long)(ReplyTimeout.TotalSeconds * Stopwatch.Frequency), map);
            if (abandoned) { p.Abandoned = true; _abandoned++; }
            _pending.Enqueue(p);
            ArmTimer();
        }
        RequestsSent++;
        if (_outbox.Count == 0)
        {
            // Try at once; only what the socket does not take waits (with its own copy of the fd).
            if (!TryWrite(outgoing, fd))
            {
                outgoing.Completion?.TrySetResult(false);
                return tcs.Task;
            }
            if (outgoing.Done) { outgoing.Completion?.TrySetResult(true); return tcs.Task; }
        }
        if (fd is not null && outgoing.Offset == 0)
        {
            try { outgoing.Fd = fd.Duplicate(); }
            catch (IOException e)
            {
                Fail($"cannot keep the fd of {request} to send it later: {e.Message}");
                outgoing.Completion?.TrySetResult(false);
                return tcs.Task;
            }
        }
        _outbox.Enqueue(outgoing);
        return tcs.Task;
    }

    /// <summary>Writes what the socket takes of <paramref name="o"/>; false when the channel failed (and was closed).</summary>
    private bool TryWrite(Outgoing o, FdHandle? fd)
    {
        while (!o.Done)
        {
            IoStatus status;
            int n;
            try
            {
                var fds = o.Offset == 0 && fd is not null ? new[] { fd } : [];
                status = UnixSocket.Send(_fd, o.Bytes.AsSpan(o.Offset), fds, out n);
            }
            catch (IOException e)
            {
                Fail($"sending {o.Request} failed: {e.Message}");
                return false;
            }
            if (status == IoStatus.Closed)
            {
                Fail($"the front-end closed the channel (sending {o.Request})");
                return false;
            }
            if (status == IoStatus.WouldBlock) return true;
            o.Offset += n;
        }
        return true;
    }

    private void OnReady(PollEvents ready)
    {
        if (_closed) return;
        if ((ready & PollEvents.Out) != 0 || (ready & (PollEvents.Error | PollEvents.HangUp)) != 0) Flush();
        if (!_closed && (ready & (PollEvents.In | PollEvents.HangUp | PollEvents.Error)) != 0) ReadReplies();
    }

    private void Flush()
    {
        while (_outbox.TryPeek(out var o))
        {
            if (!TryWrite(o, o.Fd)) return;
            if (!o.Done) return;
            _outbox.Dequeue();
            o.Fd?.Dispose();
            o.Fd = null;
            o.Completion?.TrySetResult(true);
        }
    }

    private void ReadReplies()
    {
        // Replies are 20 bytes; read at most up to the end of the current one so that fds can
        // never be attributed to the wrong message (none may come at all).
        var fds = new List<FdHandle>();
        try
        {
            for (int rounds = 0; rounds < 64 && !_closed; rounds++)
            {
                int want = _rxFill < VhostUserHeader.Length ? VhostUserHeader.Length - _rxFill : ReplySize - _rxFill;
                IoStatus status;
                int n;
                try { status = UnixSocket.Receive(_fd, _rx.AsSpan(_rxFill, want), fds, out n); }
                catch (IOException e)
                {
                    Fail($"receive failed: {e.Message}");
                    return;
                }
                if (fds.Count > 0)
                {
                    Violation($"{fds.Count} fds arrived with a reply");
                    return;
                }
                if (status == IoStatus.WouldBlock) return;
                if (status == IoStatus.Closed)
                {
                    Fail(_rxFill == 0 ? "the front-end closed the channel" : $"the front-end closed the channel inside a reply ({_rxFill} of {ReplySize} bytes)");
                    return;
                }
                _rxFill += n;
                if (_rxFill == VhostUserHeader.Length && !CheckHeader()) return;
                if (_rxFill == ReplySize)
                {
                    _rxFill = 0;
                    OnReply(BinaryPrimitives.ReadUInt64LittleEndian(_rx.AsSpan(VhostUserHeader.Length)));
                }
            }
        }
        finally
        {
            foreach (var fd in fds) fd.Dispose();
        }
    }

    private bool CheckHeader()
    {
        var h = VhostUserHeader.Read(_rx);
        if (!_pending.TryPeek(out var head))
        {
            Violation($"a message (request {h.Request}, flags 0x{h.Flags:x}, size {h.Size}) arrived while no request awaits a reply");
            return false;
        }
        if ((h.Flags & VhostUserHeader.VersionMask) != VhostUserHeader.Version || !h.IsReply)
        {
            Violation($"expected the reply to {head.Request}, got request {h.Request} with flags 0x{h.Flags:x} (not a version-1 reply)");
            return false;
        }
        if (h.Request != (uint)head.Request)
        {
            Violation($"expected the reply to {head.Request}, got a reply to request {h.Request}");
            return false;
        }
        if (h.Size != 8)
        {
            Violation($"the reply to {head.Request} has {h.Size} payload bytes, expected 8");
            return false;
        }
        return true;
    }

    private void OnReply(ulong value)
    {
        var p = _pending.Dequeue();
        RepliesReceived++;
        if (p.Abandoned)
        {
            _abandoned--;
            _log.LogInformation("{Conn}: back-end channel: late reply {Value} to {Request} (it had timed out); dropped", _name, value, p.Request);
            if (value == 0 && p.Map is ShmemMapRequest m)
            {
                // The device gave up on this mapping; the front-end made it after all. Undo it so
                // that the range is free again on both sides.
                _log.LogWarning("{Conn}: back-end channel: undoing the late mapping at shm offset 0x{Offset:x} +0x{Len:x}", _name, m.ShmOffset, m.Length);
                Span<byte> payload = stackalloc byte[ShmemMapRequest.Size];
                (m with { FdOffset = 0, Flags = 0 }).Write(payload);
                _ = Enqueue(VhostUserBackendRequest.ShmemUnmap, payload, null, abandoned: true, map: null);
            }
        }
        else
        {
            if (value != 0)
            {
                Refused++;
                _log.LogWarning("{Conn}: back-end channel: the front-end refused {Request} (reply {Value})", _name, p.Request, value);
            }
            p.Completion.TrySetResult(value == 0);
        }
        ArmTimer();
    }

    /// <summary>
    /// Makes sure a timer fires by the oldest unanswered request's deadline. Deadlines grow in
    /// request order, so one timer is enough: an earlier one that finds nothing due re-arms.
    /// </summary>
    private void ArmTimer()
    {
        if (_closed || _loop is null) return;
        long? due = null;
        foreach (var p in _pending)
        {
            if (!p.Abandoned) { due = p.Deadline; break; }
        }
        if (due is not long d) return;
        if (_timer is not null && _timerDue <= d) return;
        _timer?.Dispose();
        _timerDue = d;
        var delay = TimeSpan.FromSeconds(Math.Max(0, d - Stopwatch.GetTimestamp()) / (double)Stopwatch.Frequency);
        _timer = _loop.Schedule(delay, OnTimer);
    }

    private void OnTimer()
    {
        _timer = null;
        if (_closed) return;
        long now = Stopwatch.GetTimestamp();
        Pending? oldest = null;
        foreach (var p in _pending)
        {
            if (!p.Abandoned) { oldest = p; break; }
        }
        if (oldest is null) return;
        if (oldest.Deadline > now)
        {
            ArmTimer();
            return;
        }
        // Replies come in order: if the oldest got none in time, none of the later ones will
        // come before it. Fail them all now; their replies are dropped if they still come.
        var failed = new List<Pending>();
        foreach (var p in _pending)
        {
            if (p.Abandoned) continue;
            p.Abandoned = true;
            _abandoned++;
            TimedOut++;
            failed.Add(p);
        }
        // Logged first: whoever waits for the tasks finds the line written.
        _log.LogWarning("{Conn}: back-end channel: no reply to {Request} within {Timeout} s; failed {Count} pending request(s)",
            _name, oldest.Request, ReplyTimeout.TotalSeconds, failed.Count);
        foreach (var p in failed) p.Completion.TrySetResult(false);
        if (_abandoned > MaxAbandoned)
            Fail($"{_abandoned} requests never answered; giving the channel up");
    }

    /// <summary>
    /// Fails every request still awaiting its reply (device reset: what the device asked for is
    /// no longer its). Their replies are dropped when they come; a late successful SHMEM_MAP is
    /// undone. Loop thread.
    /// </summary>
    public void AbandonPending(string why)
    {
        if (_closed) return;
        var failed = new List<Pending>();
        foreach (var p in _pending)
        {
            if (p.Abandoned) continue;
            p.Abandoned = true;
            _abandoned++;
            failed.Add(p);
        }
        if (failed.Count > 0) _log.LogInformation("{Conn}: back-end channel: {Count} pending request(s) failed: {Why}", _name, failed.Count, why);
        foreach (var p in failed) p.Completion.TrySetResult(false);
        ArmTimer();
        if (_abandoned > MaxAbandoned) Fail($"{_abandoned} requests never answered; giving the channel up");
    }

    private void Violation(string what)
    {
        _log.LogError("{Conn}: back-end channel protocol violation, dropping the channel: {What}", _name, what);
        Close(raise: true);
    }

    private void Fail(string what)
    {
        _log.LogWarning("{Conn}: back-end channel closed: {What}", _name, what);
        Close(raise: true);
    }

    private void Close(bool raise)
    {
        if (_closed) return;
        _closed = true;
        _timer?.Dispose();
        _timer = null;
        _watch?.Dispose();
        _watch = null;
        var pending = _pending.Where(p => !p.Completion.Task.IsCompleted).ToList();
        _pending.Clear();
        var unsent = _outbox.ToList();
        _outbox.Clear();
        if (pending.Count > 0) _log.LogWarning("{Conn}: back-end channel: {Count} pending request(s) failed as the channel closed", _name, pending.Count);
        _socket.Dispose();
        foreach (var o in unsent) o.Fd?.Dispose();
        // The channel is dropped before anyone waiting learns of the failure.
        if (raise) Closed?.Invoke(this);
        foreach (var p in pending) p.Completion.TrySetResult(false);
        foreach (var o in unsent) o.Completion?.TrySetResult(false);
    }

    /// <summary>Closes the channel; pending requests complete false. On an attached channel call it on the loop thread.</summary>
    public void Dispose()
    {
        if (_closed)
        {
            _socket.Dispose();
            return;
        }
        Close(raise: false);
    }

    private sealed class Pending(VhostUserBackendRequest request, TaskCompletionSource<bool> completion, long deadline, ShmemMapRequest? map)
    {
        public VhostUserBackendRequest Request { get; } = request;
        public TaskCompletionSource<bool> Completion { get; } = completion;
        public long Deadline { get; } = deadline;
        public ShmemMapRequest? Map { get; } = map;
        public bool Abandoned { get; set; }
    }

    private sealed class Outgoing(VhostUserBackendRequest request, byte[] bytes, TaskCompletionSource<bool>? completion)
    {
        public VhostUserBackendRequest Request { get; } = request;
        public byte[] Bytes { get; } = bytes;
        public TaskCompletionSource<bool>? Completion { get; } = completion;
        public FdHandle? Fd { get; set; }
        public int Offset { get; set; }
        public bool Done => Offset == Bytes.Length;
    }
}
