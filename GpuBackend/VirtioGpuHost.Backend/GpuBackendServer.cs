using Microsoft.Extensions.Logging;
using VirtioGpuHost.Device;
using VirtioGpuHost.Device.Display;
using VirtioGpuHost.Device.Queues;
using VirtioGpuHost.Interop;
using VirtioGpuHost.VhostUser.Backend;

namespace VirtioGpuHost.Backend;

/// <summary>
/// Serves vhost-user-gpu connections: on a listening socket (each front-end on its own thread,
/// so a new QEMU is served at once even while an old, dead or hostile connection has not ended
/// yet), or on one inherited connected socket (QEMU's and libvirt's `--fd`). Each connection
/// gets a fresh device and its own event loop; when it ends, every fd and mapping it held is
/// released.
/// </summary>
public sealed class GpuBackendServer(GpuDeviceOptions options, ILoggerFactory loggers, string? name = null, Func<GpuDevice, IGpuDisplay>? ownDisplay = null)
{
    /// <summary>Connections served at once on one socket; more wait in the listen backlog.</summary>
    public const int MaxConcurrentConnections = 8;

    private readonly ILogger _log = loggers.CreateLogger("VirtioGpuHost.Backend");
    private GpuDeviceOptions _options = options;

    /// <summary>The device settings of connections that start from now on (a reload may change them; running ones keep theirs).</summary>
    public GpuDeviceOptions Options
    {
        get => Volatile.Read(ref _options);
        set { value.Validate(); Volatile.Write(ref _options, value); }
    }
    private ulong _hostVisibleSize;

    /// <summary>
    /// Size of the host-visible shared memory region (shmid 1) offered to connections that start
    /// from now on: 0 = none (no SHMEM protocol feature), else a power of two from 4 KiB to
    /// <see cref="VhostUserGpuDevice.MaxHostVisibleSize"/>.
    /// </summary>
    public ulong HostVisibleSize
    {
        get => Volatile.Read(ref _hostVisibleSize);
        set { VhostUserGpuDevice.ValidateHostVisibleSize(value); Volatile.Write(ref _hostVisibleSize, value); }
    }

    /// <summary>How long a back-end channel request (SHMEM_MAP/UNMAP) waits for the front-end's reply.</summary>
    public TimeSpan BackendReplyTimeout { get; init; } = BackendChannel.DefaultReplyTimeout;

    private readonly HashSet<VhostUserBackendConnection> _active = new();
    private readonly SemaphoreSlim _slots = new(MaxConcurrentConnections);
    private int _connections;

    private int _connectionNice;

    /// <summary>
    /// Nice value given to each connection thread started from now on (0: left as started, which
    /// is the listener's). A positive value makes this socket's connections yield the CPU to the
    /// others under contention (the fairness policy of an untrusted VM); a negative one needs
    /// CAP_SYS_NICE, and without it the thread stays as it was (logged once per connection).
    /// </summary>
    public int ConnectionNice
    {
        get => Volatile.Read(ref _connectionNice);
        set => Volatile.Write(ref _connectionNice, Math.Clamp(value, ThreadScheduling.MinNice, ThreadScheduling.MaxNice));
    }

    private CommandBudgetLimits? _commandBudget;

    /// <summary>
    /// Control-queue work each connection started from now on may do per time slice (null: no
    /// limit beyond the 64 commands per loop turn): see <see cref="CommandBudget"/>.
    /// </summary>
    public CommandBudgetLimits? CommandBudget
    {
        get => Volatile.Read(ref _commandBudget);
        set { value?.Validate(); Volatile.Write(ref _commandBudget, value); }
    }

    /// <summary>How long a reply may wait for a front-end that does not read before its connection is dropped.</summary>
    public TimeSpan SendTimeout { get; init; } = VhostUserBackendConnection.DefaultSendTimeout;

    /// <summary>Connections served so far.</summary>
    public int ConnectionCount => _connections;

    /// <summary>Raised on the connection's thread once its device exists (tests and stats).</summary>
    public event Action<VhostUserGpuDevice>? DeviceCreated;

    /// <summary>Raised on the connection's thread after its connection ended and released everything.</summary>
    public event Action<VhostUserGpuDevice>? DeviceClosed;

