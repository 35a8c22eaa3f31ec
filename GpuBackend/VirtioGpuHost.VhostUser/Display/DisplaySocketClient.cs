using System.Buffers.Binary;
using Microsoft.Extensions.Logging;
using VirtioGpuHost.GuestMemory;
using VirtioGpuHost.Interop;
using VirtioGpuHost.VhostUser.Transport;
using VirtioGpuHost.VhostUser.Wire;

namespace VirtioGpuHost.VhostUser.Display;

/// <summary>
/// The back-end's end of the vhost-user-gpu display socket (GPU_SET_SOCKET): requests out
/// through <see cref="DisplayOutputQueue"/> (non-blocking, zero-copy pixels, bounded lag), so a
/// slow or stuck display never blocks the event loop (QEMU may itself be waiting for a
/// vhost-user reply from us); replies matched in order to the requests that expect one, with a
/// timeout. Everything runs on the connection's event loop thread.
/// </summary>
public sealed class DisplaySocketClient : IDisposable
{
    /// <summary>UPDATEs the display may leave unread before the device waits (see <see cref="DisplayOutputQueue"/>).</summary>
    public const int MaxUpdatesInFlight = DisplayOutputQueue.MaxUpdatesInFlight;

    /// <summary>Pixel bytes queued or unread before the device waits.</summary>
    public const long BackpressureBytes = DisplayOutputQueue.MaxBytesInFlight;

    private readonly FdHandle _socket;
    private readonly EventLoop _loop;
    private readonly ILogger _log;
    private readonly string _name;
    private readonly IDisposable _watch;
    private readonly DisplayOutputQueue _output;
    private readonly Queue<PendingReply> _pending = new();
    private readonly byte[] _in = new byte[VhostUserHeader.Length + GpuDisplayWire.MaxReplySize];
    private int _inLength;
    private bool _closed;

    public DisplaySocketClient(FdHandle socket, EventLoop loop, ILogger logger, string connectionName, TimeSpan? replyTimeout = null)
    {
        _socket = socket;
        _loop = loop;
        _log = logger;
        _name = connectionName;
        ReplyTimeout = replyTimeout ?? TimeSpan.FromSeconds(1);
        socket.SetNonBlocking(true);
        // Room for a whole 1080p UPDATE in one sendmsg (the kernel doubles the value; without
        // CAP_NET_ADMIN it is capped at net.core.wmem_max).
        UnixSocket.TrySetSendBuffer(socket, 16 << 20);
        _output = new DisplayOutputQueue(socket, loop, logger, connectionName);
        _output.Idle += () => Drained?.Invoke();
        _output.Failed += reason => Close(reason, peerClosed: true);
        _watch = loop.Watch(socket, Wanted, OnReady);
    }

    /// <summary>How long a request waits for its reply (QEMU never answers some, e.g. GET_EDID for a scanout it lacks).</summary>
    public TimeSpan ReplyTimeout { get; }

    /// <summary>The features agreed with the display (set after <see cref="NegotiateAsync"/>).</summary>
    public GpuDisplayProtocolFeatures Features { get; private set; }

    public bool IsClosed => _closed;

    /// <summary>Bytes waiting to be written.</summary>
    public long QueuedBytes => _output.QueuedBytes;

    /// <summary>UPDATEs queued or sent but not yet read by the display.</summary>
    public int UpdatesInFlight => _output.UpdatesInFlight;

    /// <summary>True while the display lags (see <see cref="DisplayOutputQueue"/>); the device then waits for <see cref="Drained"/>.</summary>
    public bool IsBackpressured => !_closed && _output.IsBusy;

    /// <summary>Pixel bytes sent by splicing (by reference) and by sendmsg (copied by the kernel).</summary>
    public long SplicedBytes => _output.SplicedBytes;
    public long CopiedBytes => _output.CopiedBytes;

    /// <summary>
    /// Display sockets (of every connection in this process) closed while the display still had
    /// spliced pixels to read: kept open, with their memory, until it has read them or hangs up.
    /// </summary>
    public static int LingeringSocketCount => LingeringSockets.Count;

    /// <summary>Raised (on the loop) when the display stops lagging, and when the socket closes.</summary>
    public event Action? Drained;

    /// <summary>Raised once when the display side goes away.</summary>
    public event Action? Closed;

    /// <summary>GET_PROTOCOL_FEATURES then SET_PROTOCOL_FEATURES (what both sides support among <paramref name="wanted"/>).</summary>
    public async Task<GpuDisplayProtocolFeatures> NegotiateAsync(GpuDisplayProtocolFeatures wanted)
    {
        var reply = await RequestAsync(GpuDisplayRequest.GetProtocolFeatures, [], 8).ConfigureAwait(true);
        if (reply is null) return Features = GpuDisplayProtocolFeatures.None;
        var offered = (GpuDisplayProtocolFeatures)BinaryPrimitives.ReadUInt64LittleEndian(reply);
        Features = offered & wanted;
        var payload = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(payload, (ulong)Features);
        Send(GpuDisplayRequest.SetProtocolFeatures, payload);
        _log.LogInformation("{Conn}: display socket: display offers {Offered}, using {Used}", _name, offered, Features);
        return Features;
    }

