using System.Collections.Concurrent;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using VirtioGpuHost.Compositor.Wayland.Protocol;
using VirtioGpuHost.Compositor.Wayland.Protocols;
using VirtioGpuHost.Compositor.Wayland.Runtime;
using VirtioGpuHost.Interop;

namespace VirtioGpuHost.Compositor.Wayland;

/// <summary>Limits and outputs of a <see cref="WaylandServer"/>.</summary>
public sealed record WaylandServerOptions
{
    /// <summary>Advertised as one wl_output each.</summary>
    public IReadOnlyList<WaylandOutputInfo> Outputs { get; init; } = [new("main", 1920, 1080, 60)];
    public int MaxClients { get; init; } = 64;
    public int MaxObjectsPerClient { get; init; } = 10000;
    /// <summary>Total size of the wl_shm pools one client may hold.</summary>
    public long MaxPoolBytesPerClient { get; init; } = 256L << 20;
    /// <summary>Events queued for a client that does not read them; past this it is disconnected.</summary>
    public int MaxOutputBytesPerClient { get; init; } = 4 << 20;
    /// <summary>Largest window image (either side, in pixels).</summary>
    public int MaxWindowSize { get; init; } = 8192;
    /// <summary>Log every request and event at Trace level (WAYLAND_DEBUG-like).</summary>
    public bool TraceProtocol { get; init; }

    /// <summary>How often each xdg_wm_base is pinged (liveness of idle clients).</summary>
    public TimeSpan PingInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>A ping unanswered for longer makes the client's windows unresponsive (<see cref="WaylandWindow.Responsive"/>).</summary>
    public TimeSpan PingTimeout { get; init; } = TimeSpan.FromSeconds(2);
}

/// <summary>One compositor output as clients see it (wl_output geometry/mode/scale).</summary>
public sealed record WaylandOutputInfo(string Name, int Width, int Height, int RefreshHz);

/// <summary>
/// A Wayland server inside the compositor process. One thread runs a poll loop over the
/// listening sockets and every client; all protocol state lives on that thread. Clients'
/// toplevels become <see cref="WaylandWindow"/>s whose flattened pixels the compositor reads
/// through <see cref="WaylandWindow.Pixels"/>.
/// </summary>
public sealed class WaylandServer : IDisposable
{
    private readonly ILoggerFactory _loggers;
    private readonly ILogger _log;
    private readonly FdHandle _wake = EventFd.Create(nonBlocking: true);
    private readonly ConcurrentQueue<Action> _posted = new();
    private readonly List<(FdHandle Socket, string Path, string Owner)> _listeners = [];
    private readonly List<WaylandClient> _clients = [];
    private readonly List<WaylandGlobal> _globals = [];
    private Thread? _thread;
    private volatile bool _stopping;
    private int _clientCount;
    private int _nextClientNumber;
    private uint _serial;
    private WaylandWindow[] _windows = [];
    private bool _disposed;

    public WaylandServer(WaylandServerOptions options, ILoggerFactory loggers)
    {
        Options = options;
        _loggers = loggers;
        _log = loggers.CreateLogger("VirtioGpuHost.Wayland");
        if (options.Outputs.Count == 0) throw new ArgumentException("at least one output is needed", nameof(options));
        Globals = _globals;
        Frames = new FrameScheduler(this);
        RegisterGlobals();
    }

    public WaylandServerOptions Options { get; }
    internal IReadOnlyList<WaylandGlobal> Globals { get; }
    internal FrameScheduler Frames { get; }
    internal ILogger Log => _log;
    /// <summary>Each client's current selection source (wl_data_device.set_selection).</summary>
    internal Dictionary<WaylandClient, DataSourceResource> Selections { get; } = [];

    /// <summary>Snapshot of the mapped toplevels.</summary>
    public IReadOnlyList<WaylandWindow> Windows => Volatile.Read(ref _windows);

    /// <summary>A window was mapped, committed new content or changed title/app_id (server thread; be quick).</summary>
    public event Action<WaylandWindow>? WindowChanged;

    /// <summary>A window was destroyed, unmapped (null buffer) or its client left (server thread).</summary>
    public event Action<WaylandWindow>? WindowUnmapped;

    public int ClientCount => Volatile.Read(ref _clientCount);

