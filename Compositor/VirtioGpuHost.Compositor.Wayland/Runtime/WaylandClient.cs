using System.Buffers.Binary;
using Microsoft.Extensions.Logging;
using VirtioGpuHost.Compositor.Wayland.Protocol;
using VirtioGpuHost.Compositor.Wayland.Protocols;
using VirtioGpuHost.Compositor.Wayland.Wire;
using VirtioGpuHost.Interop;

namespace VirtioGpuHost.Compositor.Wayland.Runtime;

/// <summary>
/// One client connection: its object map, its input buffer and fd queue, its output queue.
/// Used only on the server thread. A protocol error posts wl_display.error, flushes what it
/// can and closes this connection only.
/// </summary>
public sealed class WaylandClient
{
    /// <summary>Ids from here up are allocated by the server (wl_data_offer, ...).</summary>
    public const uint FirstServerId = 0xff000000;
    private const int InputBufferSize = 64 * 1024;
    /// <summary>Queued input fds not yet consumed by a message (libwayland keeps 28 per read).</summary>
    private const int MaxQueuedFds = 256;

    private readonly Dictionary<uint, WaylandResource> _objects = [];
    private readonly Queue<FdHandle> _inFds = new();
    private readonly byte[] _in = new byte[InputBufferSize];
    private int _inStart, _inEnd;
    private byte[] _out = new byte[16 * 1024];
    private int _outStart, _outEnd;
    private readonly List<FdHandle> _outFds = [];
    private readonly EventWriter _writer = new();
    private uint _nextServerId = FirstServerId;
    private readonly ILogger _log;

    internal WaylandClient(WaylandServer server, FdHandle socket, string owner, int number, ILogger log)
    {
        Server = server;
        Socket = socket;
        Owner = owner;
        Number = number;
        _log = log;
        DisplayObject = new DisplayResource(this);
    }

    internal WaylandServer Server { get; }
    internal FdHandle Socket { get; }
    public string Owner { get; }
    /// <summary>Connection number for logs.</summary>
    public int Number { get; }
    /// <summary>The client's wl_display (object 1).</summary>
    public WaylandResource DisplayObject { get; }
    internal DisplayResource Display => (DisplayResource)DisplayObject;
    /// <summary>Set once the connection is to be closed (error, hang-up, overflow).</summary>
    public bool IsClosing { get; private set; }
    public bool IsClosed { get; private set; }
    public int ObjectCount => _objects.Count;
    internal bool HasOutput => _outEnd > _outStart;
    /// <summary>Bytes of wl_shm pools this client holds mapped or open (against MaxPoolBytesPerClient).</summary>
    internal long PoolBytes { get; set; }
    internal int PoolCount { get; set; }
    /// <summary>The last protocol error posted to this client (tests and logs).</summary>
    public string? LastError { get; private set; }

    public override string ToString() => $"wayland client #{Number} ({Owner})";

    public WaylandResource? Lookup(uint id) => _objects.GetValueOrDefault(id);

    /// <summary>The wl_output objects this client bound (presentation sync_output).</summary>
    /// <summary>Whether the client answers xdg_wm_base pings in time (see <see cref="WaylandServerOptions.PingTimeout"/>).</summary>
    internal bool Responsive { get; set; } = true;

    internal IEnumerable<Protocols.XdgWmBaseResource> WmBases => _objects.Values.OfType<Protocols.XdgWmBaseResource>().Where(o => !o.IsDestroyed);

    internal IEnumerable<OutputResource> Outputs => _objects.Values.OfType<OutputResource>().Where(o => !o.IsDestroyed);

    internal uint AllocateServerId()
    {
        while (_objects.ContainsKey(_nextServerId)) _nextServerId++;
        return _nextServerId++;
    }

    internal void Register(WaylandResource r)
    {
        if (_objects.Count >= Server.Options.MaxObjectsPerClient)
            throw new WaylandProtocolException(DisplayObject, (uint)WlDisplay.Error.NoMemory,
                $"object limit reached ({Server.Options.MaxObjectsPerClient} objects)");
        if (!_objects.TryAdd(r.Id, r))
            throw new InvalidOperationException($"object id {r.Id} already in use");
    }

