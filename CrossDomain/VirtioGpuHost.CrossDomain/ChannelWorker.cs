using Microsoft.Extensions.Logging;
using VirtioGpuHost.Interop;

namespace VirtioGpuHost.CrossDomain;

/// <summary>What the worker found for one POLL fence (delivered on the event loop).</summary>
internal abstract record ChannelEvent(ulong FenceId);

/// <summary>recvmsg of the Wayland socket: data and fds; empty with <see cref="HangUp"/> when the server closed it.</summary>
internal sealed record ReceiveEvent(ulong FenceId, byte[] Data, List<FdHandle> Fds, bool HangUp) : ChannelEvent(FenceId);

/// <summary>Bytes from a watched read pipe (READ); <see cref="HangUp"/> at end of file.</summary>
internal sealed record ReadEvent(ulong FenceId, uint Identifier, byte[] Data, bool HangUp) : ChannelEvent(FenceId);

/// <summary>
/// A cross-domain context's I/O thread: polls the Wayland socket and the read pipes while the
/// guest has a POLL fence outstanding (one event per fence, as rutabaga's worker: the guest
/// must hand the ring back with a new POLL before the next message is written), and writes
/// what SEND and WRITE queued, without blocking. Every fd operation is non-blocking; the event
/// loop is never waited on. Events go to the loop through the context's post function.
/// </summary>
internal sealed class ChannelWorker : IDisposable
{
    private readonly FdHandle _socket;
    private readonly FdHandle _wake = EventFd.Create();
    private readonly object _lock = new();
    private readonly Queue<ulong> _fences = new();
    private readonly Dictionary<uint, FdHandle> _readPipes = new();
    private readonly List<Outgoing> _outgoing = new();
    private readonly Action<ChannelEvent> _deliver;
    private readonly ILogger _log;
    private readonly string _name;
    private readonly int _maxQueuedBytes;
    private readonly Thread _thread;
    private int _queuedBytes;
    private volatile bool _stopping;
    private volatile bool _hungUp;
    private bool _hangUpDelivered;

    public ChannelWorker(FdHandle socket, Action<ChannelEvent> deliver, ILogger log, string name, int maxQueuedBytes)
    {
        _socket = socket;
        _socket.SetNonBlocking(true);
        _deliver = deliver;
        _log = log;
        _name = name;
        _maxQueuedBytes = maxQueuedBytes;
        _thread = new Thread(Run) { IsBackground = true, Name = $"cross-domain {name}" };
        _thread.Start();
    }

    /// <summary>The Wayland server closed the connection (or sending to it failed).</summary>
    public bool HungUp => _hungUp;

    public int PendingFences { get { lock (_lock) return _fences.Count; } }

    public void AddFence(ulong fenceId)
    {
        lock (_lock) _fences.Enqueue(fenceId);
        EventFd.Signal(_wake);
    }

    public void WatchReadPipe(uint id, FdHandle readEnd)
    {
        lock (_lock) _readPipes[id] = readEnd;
        EventFd.Signal(_wake);
    }

    public void UnwatchReadPipe(uint id)
    {
        lock (_lock) _readPipes.Remove(id);
        EventFd.Signal(_wake);
    }

    /// <summary>Queues one sendmsg of <paramref name="data"/> with <paramref name="fds"/> (taken over: closed once sent or dropped).</summary>
    public string? QueueSend(byte[] data, FdHandle[] fds) => Queue(new Outgoing(_socket, true, data, fds, closeTarget: false));

    /// <summary>Queues bytes for a write pipe; with <paramref name="closeAfter"/> the pipe (taken over) is closed once they are written.</summary>
    public string? QueuePipeWrite(FdHandle pipe, byte[] data, bool closeAfter) => Queue(new Outgoing(pipe, false, data, [], closeAfter));

    private string? Queue(Outgoing o)
    {
        lock (_lock)
        {
            if (o.IsSocket && _hungUp)
            {
                o.Drop();
                return "the Wayland connection was closed by the host side";
            }
            if (_queuedBytes + o.Data.Length > _maxQueuedBytes)
            {
                o.Drop();
                return $"{_queuedBytes} bytes are queued already (limit {_maxQueuedBytes}): the host side is not reading";
            }
            _queuedBytes += o.Data.Length;
            _outgoing.Add(o);
        }
        EventFd.Signal(_wake);
        return null;
    }

