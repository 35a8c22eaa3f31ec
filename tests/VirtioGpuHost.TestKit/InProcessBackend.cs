using Microsoft.Extensions.Logging;
using VirtioGpuHost.Backend;
using VirtioGpuHost.Device;

namespace VirtioGpuHost.TestKit;

/// <summary>
/// Our back-end's server running on a thread of the test process (real socket, real
/// event loop), so tests can look at the device it creates and the lines it logs.
/// </summary>
public sealed class InProcessBackend : IDisposable
{
    private readonly CancellationTokenSource _cancel = new();
    private readonly Thread _thread;
    private readonly TempDir _dir = new();
    private readonly ILoggerFactory _loggers;
    private Exception? _failure;

    /// <param name="sendTimeout">The server's <see cref="GpuBackendServer.SendTimeout"/> (its default when null).</param>
    public InProcessBackend(GpuDeviceOptions? options = null, TimeSpan? sendTimeout = null)
    {
        Logs = new ListLoggerProvider();
        _loggers = LoggerFactory.Create(b => b.AddProvider(Logs).SetMinimumLevel(LogLevel.Debug));
        SocketPath = _dir.File("gpu.sock");
        Server = new GpuBackendServer(options ?? new GpuDeviceOptions(), _loggers)
        {
            SendTimeout = sendTimeout ?? VirtioGpuHost.VhostUser.Backend.VhostUserBackendConnection.DefaultSendTimeout,
        };
        Server.DeviceCreated += d => { lock (Devices) Devices.Add(d); };
        using var listening = new ManualResetEventSlim();
        _thread = new Thread(() =>
        {
            try { Server.ServePath(SocketPath, _cancel.Token, listening.Set); }
            catch (Exception e) { _failure = e; listening.Set(); }
        }) { IsBackground = true, Name = "in-process-backend" };
        _thread.Start();
        listening.Wait(TimeSpan.FromSeconds(10));
        if (_failure is not null) throw new InvalidOperationException("back-end failed to start", _failure);
    }

    public string SocketPath { get; }
    public GpuBackendServer Server { get; }
    public ListLoggerProvider Logs { get; }
    public List<VhostUserGpuDevice> Devices { get; } = new();

    public VhostUserGpuDevice LastDevice { get { lock (Devices) return Devices[^1]; } }

    /// <summary>Connections that have ended (the server logs "conn N: connection closed" as each one ends).</summary>
    public int ConnectionsEnded => Logs.Lines.Count(l => l.Message.Contains(": connection closed;", StringComparison.Ordinal));

    /// <summary>Waits until <paramref name="n"/> connections have ended (the server went back to accepting).</summary>
    public bool WaitForConnections(int n, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            if (ConnectionsEnded >= n) return true;
            Thread.Sleep(10);
        }
        return ConnectionsEnded >= n;
    }

    public void Dispose()
    {
        _cancel.Cancel();
        Server.StopCurrent();
        _thread.Join(TimeSpan.FromSeconds(10));
        _loggers.Dispose();
        _dir.Dispose();
        if (_failure is not null) throw new InvalidOperationException("the in-process back-end failed", _failure);
    }
}