    /// <summary>Removes an object; a client-created id is confirmed free with wl_display.delete_id.</summary>
    public void DestroyResource(WaylandResource r)
    {
        if (r.IsDestroyed) return;
        r.IsDestroyed = true;
        _objects.Remove(r.Id);
        try { r.OnDestroyed(); }
        finally
        {
            if (r.Id < FirstServerId && !IsClosing) Display.SendDeleteId(r.Id);
        }
    }

    internal FdHandle? TakeFd() => _inFds.TryDequeue(out var fd) ? fd : null;

    // ---- events ----

    internal EventWriter BeginEvent(WaylandResource r, ushort opcode, uint since)
    {
        if (r.Version < since) throw new InvalidOperationException($"{r}: event {r.Interface.Events[opcode].Name} needs version {since}, bound {r.Version}");
        _writer.Begin(r.Id, opcode);
        return _writer;
    }

    internal void EndEvent(EventWriter w)
    {
        var msg = w.Finish();
        if (IsClosed || (IsClosing && _errorSent)) { foreach (var fd in w.Fds) fd.Dispose(); w.Fds.Clear(); return; }
        if (Server.Options.TraceProtocol) _log.LogTrace("{Client} <- {Object}.{Event}", this, Lookup(w.ObjectId)?.ToString() ?? w.ObjectId.ToString(), Lookup(w.ObjectId)?.Interface.Events[w.Opcode].Name);
        int pending = _outEnd - _outStart;
        if (pending + msg.Length > Server.Options.MaxOutputBytesPerClient)
        {
            // A client that does not read its events must not make the server buffer without end.
            _log.LogWarning("{Client}: output queue over {Limit} bytes (the client does not read its events); disconnecting", this, Server.Options.MaxOutputBytesPerClient);
            foreach (var fd in w.Fds) fd.Dispose();
            w.Fds.Clear();
            Close();
            return;
        }
        if (_outEnd + msg.Length > _out.Length)
        {
            if (pending + msg.Length > _out.Length) Array.Resize(ref _out, Math.Max(_out.Length * 2, pending + msg.Length));
            Buffer.BlockCopy(_out, _outStart, _out, 0, pending);
            _outStart = 0;
            _outEnd = pending;
        }
        msg.CopyTo(_out.AsSpan(_outEnd));
        _outEnd += msg.Length;
        _outFds.AddRange(w.Fds);
        w.Fds.Clear();
    }

    private bool _errorSent;

    /// <summary>Posts wl_display.error and closes the connection once it is flushed.</summary>
    public void PostError(WaylandResource obj, uint code, string message)
    {
        if (IsClosing) return;
        LastError = $"{obj}: code {code}: {message}";
        _log.LogWarning("{Client}: protocol error on {Object} code {Code}: {Message}", this, obj, code, message);
        Display.SendError(obj, code, message);
        _errorSent = true;
        IsClosing = true;
    }

    // ---- input ----

    /// <summary>Reads what the socket has and dispatches every complete message.</summary>
    internal void OnReadable()
    {
        while (!IsClosing)
        {
            if (_inStart > 0 && _inEnd == _in.Length)
            {
                Buffer.BlockCopy(_in, _inStart, _in, 0, _inEnd - _inStart);
                _inEnd -= _inStart;
                _inStart = 0;
            }
            var fds = new List<FdHandle>();
            IoStatus st;
            int n;
            try { st = UnixSocket.Receive(Socket, _in.AsSpan(_inEnd), fds, out n); }
            catch (IOException e)
            {
                _log.LogWarning("{Client}: receive failed ({Error}); disconnecting", this, e.Message);
                Close();
                return;
            }
            foreach (var fd in fds) _inFds.Enqueue(fd);
            if (st == IoStatus.WouldBlock) return;
            if (st == IoStatus.Closed) { Close(); return; }
            _inEnd += n;
            if (_inFds.Count > MaxQueuedFds)
            {
                PostError(DisplayObject, (uint)WlDisplay.Error.InvalidMethod, $"more than {MaxQueuedFds} file descriptors sent without messages using them");
                return;
            }
            ProcessMessages();
        }
    }