    /// <summary>GET_DISPLAY_INFO: the 408-byte virtio_gpu_resp_display_info, or null if the display went away or timed out.</summary>
    public Task<byte[]?> GetDisplayInfoAsync() => RequestAsync(GpuDisplayRequest.GetDisplayInfo, [], GpuDisplayWire.DisplayInfoReplySize);

    /// <summary>GET_EDID: the 1056-byte virtio_gpu_resp_edid, or null.</summary>
    public Task<byte[]?> GetEdidAsync(uint scanoutId)
    {
        var p = new byte[GpuDisplayWire.EdidRequestSize];
        BinaryPrimitives.WriteUInt32LittleEndian(p, scanoutId);
        return RequestAsync(GpuDisplayRequest.GetEdid, p, GpuDisplayWire.EdidReplySize);
    }

    /// <summary>SCANOUT: width 0 disables the scanout.</summary>
    public void SendScanout(uint scanoutId, uint width, uint height)
    {
        var p = new byte[GpuDisplayWire.ScanoutSize];
        BinaryPrimitives.WriteUInt32LittleEndian(p, scanoutId);
        BinaryPrimitives.WriteUInt32LittleEndian(p.AsSpan(4), width);
        BinaryPrimitives.WriteUInt32LittleEndian(p.AsSpan(8), height);
        Send(GpuDisplayRequest.Scanout, p);
    }