    /// <summary>Listens on <paramref name="path"/> until cancelled.</summary>
    public void ServePath(string path, CancellationToken cancel, Action? listening = null)
    {
        using var listener = UnixSocket.Listen(path);
        _log.LogInformation("listening on {Path}", path);
        listening?.Invoke();
        try
        {
            ServeListener(listener, cancel);
        }
        finally
        {
            try { File.Delete(path); } catch (IOException) { }
        }
    }

    /// <summary>Serves an inherited fd: a listening socket (accept loop) or one connected socket.</summary>
    public void ServeFd(FdHandle fd, CancellationToken cancel)
    {
        if (IsListening(fd)) ServeListener(fd, cancel);
        else ServeConnection(fd, cancel);
    }

    private void ServeListener(FdHandle listener, CancellationToken cancel)
    {
        var threads = new List<Thread>();
        try
        {
            while (!cancel.IsCancellationRequested)
            {
                if (!_slots.Wait(200, CancellationToken.None)) continue;
                FdHandle? conn;
                try { conn = UnixSocket.Accept(listener, timeoutMs: 200); }
                catch { _slots.Release(); throw; }
                if (conn is null)
                {
                    _slots.Release();
                    continue;
                }
                int nice = ConnectionNice;
                var t = new Thread(() =>
                {
                    ApplyNice(nice);
                    try { ServeConnection(conn, cancel); }
                    finally { _slots.Release(); }
                }) { IsBackground = true, Name = $"{name ?? "vhost-user"} connection" };
                t.Start();
                threads.RemoveAll(x => !x.IsAlive);
                threads.Add(t);
            }
        }
        finally
        {
            StopCurrent();
            foreach (var t in threads) t.Join(TimeSpan.FromSeconds(30));
        }
    }

    /// <summary>Sets the calling (new connection) thread's nice value; a refusal leaves it as it is.</summary>
    private void ApplyNice(int nice)
    {
        if (nice == 0) return;
        int tid = ThreadScheduling.CurrentThreadId;
        int errno = ThreadScheduling.TrySetNice(tid, nice);
        if (errno == 0) return;
        // Raising priority (nice < 0) needs CAP_SYS_NICE: without it that is expected, not a fault.
        if (nice < 0)
            _log.LogInformation("{Name}: connection thread {Tid} keeps the process's priority (nice {Nice} is not permitted: {Error})",
                name ?? "vhost-user", tid, nice, Errno.Describe(errno));
        else
            _log.LogWarning("{Name}: cannot set connection thread {Tid} to nice {Nice}: {Error}; it keeps its priority",
                name ?? "vhost-user", tid, nice, Errno.Describe(errno));
    }

    /// <summary>Serves one connected socket until the front-end goes away or <paramref name="cancel"/> fires.</summary>
    public void ServeConnection(FdHandle socket, CancellationToken cancel)
    {
        int n = Interlocked.Increment(ref _connections);
        string connName = name is null ? $"conn {n}" : $"{name} #{n}";
        var device = new VhostUserGpuDevice(Options, loggers.CreateLogger("VirtioGpuHost.Gpu"), ownDisplay, HostVisibleSize, CommandBudget);
        var connection = new VhostUserBackendConnection(socket, device, loggers.CreateLogger("VirtioGpuHost.VhostUser"), connName, SendTimeout)
        {
            BackendReplyTimeout = BackendReplyTimeout,
        };
        lock (_active) _active.Add(connection);
        _log.LogInformation("{Conn}: front-end connected", connName);
        DeviceCreated?.Invoke(device);
        using var reg = cancel.Register(connection.Stop);
        try
        {
            connection.Run();
        }
        catch (Exception e)
        {
            // A bug or host failure in one connection must not take the process down.
            _log.LogError(e, "{Conn}: connection failed", connName);
            connection.Dispose();
        }
        finally
        {
            lock (_active) _active.Remove(connection);
            _log.LogInformation("{Conn}: connection closed; {Commands} commands executed", connName, device.Gpu.CommandsExecuted);
            try { DeviceClosed?.Invoke(device); }
            catch (Exception e) { _log.LogError(e, "{Conn}: a DeviceClosed handler failed", connName); }
        }
    }

    /// <summary>Stops every connection being served (thread-safe).</summary>
    public void StopCurrent()
    {
        lock (_active)
            foreach (var c in _active) c.Stop();
    }

    /// <summary>Connections being served now.</summary>
    public int ActiveConnections
    {
        get { lock (_active) return _active.Count; }
    }

    private static bool IsListening(FdHandle fd)
    {
        try { return UnixSocket.IsListening(fd); }
        catch (IOException) { return false; }
    }
}
