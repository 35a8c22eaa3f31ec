using Microsoft.Extensions.Logging;
using VirtioGpuHost.Device;
using VirtioGpuHost.Device.Display;
using VirtioGpuHost.Interop;
using VirtioGpuHost.VhostUser.Backend;

namespace VirtioGpuHost.Backend;

/// <summary>
/// Serves vhost-user-gpu connections: on a listening socket, one front-end at a time, and
/// the next one after it disconnects (QEMU restarted); or on one inherited connected
/// socket (QEMU's and libvirt's `--fd`). Each connection gets a fresh device and its own
/// event loop; when it ends, every fd and mapping it held is released.
/// </summary>
public sealed class GpuBackendServer(GpuDeviceOptions options, ILoggerFactory loggers, string? name = null, Func<GpuDevice, IGpuDisplay>? ownDisplay = null)
{
    private readonly ILogger _log = loggers.CreateLogger("VirtioGpuHost.Backend");
    private volatile VhostUserBackendConnection? _current;
    private int _connections;

    /// <summary>Connections served so far.</summary>
    public int ConnectionCount => _connections;

    /// <summary>Raised on the connection's thread once its device exists (tests and stats).</summary>
    public event Action<VhostUserGpuDevice>? DeviceCreated;

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
        while (!cancel.IsCancellationRequested)
        {
            var conn = UnixSocket.Accept(listener, timeoutMs: 200);
            if (conn is null) continue;
            ServeConnection(conn, cancel);
        }
    }

    /// <summary>Serves one connected socket until the front-end goes away or <paramref name="cancel"/> fires.</summary>
    public void ServeConnection(FdHandle socket, CancellationToken cancel)
    {
        int n = Interlocked.Increment(ref _connections);
        string connName = name is null ? $"conn {n}" : $"{name} #{n}";
        var device = new VhostUserGpuDevice(options, loggers.CreateLogger("VirtioGpuHost.Gpu"), ownDisplay);
        var connection = new VhostUserBackendConnection(socket, device, loggers.CreateLogger("VirtioGpuHost.VhostUser"), connName);
        _current = connection;
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
            _current = null;
            _log.LogInformation("{Conn}: connection closed; {Commands} commands executed", connName, device.Gpu.CommandsExecuted);
        }
    }

    /// <summary>Stops the connection being served (thread-safe).</summary>
    public void StopCurrent() => _current?.Stop();

    private static bool IsListening(FdHandle fd)
    {
        try { return UnixSocket.IsListening(fd); }
        catch (IOException) { return false; }
    }
}
