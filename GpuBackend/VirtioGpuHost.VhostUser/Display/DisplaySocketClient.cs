using System.Buffers;
using System.Buffers.Binary;
using Microsoft.Extensions.Logging;
using VirtioGpuHost.GuestMemory;
using VirtioGpuHost.Interop;
using VirtioGpuHost.VhostUser.Transport;
using VirtioGpuHost.VhostUser.Wire;

namespace VirtioGpuHost.VhostUser.Display;

/// <summary>
/// The back-end's end of the vhost-user-gpu display socket (GPU_SET_SOCKET). Requests go
/// out through a non-blocking queue drained by the event loop, so a slow or stuck display
/// never blocks the loop (QEMU may itself be waiting for a vhost-user reply from us).
/// Replies are matched in order to the requests that expect one. Everything runs on the
/// connection's event loop thread.
///
/// Pixels are never copied in user space: an UPDATE's rows go out as iovecs pointing into
/// the resource's memory, and large ones (≥ <see cref="SpliceThreshold"/>) are spliced
/// (vmsplice + splice): the kernel passes page references to the display, which copies from
/// the very pages. A message keeps a reference on that memory until the display has read it
/// (TIOCOUTQ), so the device can see that the memory is shared and not write into it.
/// </summary>
public sealed class DisplaySocketClient : IDisposable
{
    /// <summary>How long a request waits for its reply (QEMU never answers some, e.g. GET_EDID for a scanout it lacks).</summary>
    public static TimeSpan ReplyTimeout { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Above this many queued bytes the device should stop producing until <see cref="Drained"/>.</summary>
    public const long BackpressureBytes = 32L << 20;

    /// <summary>Messages with at least this many pixel bytes are spliced by reference instead of copied by sendmsg.</summary>
    public const long SpliceThreshold = 256 << 10;

    /// <summary>
    /// UPDATEs the display may have outstanding (sent or queued, not yet read) before it counts
    /// as busy: a display that reads slower than the guest draws lags at most this many frames
    /// (the C back-end's blocking write into a 208 KiB socket buffer allows about 13 small ones).
    /// </summary>
    public const int MaxUpdatesInFlight = 8;

    /// <summary>
    /// UPDATEs holding references to resource memory (spliced, not yet read) before the display
    /// counts as busy: one frame being read while the next is produced, so a resource never needs
    /// more than one spare buffer.
    /// </summary>
    public const int MaxReferencingUpdates = 2;

    private readonly FdHandle _socket;
    private readonly EventLoop _loop;
    private readonly ILogger _log;
    private readonly string _name;
    private readonly IDisposable _watch;
    private readonly Queue<OutgoingMessage> _out = new();
    private readonly Queue<PendingReply> _pending = new();
    private readonly byte[] _in = new byte[VhostUserHeader.Length + GpuDisplayWire.MaxReplySize];
    private int _inLength;
    private long _queuedBytes;
    private bool _closed;
    private SplicePipe? _pipe;
    private bool _spliceUnavailable;
    private long _handed; // bytes handed to the kernel so far
    private readonly Queue<(long End, OutgoingMessage Message)> _unread = new(); // UPDATEs handed to the kernel, maybe not yet read
    private IDisposable? _unreadCheck;
    private int _unreadDelayUs = 100;

    public DisplaySocketClient(FdHandle socket, EventLoop loop, ILogger logger, string connectionName)
    {
        _socket = socket;
        _loop = loop;
        _log = logger;
        _name = connectionName;
        socket.SetNonBlocking(true);
        // Room for a whole 1080p UPDATE in one sendmsg (the kernel doubles the value; without
        // CAP_NET_ADMIN it is capped at net.core.wmem_max). Backpressure still pauses the
        // control queue while a zero-copy UPDATE is not fully handed to the kernel.
        UnixSocket.TrySetSendBuffer(socket, 16 << 20);
        _watch = loop.Watch(socket, Wanted, OnReady);
    }

    /// <summary>The features agreed with the display (set after <see cref="NegotiateAsync"/>).</summary>
    public GpuDisplayProtocolFeatures Features { get; private set; }

    public bool IsClosed => _closed;

    /// <summary>Bytes waiting to be written.</summary>
    public long QueuedBytes => _queuedBytes;

    /// <summary>UPDATEs queued or sent but not yet read by the display (refreshed from TIOCOUTQ).</summary>
    public int UpdatesInFlight
    {
        get
        {
            ReleaseRead();
            return _pixelMessages;
        }
    }

    /// <summary>
    /// True while more than <see cref="BackpressureBytes"/> are queued, <see cref="MaxUpdatesInFlight"/>
    /// UPDATEs are not yet read by the display, or <see cref="MaxReferencingUpdates"/> of them still
    /// reference resource memory. Asking refreshes from the kernel and, when busy, makes sure the
    /// client keeps looking until it is not (then <see cref="Drained"/> fires).
    /// </summary>
    public bool IsBackpressured
    {
        get
        {
            ReleaseRead();
            bool busy = BusyAsLastSeen;
            if (busy) _wakeWanted = true;
            if (busy && _unread.Count > 0) ScheduleUnreadCheck();
            return busy;
        }
    }

    // Counts kept as messages move: queued or unread UPDATEs, and those holding resource memory.
    private int _pixelMessages, _referencingMessages;
    private bool _wakeWanted;

    /// <summary>The busy state from what is known now, without asking the kernel (to detect transitions).</summary>
    private bool BusyAsLastSeen => !_closed &&
        (_queuedBytes > BackpressureBytes || _pixelMessages >= MaxUpdatesInFlight || _referencingMessages >= MaxReferencingUpdates);

    /// <summary>Pixel bytes sent by splicing (by reference) and by sendmsg (copied by the kernel).</summary>
    public long SplicedBytes { get; private set; }
    public long CopiedBytes { get; private set; }

    /// <summary>Raised (on the loop) when the output queue empties or the socket closes.</summary>
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
        var timer = _loop.Schedule(ReplyTimeout, () =>
        {
            if (pending.Completion.Task.IsCompleted) return;
            pending.Abandoned = true;
            _log.LogWarning("{Conn}: display socket: no reply to {Request} within {Ms} ms", _name, request, ReplyTimeout.TotalMilliseconds);
            pending.Completion.TrySetResult(null);
        });
        pending.Completion.Task.ContinueWith(_ => timer.Dispose(), TaskScheduler.Default);
        return pending.Completion.Task;
    }