    /// <summary>Dispatches the complete messages in the input buffer (also the entry point of wire tests).</summary>
    internal void ProcessMessages()
    {
        while (!IsClosing && _inEnd - _inStart >= 8)
        {
            var avail = _in.AsSpan(_inStart, _inEnd - _inStart);
            uint objectId = BinaryPrimitives.ReadUInt32LittleEndian(avail);
            uint word = BinaryPrimitives.ReadUInt32LittleEndian(avail[4..]);
            int size = (int)(word >> 16);
            ushort opcode = (ushort)(word & 0xffff);
            var target = Lookup(objectId);
            if (size < 8 || size % 4 != 0 || size > EventWriter.MaxMessageSize)
            {
                PostError(target ?? DisplayObject, (uint)WlDisplay.Error.InvalidMethod, $"message size {size} is invalid (8..{EventWriter.MaxMessageSize}, a multiple of 4)");
                return;
            }
            if (avail.Length < size) return; // the rest is still on its way
            _inStart += size;
            if (target is null)
            {
                PostError(DisplayObject, (uint)WlDisplay.Error.InvalidObject, $"invalid object {objectId}");
                return;
            }
            var iface = target.Interface;
            if (opcode >= iface.Requests.Count)
            {
                PostError(target, (uint)WlDisplay.Error.InvalidMethod, $"invalid method {opcode}, object {iface.Name}@{objectId}");
                return;
            }
            var info = iface.Requests[opcode];
            if (info.Since > target.Version)
            {
                PostError(target, (uint)WlDisplay.Error.InvalidMethod, $"invalid method {opcode} ({info.Name}) since {info.Since} > bound version {target.Version}, object {iface.Name}@{objectId}");
                return;
            }
            if (Server.Options.TraceProtocol) _log.LogTrace("{Client} -> {Object}.{Request}", this, target, info.Name);
            var reader = new WireReader(avail.Slice(8, size - 8), this, target, info.Name);
            try
            {
                target.Dispatch(opcode, ref reader);
            }
            catch (WaylandProtocolException e)
            {
                PostError(e.Object.IsDestroyed ? DisplayObject : e.Object, e.Code, e.Message);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                // A bug of ours must cost this client only, never the server.
                _log.LogError(e, "{Client}: {Object}.{Request} failed", this, target, info.Name);
                PostError(DisplayObject, (uint)WlDisplay.Error.Implementation, $"{target}.{info.Name}: internal error");
            }
        }
    }

    // ---- output ----

    /// <summary>Writes queued events without blocking; returns false if the socket is full (wait for POLLOUT).</summary>
    internal bool Flush()
    {
        while (_outEnd > _outStart && !IsClosed)
        {
            int fdCount = Math.Min(_outFds.Count, UnixSocket.MaxFdsPerMessage);
            var fds = _outFds.GetRange(0, fdCount).ToArray();
            IoStatus st;
            int sent;
            try { st = UnixSocket.Send(Socket, _out.AsSpan(_outStart, _outEnd - _outStart), fds, out sent); }
            catch (IOException e)
            {
                _log.LogWarning("{Client}: send failed ({Error}); disconnecting", this, e.Message);
                Close();
                return true;
            }
            if (st == IoStatus.WouldBlock) return false;
            if (st == IoStatus.Closed) { Close(); return true; }
            if (sent > 0)
            {
                foreach (var fd in fds) fd.Dispose();
                _outFds.RemoveRange(0, fdCount);
            }
            _outStart += sent;
        }
        if (_outEnd == _outStart) { _outStart = _outEnd = 0; }
        return true;
    }

    /// <summary>Marks the connection to be closed by the server loop (after a last flush).</summary>
    internal void Close() => IsClosing = true;

    /// <summary>Destroys every object (no delete_id: the client is gone) and closes the socket and fds.</summary>
    internal void Teardown()
    {
        if (IsClosed) return;
        IsClosing = true;
        IsClosed = true;
        foreach (var r in _objects.Values.OrderByDescending(o => o.Id).ToList())
        {
            if (r.IsDestroyed) continue;
            r.IsDestroyed = true;
            try { r.OnDestroyed(); }
            catch (Exception e) { _log.LogError(e, "{Client}: cleanup of {Object} failed", this, r); }
        }
        _objects.Clear();
        while (_inFds.TryDequeue(out var fd)) fd.Dispose();
        foreach (var fd in _outFds) fd.Dispose();
        _outFds.Clear();
        Socket.Dispose();
    }

    /// <summary>Queues an fd as if it had arrived with a message (wire unit tests).</summary>
    internal void QueueReceivedFd(FdHandle fd) => _inFds.Enqueue(fd);
}