    /// <summary>
    /// UPDATE with x8r8g8b8 pixels, stride width*4. The pixels are sent straight from
    /// <paramref name="rows"/> (no copy); <paramref name="keepAlive"/> is held until they are
    /// written and released after, so the memory cannot be freed under the socket.
    /// </summary>
    public void SendUpdate(uint scanoutId, uint x, uint y, uint width, uint height, IoSegment[] rows, MemoryBlock? keepAlive)
    {
        long pixels = 0;
        foreach (var r in rows) pixels += r.Length;
        if (pixels != (long)width * height * 4) throw new ArgumentException("update rows do not add up to width*height*4 bytes");
        var head = GC.AllocateUninitializedArray<byte>(VhostUserHeader.Length + GpuDisplayWire.UpdateHeaderSize, pinned: true);
        // Every field is written: the C back-ends send uninitialised flags here.
        new VhostUserHeader((uint)GpuDisplayRequest.Update, 0, checked((uint)(GpuDisplayWire.UpdateHeaderSize + pixels))).Write(head);
        var u = head.AsSpan(VhostUserHeader.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(u, scanoutId);
        BinaryPrimitives.WriteUInt32LittleEndian(u[4..], x);
        BinaryPrimitives.WriteUInt32LittleEndian(u[8..], y);
        BinaryPrimitives.WriteUInt32LittleEndian(u[12..], width);
        BinaryPrimitives.WriteUInt32LittleEndian(u[16..], height);
        keepAlive?.AddRef();
        Enqueue(new OutgoingMessage(head, rows, keepAlive));
    }

    public void SendCursorPos(uint scanoutId, uint x, uint y, bool hide)
    {
        var p = new byte[GpuDisplayWire.CursorPosSize];
        BinaryPrimitives.WriteUInt32LittleEndian(p, scanoutId);
        BinaryPrimitives.WriteUInt32LittleEndian(p.AsSpan(4), x);
        BinaryPrimitives.WriteUInt32LittleEndian(p.AsSpan(8), y);
        Send(hide ? GpuDisplayRequest.CursorPosHide : GpuDisplayRequest.CursorPos, p);
    }

    /// <summary>CURSOR_UPDATE: position, hotspot and 64x64 ARGB8888 pixels (native u32s).</summary>
    public void SendCursorUpdate(uint scanoutId, uint x, uint y, uint hotX, uint hotY, ReadOnlySpan<byte> argb64x64)
    {
        if (argb64x64.Length != GpuDisplayWire.CursorSize * GpuDisplayWire.CursorSize * 4) throw new ArgumentException("cursor image must be 64x64x4 bytes");
        var p = new byte[GpuDisplayWire.CursorUpdateSize];
        BinaryPrimitives.WriteUInt32LittleEndian(p, scanoutId);
        BinaryPrimitives.WriteUInt32LittleEndian(p.AsSpan(4), x);
        BinaryPrimitives.WriteUInt32LittleEndian(p.AsSpan(8), y);
        BinaryPrimitives.WriteUInt32LittleEndian(p.AsSpan(12), hotX);
        BinaryPrimitives.WriteUInt32LittleEndian(p.AsSpan(16), hotY);
        argb64x64.CopyTo(p.AsSpan(20));
        Send(GpuDisplayRequest.CursorUpdate, p);
    }

    private void Send(GpuDisplayRequest request, ReadOnlySpan<byte> payload)
    {
        var buf = GC.AllocateUninitializedArray<byte>(VhostUserHeader.Length + payload.Length, pinned: true);
        new VhostUserHeader((uint)request, 0, (uint)payload.Length).Write(buf);
        payload.CopyTo(buf.AsSpan(VhostUserHeader.Length));
        Enqueue(new OutgoingMessage(buf, [], null));
    }

    private void Enqueue(OutgoingMessage m)
    {
        if (_closed)
        {
            m.Release();
            return;
        }
        _output.Enqueue(m);
    }

    private Task<byte[]?> RequestAsync(GpuDisplayRequest request, ReadOnlySpan<byte> payload, int replySize)
    {
        if (_closed) return Task.FromResult<byte[]?>(null);
        // A reply names only its request. While an abandoned request of the same kind is still
        // queued (QEMU never answers GET_EDID for a scanout it lacks), the reply to this one would
        // be taken for that one's late reply. So a GET_PROTOCOL_FEATURES goes first: it is always
        // answered and changes nothing, and its reply shows that every request before it was
        // answered or never will be.
        if (request != GpuDisplayRequest.GetProtocolFeatures && _pending.Any(p => p.Abandoned && p.Request == request))
            _ = RequestAsync(GpuDisplayRequest.GetProtocolFeatures, [], 8);
        var pending = new PendingReply(request, replySize);
        _pending.Enqueue(pending);
        Send(request, payload);
        // On timeout the request is abandoned: the caller gets null, and a late reply (or
        // the reply to a later request, proving none will come) removes it from the queue.
        pending.Timeout = _loop.Schedule(ReplyTimeout, () =>
        {
            if (pending.Completion.Task.IsCompleted) return;
            pending.Abandoned = true;
            _log.LogWarning("{Conn}: display socket: no reply to {Request} within {Ms} ms", _name, request, ReplyTimeout.TotalMilliseconds);
            pending.Completion.TrySetResult(null);
        });
        return pending.Completion.Task;
    }

    private PollEvents Wanted() => _closed ? PollEvents.None : PollEvents.In | (_output.HasOutput ? PollEvents.Out : PollEvents.None);

    private void OnReady(PollEvents ready)
    {
        if ((ready & PollEvents.Out) != 0) _output.Flush();
        if ((ready & (PollEvents.In | PollEvents.HangUp | PollEvents.Error)) != 0 && !_closed) ReadReplies();
        if (!_closed) _output.Refresh();
    }

    private void ReadReplies()
    {
        while (!_closed)
        {
            IoStatus status;
            int n;
            try
            {
                status = UnixSocket.Receive(_socket, _in.AsSpan(_inLength), null, out n);
            }
            catch (Exception e) when (e is IOException)
            {
                Close(e.Message, peerClosed: true);
                return;
            }
            if (status == IoStatus.WouldBlock) return;
            if (status == IoStatus.Closed) { Close("the display closed the socket", peerClosed: true); return; }
            _inLength += n;
            ParseReplies();
        }
    }

    private void ParseReplies()
    {
        while (_inLength >= VhostUserHeader.Length && !_closed)
        {
            var h = VhostUserHeader.Read(_in);
            // Drop abandoned requests that this reply shows will never be answered.
            while (_pending.TryPeek(out var head) && head.Abandoned && h.Request != (uint)head.Request) _pending.Dequeue();
            if (!_pending.TryPeek(out var p) || h.Request != (uint)p.Request)
            {
                Close($"unexpected message {h.Request} (size {h.Size}) from the display while waiting for {(_pending.Count > 0 ? _pending.Peek().Request : "nothing")}", peerClosed: false);
                return;
            }
            if (h.Size != p.Size)
            {
                Close($"reply to {p.Request} has size {h.Size}, expected {p.Size}", peerClosed: false);
                return;
            }
            int total = VhostUserHeader.Length + (int)h.Size;
            if (_inLength < total) return;
            var payload = _in.AsSpan(VhostUserHeader.Length, (int)h.Size).ToArray();
            _in.AsSpan(total, _inLength - total).CopyTo(_in);
            _inLength -= total;
            _pending.Dequeue();
            p.Timeout?.Dispose();
            p.Completion.TrySetResult(payload);
        }
    }

    /// <summary>
    /// Ends the display socket. Spliced pixels the display has not read yet stay referenced (and
    /// the socket open) until it has or hangs up: closing our end does not take them back.
    /// </summary>
    private void Close(string reason, bool peerClosed)
    {
        if (_closed) return;
        _closed = true;
        _log.LogInformation("{Conn}: display socket closed: {Reason}", _name, reason);
        while (_pending.TryDequeue(out var p))
        {
            p.Timeout?.Dispose();
            p.Completion.TrySetResult(null);
        }
        _watch.Dispose();
        var held = _output.Close(peerClosed);
        if (held.Count > 0) LingeringSockets.Add(_socket, held);
        else _socket.Dispose();
        Closed?.Invoke();
        Drained?.Invoke();
    }

    public void Dispose() => Close("display socket replaced or connection ended", peerClosed: false);

    private sealed class PendingReply(GpuDisplayRequest request, int size)
    {
        public GpuDisplayRequest Request { get; } = request;
        public int Size { get; } = size;
        public bool Abandoned { get; set; }
        public IDisposable? Timeout { get; set; }
        // Continuations run on the event loop through its SynchronizationContext, never inline.
        public TaskCompletionSource<byte[]?> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