    private void Run()
    {
        var receiveBuffer = new byte[CrossDomainProtocol.MaxReceiveData];
        var readBuffer = new byte[CrossDomainProtocol.MaxReadData];
        var entries = new List<PollEntry>();
        var pipeIds = new List<uint>();
        var targets = new List<FdHandle>();
        try
        {
            while (!_stopping)
            {
                bool haveFence;
                entries.Clear();
                pipeIds.Clear();
                targets.Clear();
                entries.Add(new PollEntry(_wake, PollEvents.In));
                lock (_lock)
                {
                    haveFence = _fences.Count > 0;
                    // Hang-up of the socket is reported once; after that only read pipes produce events.
                    bool socketOut = _outgoing.Any(o => o.IsSocket);
                    var socketWanted = (haveFence && !_hangUpDelivered ? PollEvents.In : PollEvents.None) | (socketOut ? PollEvents.Out : PollEvents.None);
                    entries.Add(new PollEntry(socketWanted == PollEvents.None ? null : _socket, socketWanted));
                    foreach (var o in _outgoing)
                    {
                        if (!o.IsSocket && !targets.Contains(o.Target)) targets.Add(o.Target);
                    }
                    foreach (var t in targets) entries.Add(new PollEntry(t, PollEvents.Out));
                    if (haveFence)
                    {
                        foreach (var (id, fd) in _readPipes)
                        {
                            pipeIds.Add(id);
                            entries.Add(new PollEntry(fd, PollEvents.In));
                        }
                    }
                }
                bool hangUpNow = haveFence && _hungUp && !_hangUpDelivered;
                var span = System.Runtime.InteropServices.CollectionsMarshal.AsSpan(entries);
                Poller.Poll(span, hangUpNow ? 0 : -1);
                if (span[0].Readable) EventFd.Drain(_wake);
                if (_stopping) break;

                if (span[1].Fd is not null && (span[1].Ready & (PollEvents.Out | PollEvents.Error | PollEvents.HangUp)) != 0) FlushSocket();
                for (int i = 0; i < targets.Count; i++)
                {
                    if (span[2 + i].Ready != PollEvents.None) FlushPipe(targets[i], span[2 + i].Ready);
                }
                if (!haveFence) continue;

                if (hangUpNow)
                {
                    Deliver(fence => new ReceiveEvent(fence, [], [], HangUp: true));
                    _hangUpDelivered = true;
                    continue;
                }
                if (span[1].Fd is not null && (span[1].Ready & (PollEvents.In | PollEvents.HangUp | PollEvents.Error)) != 0 && ReceiveOne(receiveBuffer)) continue;
                int first = 2 + targets.Count;
                for (int i = 0; i < pipeIds.Count; i++)
                {
                    if ((span[first + i].Ready & (PollEvents.In | PollEvents.HangUp | PollEvents.Error)) != 0 && ReadOne(pipeIds[i], span[first + i].Fd!, readBuffer)) break;
                }
            }
        }
        catch (Exception e)
        {
            // Never take the process down: the context stops producing events and says why.
            _log.LogError(e, "{Name}: cross-domain worker stopped", _name);
            _hungUp = true;
        }
    }

    /// <summary>One recvmsg; true when it produced an event (data, or the hang-up).</summary>
    private bool ReceiveOne(byte[] buffer)
    {
        var fds = new List<FdHandle>();
        IoStatus status;
        int n;
        try
        {
            status = UnixSocket.Receive(_socket, buffer, fds, out n);
        }
        catch (IOException e)
        {
            // Truncated control data (more than 32 fds) or a socket error: the stream cannot go on.
            _log.LogWarning("{Name}: receiving from the Wayland socket failed: {Error}; treating it as closed", _name, e.Message);
            status = IoStatus.Closed;
            n = 0;
        }
        if (status == IoStatus.WouldBlock) return false;
        if (status == IoStatus.Closed)
        {
            foreach (var fd in fds) fd.Dispose();
            _hungUp = true;
            _hangUpDelivered = true;
            lock (_lock) DropSocketOutput();
            Deliver(fence => new ReceiveEvent(fence, [], [], HangUp: true));
            return true;
        }
        var data = buffer.AsSpan(0, n).ToArray();
        if (!Deliver(fence => new ReceiveEvent(fence, data, fds, HangUp: false)))
            foreach (var fd in fds) fd.Dispose();
        return true;
    }