    private void Enqueue(OutgoingMessage m)
    {
        if (_closed)
        {
            m.Release();
            return;
        }
        _out.Enqueue(m);
        if (m.HasPixels) _pixelMessages++;
        if (m.HoldsMemory) _referencingMessages++;
        _queuedBytes += m.Remaining;
        Flush(); // write what fits now; the rest goes when the socket is writable
    }

    private PollEvents Wanted() => _closed ? PollEvents.None : PollEvents.In | (_out.Count > 0 ? PollEvents.Out : PollEvents.None);

    private void OnReady(PollEvents ready)
    {
        if ((ready & PollEvents.Out) != 0) Flush();
        CheckUnread();
        if ((ready & (PollEvents.In | PollEvents.HangUp | PollEvents.Error)) != 0 && !_closed) ReadReplies();
    }

    private void Flush()
    {
        bool wasBusy = BusyAsLastSeen;
        try
        {
            while (_out.Count > 0 && !_closed)
            {
                var m = _out.Peek();
                var pipe = m.Spliceable ? Pipe() : null;
                var status = pipe is null ? m.SendSome(_socket, out long sent) : m.SpliceSome(_socket, pipe, out sent);
                _queuedBytes -= sent;
                _handed += sent;
                if (status == IoStatus.Closed) { Close("the display closed the socket"); return; }
                if (status == IoStatus.WouldBlock) break;
                if (m.Remaining == 0)
                {
                    _out.Dequeue();
                    if (pipe is null)
                    {
                        CopiedBytes += m.PixelBytes;
                        Release(m); // the kernel copied the bytes
                    }
                    else
                    {
                        SplicedBytes += m.PixelBytes; // the display reads the very pages: hold them until it has
                    }
                    if (m.HasPixels) _unread.Enqueue((_handed, m));
                }
            }
        }
        catch (SyscallException e) when (e.Call == "vmsplice" && _out.TryPeek(out var head) && head.NothingSpliced)
        {
            // This kernel or memory cannot be spliced: copy from now on (the message is intact).
            _log.LogInformation("{Conn}: display socket: vmsplice unavailable ({Error}); UPDATE pixels are copied by sendmsg", _name, e.Message);
            _spliceUnavailable = true;
            _pipe?.Dispose();
            _pipe = null;
            Flush();
            return;
        }
        catch (SyscallException e)
        {
            Close(e.Message);
            return;
        }
        CheckUnread();
        if ((wasBusy || _wakeWanted) && !BusyAsLastSeen || _out.Count == 0 && _unread.Count == 0)
        {
            _wakeWanted = false;
            Drained?.Invoke();
        }
    }

