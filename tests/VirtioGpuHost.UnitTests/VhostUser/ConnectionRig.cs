using Microsoft.Extensions.Logging;
using VirtioGpuHost.Backend;
using VirtioGpuHost.Device;
using VirtioGpuHost.FrontEnd;
using VirtioGpuHost.Interop;
using VirtioGpuHost.TestKit;
using VirtioGpuHost.VhostUser.Backend;
using VirtioGpuHost.VhostUser.Wire;

namespace VirtioGpuHost.UnitTests.VhostUser;

/// <summary>
/// One back-end connection (<see cref="VhostUserBackendConnection"/>) running on its own
/// thread over a socketpair, with the reference front-end on the other end. Log lines are
/// collected; the connection's name is unique so that its memfds can be found in
/// /proc/self/maps.
/// </summary>
internal sealed class ConnectionRig : IDisposable
{
    private static int s_count;
    private readonly ILoggerFactory _loggers;
    private readonly Thread _thread;
    private readonly ManualResetEventSlim _ended = new();
    private Exception? _failure;

    private ConnectionRig(Func<ILoggerFactory, string, IVhostUserDevice> makeDevice, TimeSpan? backendReplyTimeout = null)
    {
        Name = $"rig{Interlocked.Increment(ref s_count)}";
        Logs = new ListLoggerProvider();
        _loggers = LoggerFactory.Create(b => b.AddProvider(Logs).SetMinimumLevel(LogLevel.Debug));
        Device = makeDevice(_loggers, Name);
        var (front, back) = UnixSocket.CreatePair();
        Connection = new VhostUserBackendConnection(back, Device, _loggers.CreateLogger("VirtioGpuHost.VhostUser"), Name)
        {
            BackendReplyTimeout = backendReplyTimeout ?? BackendChannel.DefaultReplyTimeout,
        };
        FrontEnd = new VhostUserFrontEnd(front, TimeSpan.FromSeconds(10));
        _thread = new Thread(() =>
        {
            try { Connection.Run(); }
            catch (Exception e) { _failure = e; }
            finally { _ended.Set(); }
        }) { IsBackground = true, Name = "rig-" + Name };
        _thread.Start();
    }

    /// <summary>A connection serving the real vhost-user-gpu device.</summary>
    public static ConnectionRig StartGpu(GpuDeviceOptions? options = null) =>
        new((loggers, _) => new VhostUserGpuDevice(options ?? new GpuDeviceOptions(), loggers.CreateLogger("VirtioGpuHost.Gpu")));

    /// <summary>A connection serving the real device with a host-visible region of <paramref name="hostVisibleSize"/> bytes.</summary>
    public static ConnectionRig StartGpuWithHostVisible(ulong hostVisibleSize, TimeSpan? backendReplyTimeout = null, GpuDeviceOptions? options = null) =>
        new((loggers, _) => new VhostUserGpuDevice(options ?? new GpuDeviceOptions(), loggers.CreateLogger("VirtioGpuHost.Gpu"), hostVisibleSize: hostVisibleSize),
            backendReplyTimeout);

    /// <summary>A connection serving a test device.</summary>
    public static ConnectionRig Start(IVhostUserDevice device) => new((_, _) => device);

    public string Name { get; }
    public ListLoggerProvider Logs { get; }
    public IVhostUserDevice Device { get; }
    public VhostUserGpuDevice Gpu => (VhostUserGpuDevice)Device;
    public VhostUserBackendConnection Connection { get; }
    public VhostUserFrontEnd FrontEnd { get; }

    /// <summary>The connection's thread has returned (the back-end closed the connection).</summary>
    public bool Ended => _ended.IsSet;

    /// <summary>An exception that escaped the connection's Run (a bug: untrusted input must never cause one).</summary>
    public Exception? Failure => _failure;

    public bool WaitForEnd(TimeSpan timeout) => _ended.Wait(timeout);

    /// <summary>Asserts that the back-end closed the connection (EOF on our end, its thread done).</summary>
    public void AssertClosed()
    {
        Assert.True(FrontEnd.WaitForClose(10_000), "the back-end did not close the connection");
        Assert.True(WaitForEnd(TimeSpan.FromSeconds(10)), "the connection's thread did not return");
        Assert.Null(_failure);
    }

    /// <summary>A GET_FEATURES round trip: proves the connection is alive and everything sent before was handled.</summary>
    public void AssertAlive()
    {
        Assert.Equal(Connection.OfferedFeatures, FrontEnd.GetFeatures());
        Assert.False(Ended);
    }

    /// <summary>True when one log line contains every part.</summary>
    public bool Logged(params string[] parts) =>
        Logs.Lines.Any(l => parts.All(p => l.Message.Contains(p, StringComparison.Ordinal)));

    public void AssertLogged(params string[] parts) =>
        Assert.True(Logged(parts), $"no log line contains all of [{string.Join(", ", parts)}]; lines:\n{string.Join("\n", Logs.Lines.Select(l => l.Message))}");

    /// <summary>Runs <paramref name="f"/> on the connection's event loop and returns its result.</summary>
    public T OnLoop<T>(Func<T> f)
    {
        var done = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        Connection.Loop.Post(() =>
        {
            try { done.SetResult(f()); }
            catch (Exception e) { done.SetException(e); }
        });
        if (!done.Task.Wait(TimeSpan.FromSeconds(10))) throw new TimeoutException("the event loop did not run the action");
        return done.Task.Result;
    }

    /// <summary>What QEMU's realize does: features, protocol features (all offered, or <paramref name="protocol"/>), owner.</summary>
    public void Negotiate(VhostUserProtocolFeatures? protocol = null)
    {
        FrontEnd.GetFeatures();
        var offered = FrontEnd.GetProtocolFeatures();
        FrontEnd.SetProtocolFeatures(protocol ?? offered);
        Assert.True(FrontEnd.SetOwner());
    }

    public void Dispose()
    {
        Connection.Stop();
        bool joined = _thread.Join(TimeSpan.FromSeconds(10));
        FrontEnd.Dispose();
        _loggers.Dispose();
        Assert.True(joined, "the connection's thread did not stop");
        if (_failure is not null) throw new InvalidOperationException("the connection failed", _failure);
    }
}
