using Microsoft.Extensions.Logging;
using VirtioGpuHost.Interop;
using VirtioGpuHost.VhostUser.Transport;

namespace VirtioGpuHost.VhostUser.Display;

/// <summary>
/// The display socket's output: messages go out in order, non-blocking, from the event loop.
/// UPDATE pixels are never copied in user space: rows are iovecs into the resource's memory,
/// and large UPDATEs are spliced (the display copies from the very pages). A message keeps a
/// reference on that memory until the display has read it (TIOCOUTQ).
///
/// The queue is busy while the display lags: <see cref="MaxUpdatesInFlight"/> UPDATEs unread,
/// <see cref="MaxReferencingUpdates"/> of them holding memory, or <see cref="MaxBytesInFlight"/>
/// pixel bytes queued or unread. Busy changes only in <see cref="Refresh"/>, which raises
/// <see cref="Idle"/> (posted to the loop) on every busy → idle transition.
/// </summary>
internal sealed class DisplayOutputQueue
{
    public const long SpliceThreshold = 256 << 10;
    public const int MaxUpdatesInFlight = 8;
    public const int MaxReferencingUpdates = 2;
    public const long MaxBytesInFlight = 32L << 20;

    private readonly FdHandle _socket;
    private readonly EventLoop _loop;
    private readonly ILogger _log;
    private readonly string _name;
    private readonly Queue<OutgoingMessage> _out = new();
    private readonly Queue<(long End, OutgoingMessage Message)> _unread = new();
    private SplicePipe? _pipe;
    private bool _spliceUnavailable;
    private long _handed;          // bytes handed to the kernel so far
    private long _queuedBytes;     // bytes not yet handed
    private long _pixelBytes;      // pixel bytes queued or unread
    private int _updates;          // UPDATEs queued or unread
    private int _referencing;      // of those, holding memory
    private bool _busy;
    private IDisposable? _check;
    private int _checkDelayUs = 100;

    public DisplayOutputQueue(FdHandle socket, EventLoop loop, ILogger log, string name)
    {
        _socket = socket;
        _loop = loop;
        _log = log;
        _name = name;
    }

    /// <summary>Posted on the loop whenever the queue stops being busy.</summary>
    public event Action? Idle;

    /// <summary>The peer closed the socket or writing failed (the reason).</summary>
    public event Action<string>? Failed;

    public bool HasOutput => _out.Count > 0;
    public long QueuedBytes => _queuedBytes;
    public int UpdatesInFlight => _updates;
    public long SplicedBytes { get; private set; }
    public long CopiedBytes { get; private set; }

    /// <summary>Busy now (asks the kernel what the display has read first).</summary>
    public bool IsBusy
    {
        get
        {
            Refresh();
            return _busy;
        }
    }

    public void Enqueue(OutgoingMessage m)
    {
        _out.Enqueue(m);
        _queuedBytes += m.Remaining;
        if (m.IsUpdate)
        {
            _updates++;
            _pixelBytes += m.PixelBytes;
            if (m.HoldsMemory) _referencing++;
        }
        Flush();
    }

    /// <summary>Writes what the socket takes now.</summary>
    public void Flush()
    {
        try
        {
            while (_out.Count > 0)
            {
                var m = _out.Peek();
                var pipe = m.HoldsMemory && m.PixelBytes >= SpliceThreshold ? Pipe() : null;
                var status = pipe is null ? m.SendSome(_socket, out long sent) : m.SpliceSome(_socket, pipe, out sent);
                _queuedBytes -= sent;
                _handed += sent;
                if (status == IoStatus.Closed) { Failed?.Invoke("the display closed the socket"); return; }
                if (status == IoStatus.WouldBlock) break;
                if (m.Remaining > 0) continue;
                _out.Dequeue();
                if (!m.IsUpdate)
                {
                    m.Release();
                    continue;
                }
                if (pipe is null)
                {
                    CopiedBytes += m.PixelBytes;
                    ReleaseMemory(m); // the kernel copied the pixels
                }
                else
                {
                    SplicedBytes += m.PixelBytes; // the display reads the very pages: hold them
                }
                _unread.Enqueue((_handed, m));
            }
        }
        catch (SyscallException e) when (e.Call == "vmsplice" && _out.TryPeek(out var head) && head.NothingSpliced)
        {
            _log.LogInformation("{Conn}: display socket: vmsplice unavailable ({Error}); UPDATE pixels are copied by sendmsg", _name, e.Message);
            _spliceUnavailable = true;
            _pipe?.Dispose();
            _pipe = null;
            Flush();
            return;
        }
        catch (SyscallException e)
        {
            Failed?.Invoke(e.Message);
            return;
        }
        Refresh();
    }

    /// <summary>
    /// Forgets UPDATEs the display has read (releasing their memory), recomputes busy, and
    /// raises <see cref="Idle"/> on a busy → idle transition. While something still holds memory
    /// or the queue is busy, it looks again after 100 µs, backing off to 2 ms.
    /// </summary>
    public void Refresh()
    {
        int before = _unread.Count;
        if (_unread.Count > 0)
        {
            long outq;
            try { outq = UnixSocket.OutputQueueBytes(_socket); }
            catch (SyscallException) { outq = long.MaxValue; }
            long read = _handed - outq; // TIOCOUTQ counts kernel overhead too: never less than unread
            while (_unread.TryPeek(out var u) && u.End <= read)
            {
                _unread.Dequeue();
                _updates--;
                _pixelBytes -= u.Message.PixelBytes;
                ReleaseMemory(u.Message);
            }
        }
        bool wasBusy = _busy;
        _busy = _queuedBytes > MaxBytesInFlight || _pixelBytes > MaxBytesInFlight || _updates >= MaxUpdatesInFlight || _referencing >= MaxReferencingUpdates;
        _checkDelayUs = _unread.Count < before ? 100 : Math.Min(_checkDelayUs * 2, 2000);
        if (_unread.Count > 0 && (_busy || _referencing > 0))
            _check ??= _loop.Schedule(TimeSpan.FromMicroseconds(_checkDelayUs), () =>
            {
                _check = null;
                Refresh();
            });
        if (wasBusy && !_busy) _loop.Post(() => Idle?.Invoke());
    }

    private void ReleaseMemory(OutgoingMessage m)
    {
        if (m.HoldsMemory) _referencing--;
        m.Release();
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

    /// <summary>
    /// Stops for good. Messages not yet handed to the kernel are dropped. Spliced UPDATEs the
    /// display has not read keep their memory until it has, or hangs up (closing our end does not
    /// take the data back from its receive queue): <paramref name="peerClosed"/> says it already did.
    /// Returns what still holds memory, for <see cref="LingeringSockets"/>.
    /// </summary>
    public List<OutgoingMessage> Close(bool peerClosed)
    {
        _check?.Dispose();
        while (_out.TryDequeue(out var m)) m.Release();
        _pipe?.Dispose();
        var held = new List<OutgoingMessage>();
        if (!peerClosed) Refresh();
        while (_unread.TryDequeue(out var u))
        {
            if (peerClosed || !u.Message.HoldsMemory) u.Message.Release();
            else held.Add(u.Message);
        }
        _queuedBytes = _pixelBytes = 0;
        _updates = _referencing = 0;
        _busy = false;
        return held;
    }
}