    private SplicePipe? Pipe()
    {
        if (_pipe is not null || _spliceUnavailable) return _pipe;
        _pipe = SplicePipe.TryCreate(1 << 20);
        if (_pipe is null)
        {
            _spliceUnavailable = true;
            _log.LogInformation("{Conn}: display socket: no pipe for splicing; UPDATE pixels are copied by sendmsg", _name);
        }
        return _pipe;
    }

    private void Release(OutgoingMessage m)
    {
        if (m.HoldsMemory) _referencingMessages--;
        m.Release();
    }

    /// <summary>
    /// Forgets (and releases the memory of) UPDATEs the display has read. TIOCOUTQ counts what the
    /// display has not read yet (with kernel overhead, so never less): everything handed before
    /// handed − outq is read.
    /// </summary>
    private void ReleaseRead()
    {
        if (_unread.Count == 0 || _closed) return;
        long outq;
        try { outq = UnixSocket.OutputQueueBytes(_socket); }
        catch (SyscallException) { return; }
        long read = _handed - outq;
        while (_unread.TryPeek(out var u) && u.End <= read)
        {
            _unread.Dequeue();
            _pixelMessages--;
            Release(u.Message);
        }
    }

    /// <summary>
    /// Looks at what the display has read, and keeps looking (after 100 µs, backing off to 2 ms for
    /// a display that reads slowly) while resource memory is still referenced or someone waits for
    /// the display; wakes the waiters once it is no longer busy. Small UPDATEs that nobody waits
    /// for cost no timer.
    /// </summary>
    private void CheckUnread()
    {
        if (_unread.Count == 0 || _closed) return;
        bool wasBusy = BusyAsLastSeen;
        int before = _unread.Count;
        ReleaseRead();
        _unreadDelayUs = _unread.Count < before ? 100 : Math.Min(_unreadDelayUs * 2, 2000);
        if (_unread.Count > 0 && (_referencingMessages > 0 || _wakeWanted)) ScheduleUnreadCheck();
        if ((wasBusy || _wakeWanted) && !BusyAsLastSeen)
        {
            _wakeWanted = false;
            Drained?.Invoke();
        }
    }