    private bool ReadOne(uint id, FdHandle pipe, byte[] buffer)
    {
        IoStatus status;
        int n;
        try { status = FdFiles.Read(pipe, buffer, out n); }
        catch (Exception e) when (e is IOException or ObjectDisposedException)
        {
            status = IoStatus.Closed;
            n = 0;
        }
        if (status == IoStatus.WouldBlock) return false;
        bool eof = status == IoStatus.Closed;
        if (eof) lock (_lock) _readPipes.Remove(id);
        var data = buffer.AsSpan(0, n).ToArray();
        Deliver(fence => new ReadEvent(fence, id, data, eof));
        return true;
    }

    /// <summary>Takes the oldest POLL fence and hands the event to the loop; false if there was none.</summary>
    private bool Deliver(Func<ulong, ChannelEvent> make)
    {
        ulong fence;
        lock (_lock)
        {
            if (!_fences.TryDequeue(out fence)) return false;
        }
        _deliver(make(fence));
        return true;
    }

    private void FlushSocket()
    {
        while (true)
        {
            Outgoing? o;
            lock (_lock) o = _outgoing.FirstOrDefault(x => x.IsSocket);
            if (o is null) return;
            IoStatus status;
            int sent;
            try { status = UnixSocket.Send(_socket, o.Data.AsSpan(o.Offset), o.Fds, out sent); }
            catch (Exception e) when (e is IOException or ObjectDisposedException)
            {
                _log.LogWarning("{Name}: sending to the Wayland socket failed: {Error}", _name, e.Message);
                status = IoStatus.Closed;
                sent = 0;
            }
            if (status == IoStatus.WouldBlock) return;
            if (status == IoStatus.Closed)
            {
                _hungUp = true;
                lock (_lock) DropSocketOutput();
                return;
            }
            o.SentFds(); // SCM_RIGHTS went with the first byte
            o.Offset += sent;
            if (o.Offset < o.Data.Length) continue;
            lock (_lock) Complete(o);
        }
    }

    private void FlushPipe(FdHandle target, PollEvents ready)
    {
        while (true)
        {
            Outgoing? o;
            lock (_lock) o = _outgoing.FirstOrDefault(x => x.Target == target);
            if (o is null) return;
            IoStatus status = IoStatus.Ok;
            int written = 0;
            if (o.Offset < o.Data.Length)
            {
                try { status = FdFiles.Write(target, o.Data.AsSpan(o.Offset), out written); }
                catch (Exception e) when (e is IOException or ObjectDisposedException) { status = IoStatus.Closed; }
            }
            if (status == IoStatus.WouldBlock) return;
            if (status == IoStatus.Closed)
            {
                // The reader went away: what is left for this pipe is dropped (the guest may still WRITE; it goes nowhere).
                lock (_lock)
                {
                    foreach (var x in _outgoing.Where(x => x.Target == target).ToArray()) Complete(x);
                }
                return;
            }
            o.Offset += written;
            if (o.Offset < o.Data.Length) continue;
            lock (_lock) Complete(o);
        }
    }

    private void Complete(Outgoing o)
    {
        _outgoing.Remove(o);
        _queuedBytes -= o.Data.Length;
        o.Drop();
    }

    private void DropSocketOutput()
    {
        foreach (var o in _outgoing.Where(o => o.IsSocket).ToArray()) Complete(o);
    }

    public void Dispose()
    {
        _stopping = true;
        EventFd.Signal(_wake);
        if (Thread.CurrentThread != _thread && !_thread.Join(TimeSpan.FromSeconds(5)))
            _log.LogError("{Name}: cross-domain worker did not stop within 5 s", _name);
        lock (_lock)
        {
            foreach (var o in _outgoing.ToArray()) Complete(o);
            _fences.Clear();
            _readPipes.Clear();
        }
        _socket.Dispose();
        _wake.Dispose();
    }

    private sealed class Outgoing(FdHandle target, bool isSocket, byte[] data, FdHandle[] fds, bool closeTarget)
    {
        public FdHandle Target { get; } = target;
        public bool IsSocket { get; } = isSocket;
        public byte[] Data { get; } = data;
        public FdHandle[] Fds { get; private set; } = fds;
        public int Offset { get; set; }

        public void SentFds()
        {
            foreach (var fd in Fds) fd.Dispose();
            Fds = [];
        }

        /// <summary>Closes what this entry owns: fds not sent yet, and the pipe after its last bytes.</summary>
        public void Drop()
        {
            SentFds();
            if (closeTarget) Target.Dispose();
        }
    }
}