    /// <summary>Starts the server thread.</summary>
    public void Start()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_thread is not null) throw new InvalidOperationException("already started");
        _thread = new Thread(Run) { Name = "wayland-server", IsBackground = true };
        _thread.Start();
    }

    /// <summary>Listens at <paramref name="socketPath"/>; clients accepted there belong to <paramref name="owner"/>.</summary>
    public void Listen(string socketPath, string owner)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var socket = UnixSocket.Listen(socketPath, backlog: 64);
        socket.SetNonBlocking(true);
        Post(() => _listeners.Add((socket, socketPath, owner)));
    }

    /// <summary>Stops listening at <paramref name="socketPath"/> (the socket file is removed); its clients stay connected.</summary>
    public void StopListening(string socketPath) => Post(() =>
    {
        foreach (var l in _listeners.Where(l => l.Path == socketPath).ToList())
        {
            _listeners.Remove(l);
            l.Socket.Dispose();
            try { File.Delete(l.Path); } catch (IOException) { }
        }
    });

    /// <summary>A socketpair: one end becomes a client of <paramref name="owner"/>, the other is returned.</summary>
    public Socket ConnectInProcess(string owner)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var (ours, theirs) = UnixSocket.CreatePair();
        Post(() => Adopt(ours, owner));
        // Hand the fd number over to a Socket that owns it from now on.
        var fd = theirs.DangerousGetHandle();
        theirs.SetHandleAsInvalid();
        return new Socket(new SafeSocketHandle(fd, ownsHandle: true));
    }

    /// <summary>
    /// Called after each output frame: answers pending frame callbacks (done with the time in
    /// ms) and presentation feedback. Thread-safe.
    /// </summary>
    public void FramePresented(TimeSpan time) => Post(() => Frames.Presented(time));

    /// <summary>Drops every client of <paramref name="owner"/> (its VM went away). Thread-safe.</summary>
    public void DisconnectOwner(string owner) => Post(() =>
    {
        foreach (var c in _clients.Where(c => c.Owner == owner)) c.Close();
    });

    internal uint NextSerial() => ++_serial;

    internal ILogger LoggerFor(string category) => _loggers.CreateLogger(category);

    internal void Post(Action a)
    {
        if (_disposed) return; // a late FramePresented or DisconnectOwner after Dispose is a no-op
        _posted.Enqueue(a);
        try { EventFd.Signal(_wake); }
        catch (ObjectDisposedException) { }
    }

    // ---- windows ----

    internal void OnWindowMapped(WaylandWindow w)
    {
        Volatile.Write(ref _windows, [.. _windows, w]);
        Raise(WindowChanged, w);
    }

    internal void OnWindowChanged(WaylandWindow w) => Raise(WindowChanged, w);

    internal void OnWindowUnmapped(WaylandWindow w)
    {
        if (!_windows.Contains(w)) return;
        Volatile.Write(ref _windows, _windows.Where(x => x != w).ToArray());
        Raise(WindowUnmapped, w);
    }

    private void Raise(Action<WaylandWindow>? handler, WaylandWindow w)
    {
        try { handler?.Invoke(w); }
        catch (Exception e) { _log.LogError(e, "a window event handler failed"); }
    }

    // ---- globals ----

    private void RegisterGlobals()
    {
        uint name = 1;
        void Add(Wire.InterfaceInfo iface, uint version, Action<WaylandClient, uint, uint> bind) =>
            _globals.Add(new WaylandGlobal(name++, iface, Math.Min(version, iface.Version), bind));

        Add(WlCompositor.Info, CompositorResource.AdvertisedVersion, (c, id, v) => _ = new CompositorResource(c, id, v));
        Add(WlSubcompositor.Info, 1, (c, id, v) => _ = new SubcompositorResource(c, id, v));
        Add(WlShm.Info, 1, (c, id, v) => new ShmResource(c, id, v).Announce());
        foreach (var o in Options.Outputs)
        {
            var output = o;
            Add(WlOutput.Info, OutputResource.AdvertisedVersion, (c, id, v) => new OutputResource(c, id, v, output).Announce());
        }
        Add(WlSeat.Info, SeatResource.AdvertisedVersion, (c, id, v) => new SeatResource(c, id, v).Announce());
        Add(XdgWmBase.Info, XdgWmBaseResource.AdvertisedVersion, (c, id, v) => _ = new XdgWmBaseResource(c, id, v));
        Add(WlDataDeviceManager.Info, 3, (c, id, v) => _ = new DataDeviceManagerResource(c, id, v));
        Add(WpViewporter.Info, 1, (c, id, v) => _ = new ViewporterResource(c, id, v));
        Add(WpPresentation.Info, 1, (c, id, v) => new PresentationResource(c, id, v).Announce());
    }

    // ---- the loop ----

    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, int> _ownerLimits = new(StringComparer.Ordinal);

    /// <summary>
    /// At most <paramref name="maxClients"/> clients of <paramref name="owner"/> at once (null:
    /// only <see cref="WaylandServerOptions.MaxClients"/> applies); a client past it is refused
    /// (its connection closed at once, a log line names the owner). Thread-safe.
    /// </summary>
    public void SetOwnerLimit(string owner, int? maxClients)
    {
        if (maxClients is int m) _ownerLimits[owner] = m;
        else _ownerLimits.TryRemove(owner, out _);
    }

    private void Adopt(FdHandle socket, string owner)
    {
        if (_clients.Count >= Options.MaxClients)
        {
            _log.LogWarning("wayland: refusing a client of {Owner}: {Max} clients connected", owner, Options.MaxClients);
            socket.Dispose();
            return;
        }
        if (_ownerLimits.TryGetValue(owner, out int limit) && _clients.Count(c => c.Owner == owner && !c.IsClosing) >= limit)
        {
            _log.LogWarning("wayland: refusing a client of {Owner}: its limit of {Max} clients (max_wayland_clients) is reached", owner, limit);
            socket.Dispose();
            return;
        }
        socket.SetNonBlocking(true);
        int n = ++_nextClientNumber;
        var client = new WaylandClient(this, socket, owner, n, _log);
        _clients.Add(client);
        Interlocked.Increment(ref _clientCount);
        _log.LogInformation("{Client} connected", client);
    }

    private void Run()
    {
        var entries = new List<PollEntry>();
        while (!_stopping)
        {
            RunPosted();
            CheckLiveness();
            FlushAndReap();
            entries.Clear();
            entries.Add(new PollEntry(_wake, PollEvents.In));
            foreach (var l in _listeners) entries.Add(new PollEntry(l.Socket, PollEvents.In));
            foreach (var c in _clients)
                entries.Add(new PollEntry(c.Socket, PollEvents.In | (c.HasOutput ? PollEvents.Out : PollEvents.None)));
            var span = System.Runtime.InteropServices.CollectionsMarshal.AsSpan(entries);
            try { Poller.Poll(span, 1000); }
            catch (Exception e) { _log.LogError(e, "wayland: poll failed"); Thread.Sleep(10); continue; }
            if (span[0].Readable) EventFd.Drain(_wake);
            int i = 1;
            foreach (var l in _listeners.ToArray())
            {
                if (span[i++].Readable) AcceptAll(l.Socket, l.Owner);
            }
            int clientCount = _clients.Count;
            for (int k = 0; k < clientCount && i < span.Length; k++, i++)
            {
                var c = _clients[k];
                if (span[i].Fd != c.Socket) continue;
                try
                {
                    if ((span[i].Ready & (PollEvents.Out | PollEvents.Error)) != 0) c.Flush();
                    if (span[i].Readable) c.OnReadable();
                }
                catch (Exception e)
                {
                    _log.LogError(e, "{Client}: failed; disconnecting", c);
                    c.Close();
                }
            }
        }
    }

    private long _lastLivenessCheck;

    /// <summary>Pings every xdg_wm_base each PingInterval; a client with a ping older than PingTimeout is unresponsive.</summary>
    private void CheckLiveness()
    {
        long now = System.Diagnostics.Stopwatch.GetTimestamp();
        if (System.Diagnostics.Stopwatch.GetElapsedTime(_lastLivenessCheck, now) < TimeSpan.FromMilliseconds(100)) return;
        _lastLivenessCheck = now;
        foreach (var c in _clients)
        {
            if (c.IsClosing) continue;
            bool responsive = true;
            foreach (var wm in c.WmBases)
            {
                if (wm.OutstandingSince is { } since)
                {
                    if (System.Diagnostics.Stopwatch.GetElapsedTime(since, now) > Options.PingTimeout) responsive = false;
                }
                else if (System.Diagnostics.Stopwatch.GetElapsedTime(wm.LastPingAt, now) >= Options.PingInterval)
                {
                    wm.Ping();
                }
            }
            if (responsive == c.Responsive) continue;
            c.Responsive = responsive;
            if (responsive) _log.LogInformation("{Client} answers pings again", c);
            else _log.LogWarning("{Client} has not answered a ping for {Timeout} s: its windows are unresponsive", c, Options.PingTimeout.TotalSeconds);
            foreach (var w in _windows)
            {
                if (w.Client != c) continue;
                w.Responsive = responsive;
                Raise(WindowChanged, w);
            }
        }
    }

    private void AcceptAll(FdHandle listener, string owner)
    {
        while (true)
        {
            FdHandle? s;
            try { s = UnixSocket.Accept(listener, 0); }
            catch (Exception e) { _log.LogWarning("wayland: accept failed: {Error}", e.Message); return; }
            if (s is null) return;
            Adopt(s, owner);
        }
    }

    private void RunPosted()
    {
        while (_posted.TryDequeue(out var a))
        {
            try { a(); }
            catch (Exception e) { _log.LogError(e, "wayland: posted work failed"); }
        }
    }

    private void FlushAndReap()
    {
        for (int k = _clients.Count - 1; k >= 0; k--)
        {
            var c = _clients[k];
            if (c.HasOutput) c.Flush();
            if (!c.IsClosing) continue;
            _clients.RemoveAt(k);
            Interlocked.Decrement(ref _clientCount);
            c.Teardown();
            _log.LogInformation("{Client} disconnected", c);
        }
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _stopping = true;
        EventFd.Signal(_wake);
        _thread?.Join();
        RunPosted(); // listeners and clients adopted after the loop stopped are closed below
        foreach (var c in _clients) c.Teardown();
        _clients.Clear();
        Volatile.Write(ref _clientCount, 0);
        foreach (var l in _listeners)
        {
            l.Socket.Dispose();
            try { File.Delete(l.Path); } catch (IOException) { }
        }
        _listeners.Clear();
        foreach (var w in _windows) w.Release();
        _windows = [];
        _wake.Dispose();
    }
}