    private void ScheduleUnreadCheck() =>
        _unreadCheck ??= _loop.Schedule(TimeSpan.FromMicroseconds(_unreadDelayUs), () =>
        {
            _unreadCheck = null;
            CheckUnread();
        });

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
                Close(e.Message);
                return;
            }
            if (status == IoStatus.WouldBlock) return;
            if (status == IoStatus.Closed) { Close("the display closed the socket"); return; }
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
                Close($"unexpected message {h.Request} (size {h.Size}) from the display while waiting for {(_pending.Count > 0 ? _pending.Peek().Request : "nothing")}");
                return;
            }
            if (h.Size != p.Size)
            {
                Close($"reply to {p.Request} has size {h.Size}, expected {p.Size}");
                return;
            }
            int total = VhostUserHeader.Length + (int)h.Size;
            if (_inLength < total) return;
            var payload = _in.AsSpan(VhostUserHeader.Length, (int)h.Size).ToArray();
            _in.AsSpan(total, _inLength - total).CopyTo(_in);
            _inLength -= total;
            _pending.Dequeue();
            p.Completion.TrySetResult(payload);
        }
    }

    private void Close(string reason)
    {
        if (_closed) return;
        _closed = true;
        _log.LogInformation("{Conn}: display socket closed: {Reason}", _name, reason);
        while (_pending.TryDequeue(out var p)) p.Completion.TrySetResult(null);
        while (_out.TryDequeue(out var m)) m.Release();
        // Closing the socket frees its queued data; the kernel holds its own page references.
        while (_unread.TryDequeue(out var u)) u.Message.Release();
        _pixelMessages = _referencingMessages = 0;
        _unreadCheck?.Dispose();
        _queuedBytes = 0;
        _watch.Dispose();
        _socket.Dispose();
        _pipe?.Dispose();
        Closed?.Invoke();
        Drained?.Invoke();
    }

    public void Dispose() => Close("display socket replaced or connection ended");

    private sealed class PendingReply(GpuDisplayRequest request, int size)
    {
        public GpuDisplayRequest Request { get; } = request;
        public int Size { get; } = size;
        public bool Abandoned { get; set; }
        // Continuations run on the event loop through its SynchronizationContext, never inline.
        public TaskCompletionSource<byte[]?> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    /// <summary>A message being written: a pinned head (header + small payload) plus optional zero-copy segments.</summary>
    private sealed class OutgoingMessage(byte[] head, IoSegment[] segments, MemoryBlock? keepAlive)
    {
        private long _offset;   // bytes handed to the socket
        private long _filled;   // segment bytes moved into the splice pipe
        private readonly long _total = head.Length + segments.Sum(s => (long)s.Length);

        public IoSegment[] Segments { get; } = segments;
        public long Remaining => _total - _offset;
        public long PixelBytes => _total - head.Length;
        public bool HasPixels => Segments.Length > 0;
        public bool HoldsMemory => keepAlive is not null;
        public bool Spliceable => keepAlive is not null && PixelBytes >= SpliceThreshold;
        public bool NothingSpliced => _filled == 0;

        /// <summary>The head by sendmsg, then the segments by vmsplice + splice (page references).</summary>
        public IoStatus SpliceSome(FdHandle socket, SplicePipe pipe, out long sent)
        {
            sent = 0;
            if (_offset < head.Length)
            {
                var st = UnixSocket.Send(socket, head.AsSpan((int)_offset), default, out int n);
                _offset += n;
                sent += n;
                if (st != IoStatus.Ok || _offset < head.Length) return st;
            }
            while (_offset < _total)
            {
                if (pipe.Buffered == 0)
                {
                    long got = pipe.Fill(Segments, _filled);
                    _filled += got;
                    if (got == 0) return IoStatus.WouldBlock;
                }
                var st = pipe.Drain(socket, out long moved);
                _offset += moved;
                sent += moved;
                if (st != IoStatus.Ok) return st;
            }
            return IoStatus.Ok;
        }

        public IoStatus SendSome(FdHandle socket, out long sent)
        {
            nint h = System.Runtime.InteropServices.Marshal.UnsafeAddrOfPinnedArrayElement(head, 0);
            {
                // Build the iovec list from the current offset.
                var list = ArrayPool<IoSegment>.Shared.Rent(Segments.Length + 1);
                try
                {
                    int count = 0;
                    long skip = _offset;
                    if (skip < head.Length) list[count++] = new IoSegment(h + (nint)skip, (nint)(head.Length - skip));
                    skip = Math.Max(0, skip - head.Length);
                    foreach (var s in Segments)
                    {
                        if (skip >= s.Length) { skip -= s.Length; continue; }
                        list[count++] = new IoSegment(s.Address + (nint)skip, s.Length - (nint)skip);
                        skip = 0;
                    }
                    var status = UnixSocket.SendVector(socket, list.AsSpan(0, count), default, out sent);
                    _offset += sent;
                    return status;
                }
                finally
                {
                    ArrayPool<IoSegment>.Shared.Return(list);
                }
            }
        }

        /// <summary>Gives back the memory reference (once; later calls do nothing).</summary>
        public void Release()
        {
            keepAlive?.Release();
            keepAlive = null;
        }
    }
}
