using System.Diagnostics;
using Microsoft.Extensions.Logging;
using VirtioGpuHost.Backend;
using VirtioGpuHost.Compositor.Core.Layout;
using VirtioGpuHost.Compositor.Outputs;
using VirtioGpuHost.Compositor.Rendering;
using VirtioGpuHost.Compositor.Wayland;
using VirtioGpuHost.CrossDomain;
using VirtioGpuHost.Device;
using VirtioGpuHost.Device.Capsets;

namespace VirtioGpuHost.Compositor;

/// <summary>One VM's device counters (<see cref="CompositorHost.DeviceStats"/>).</summary>
public sealed record VmDeviceStats
{
    public long Commands { get; set; }
    public long GuestErrors { get; set; }
    public ulong BytesCopied { get; set; }
    public int Resources { get; set; }
    public ulong HostMemoryBytes { get; set; }
    public int MappedBlobs { get; set; }
    public int Connections { get; set; }
}

/// <summary>How a <see cref="CompositorHost"/> runs.</summary>
public sealed record CompositorHostOptions
{
    /// <summary>Run the frame clock (false: step mode, the caller composes each frame).</summary>
    public bool FrameClock { get; init; } = true;

    public CompositorOptions Compositor { get; init; } = new();

    /// <summary>The time source (a fake one in tests); default: a monotonic stopwatch.</summary>
    public Func<TimeSpan>? Clock { get; init; }

    /// <summary>
    /// Apply the per-class scheduling policy to VM connections (docs/reliability.md, "Fairness and
    /// deadlines"); false only to measure without it (`bench fairness --policy off`).
    /// </summary>
    public bool Fairness { get; init; } = true;

    /// <summary>Makes each output (default: headless).</summary>
    public Func<OutputConfig, IRenderer, IOutput>? OutputFactory { get; init; }
}

/// <summary>
/// `virtio-gpu-host serve`: one vhost-user-gpu server per VM of the layout (each a full device
/// as the stand-alone back-end, presenting to the compositor instead of a display socket),
/// the compositor engine, and its frame clock. VMs connect, disconnect and reconnect on their
/// own threads; nothing one VM does waits on another.
/// </summary>
public sealed class CompositorHost : IDisposable
{
    private readonly ILoggerFactory _loggers;
    private readonly ILogger _log;
    private readonly CompositorHostOptions _options;
    private readonly object _lock = new();
    private readonly Dictionary<string, VmEndpoint> _vms = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string> _waylandSockets = new(StringComparer.Ordinal); // vm -> path listened on
    private readonly Func<TimeSpan> _clock;
    private FrameClock? _frameClock;
    private WaylandBridge? _waylandBridge;
    private bool _started, _disposed;

    public CompositorHost(LayoutConfig layout, IRenderer renderer, ILoggerFactory loggers, CompositorHostOptions? options = null)
    {
        _loggers = loggers;
        _log = loggers.CreateLogger("VirtioGpuHost.Compositor");
        _options = options ?? new CompositorHostOptions();
        var sw = Stopwatch.StartNew();
        var clock = _options.Clock ?? (() => sw.Elapsed);
        _clock = clock;
        Store = new SurfaceStore(clock);
        Engine = new CompositorEngine(layout, renderer, Store, clock, _log, _options.Compositor, _options.OutputFactory);
        Layout = layout;
        Wayland = new WaylandServer(new WaylandServerOptions
        {
            Outputs = layout.Outputs.Select(o => new WaylandOutputInfo(o.Name, o.Width, o.Height, o.RefreshHz)).ToList(),
        }, loggers);
    }

    public SurfaceStore Store { get; }
    public CompositorEngine Engine { get; }

    /// <summary>
    /// The built-in Wayland server (started with the host): clients of a VM's wayland_socket and
    /// the VM's cross-domain channels become that VM's window surfaces.
    /// </summary>
    public WaylandServer Wayland { get; }

    /// <summary>The layout last applied (the engine uses it from its next frame).</summary>
    public LayoutConfig Layout { get; private set; }

    /// <summary>Starts listening on every VM's socket and, unless in step mode, the frame clock.</summary>
    public void Start()
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_started) return;
            _started = true;
            Wayland.Start();
            _waylandBridge = new WaylandBridge(Wayland, Store, Engine);
            SyncVms(Layout);
            if (_options.FrameClock)
            {
                _frameClock = new FrameClock(Engine, _log, _clock);
                _frameClock.Start();
            }
        }
    }

    /// <summary>
    /// Makes <paramref name="layout"/> (validated) the running layout: the next frame uses it
    /// whole; VMs that left stop listening, new ones start, a changed socket path moves; VMs
    /// that stay keep their connections (new display modes apply at their next connection).
    /// </summary>
    public void ApplyLayout(LayoutConfig layout)
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            Layout = layout;
            Engine.SetLayout(layout);
            if (_started) SyncVms(layout);
        }
    }

    /// <summary>
    /// Loads <paramref name="path"/> and applies it when it has no error; otherwise the running
    /// layout stays untouched. Every diagnostic is logged with its file and line.
    /// </summary>
    public LayoutLoadResult Reload(string path)
    {
        var result = LayoutLoader.LoadFile(path);
        foreach (var d in result.Diagnostics)
        {
            if (d.IsError) _log.LogError("{Diagnostic}", d);
            else _log.LogWarning("{Diagnostic}", d);
        }
        if (result.Layout is { } layout)
        {
            ApplyLayout(layout);
            _log.LogInformation("layout reloaded from {Path}", path);
        }
        else
        {
            _log.LogError("layout {Path} rejected ({Errors} errors); the running layout stays", path, result.Errors.Count());
        }
        return result;
    }

    /// <summary>Output ticks the frame clock skipped because the previous frame was not done (0 in step mode).</summary>
    public long MissedFrames => _frameClock?.MissedTicks ?? 0;

    /// <summary>The frame clock's tick 0 on the store's clock (<see cref="FrameClock.Epoch"/>); null in step mode.</summary>
    public TimeSpan? FrameClockEpoch => _frameClock?.Epoch;

    /// <summary>Whether <paramref name="vm"/> has a front-end connected now.</summary>
    public bool IsConnected(string vm) => Store.IsConnected(vm);

    /// <summary>
    /// Bytes <paramref name="vm"/>'s devices copied on the way from guest pixels to what the
    /// compositor reads (2D transfers, gathers of scattered blobs; zero-copy blob scanouts add
    /// nothing), over all its connections so far, and the blobs mapped into its host-visible
    /// region now.
    /// </summary>
    public (ulong BytesCopied, int MappedBlobs) ScanoutStats(string vm)
    {
        lock (_lock) return _vms.TryGetValue(vm, out var e) ? e.Stats() : default;
    }

    /// <summary>
    /// <paramref name="vm"/>'s device counters for the control API and metrics: commands, guest
    /// errors and bytes copied over all its connections so far; resources, host memory and mapped
    /// blobs of its live connections now. Read from the device threads' fields without stopping
    /// them (a moment's staleness is fine); null when the layout has no such VM.
    /// </summary>
    public VmDeviceStats? DeviceStats(string vm)
    {
        lock (_lock) return _vms.TryGetValue(vm, out var e) ? e.DeviceStats() : null;
    }

    /// <summary>Connections <paramref name="vm"/>'s socket has served so far.</summary>
    public int ConnectionsServed(string vm)
    {
        lock (_lock) return _vms.TryGetValue(vm, out var e) ? e.Server.ConnectionCount : 0;
    }

    /// <summary>
    /// The device settings a VM gets: one scanout per placed scanout, each as big as the content
    /// of its first zone; its limits; <paramref name="capsets"/> (with blob; null: the device's default).
    /// </summary>
    public static GpuDeviceOptions DeviceOptionsFor(LayoutConfig layout, VmConfig vm, IReadOnlyList<ICapset>? capsets = null)
    {
        int scanouts = 1;
        foreach (var p in layout.Placements.Where(p => p.Vm == vm.Name)) scanouts = Math.Max(scanouts, p.Scanout + 1);
        foreach (var other in layout.Vms)
            if (other.Fallback is { Kind: FallbackKind.OtherVm } f && f.Vm == vm.Name) scanouts = Math.Max(scanouts, f.Scanout + 1);
        var modes = new OutputMode[scanouts];
        for (int i = 0; i < scanouts; i++)
        {
            var placement = layout.Placements.FirstOrDefault(p => p.Vm == vm.Name && p.Scanout == i);
            var zone = placement is null ? null : layout.Zone(placement.Zone);
            var output = zone is null ? null : layout.Output(zone.Output);
            var content = zone is null ? default : layout.ContentRect(zone);
            modes[i] = content.IsEmpty
                ? new OutputMode(1024, 768)
                : new OutputMode((uint)content.Width, (uint)content.Height, (uint)(output?.RefreshHz ?? 60));
        }
        var device = vm.DeviceOrDefault;
        var limits = vm.Limits;
        var defaults = new GpuDeviceOptions();
        return new GpuDeviceOptions
        {
            Scanouts = scanouts, Modes = modes, Blob = device.Blob, VirglCompat = device.Blob && device.VirglCompat,
            MaxResources = limits?.MaxResources ?? defaults.MaxResources,
            MaxHostMemory = limits?.MaxHostMemoryMiB is int mib ? (ulong)mib << 20 : defaults.MaxHostMemory,
            MaxBlobMappings = limits?.MaxBlobMappings ?? defaults.MaxBlobMappings,
            MaxContexts = limits?.MaxContexts ?? defaults.MaxContexts,
            Capsets = device.Blob ? capsets : null,
        };
    }

    private void SyncVms(LayoutConfig layout)
    {
        var wanted = layout.Vms.ToDictionary(v => v.Name, StringComparer.Ordinal);
        foreach (var (name, endpoint) in _vms.ToList())
        {
            if (wanted.TryGetValue(name, out var vm) && vm.Socket == endpoint.Socket) continue;
            _log.LogInformation("vm \"{Vm}\": stops listening on {Socket}", name, endpoint.Socket);
            endpoint.Dispose();
            _vms.Remove(name);
        }
        foreach (var vm in layout.Vms)
        {
            var options = DeviceOptionsFor(layout, vm, [CrossDomainFor(vm)]);
            var scheduling = VmScheduling.For(vm.Class, _options.Fairness);
            if (_vms.TryGetValue(vm.Name, out var existing))
            {
                existing.Server.Options = options;
                existing.Server.HostVisibleSize = HostVisibleBytes(vm);
                existing.Scheduling = scheduling; // new connections; running threads keep theirs
                continue;
            }
            _vms[vm.Name] = new VmEndpoint(vm, options, Store, _loggers, _log, scheduling);
        }
        SyncWaylandSockets(layout);
    }

    /// <summary>
    /// Cross-domain contexts (capset 5) whose Wayland channels reach the built-in server as this
    /// VM (or the external compositor its config names).
    /// </summary>
    private CrossDomainCapset CrossDomainFor(VmConfig vm)
    {
        string vmName = vm.Name;
        string? external = vm.Wayland?.CrossDomainTarget;
        var logger = _loggers.CreateLogger("VirtioGpuHost.CrossDomain");
        return new CrossDomainCapset(host => new CrossDomainContext(host, new CrossDomainOptions
        {
            OpenChannel = external is null ? () => Wayland.ConnectInProcess(vmName) : null,
            WaylandSocketPath = external,
            Logger = logger,
        }));
    }

    /// <summary>Listens on every VM's wayland_socket; a VM that left or moved stops there (its clients go).</summary>
    private void SyncWaylandSockets(LayoutConfig layout)
    {
        foreach (var vm in layout.Vms) Wayland.SetOwnerLimit(vm.Name, vm.Limits?.MaxWaylandClients);
        var wanted = layout.Vms.Where(v => v.Wayland?.Socket is not null).ToDictionary(v => v.Name, v => v.Wayland!.Socket!, StringComparer.Ordinal);
        foreach (var (vm, path) in _waylandSockets.ToList())
        {
            if (wanted.TryGetValue(vm, out var p) && p == path) continue;
            Wayland.StopListening(path);
            Wayland.DisconnectOwner(vm);
            _waylandSockets.Remove(vm);
            _log.LogInformation("vm \"{Vm}\": stops listening for Wayland clients on {Socket}", vm, path);
        }
        foreach (var (vm, path) in wanted)
        {
            if (_waylandSockets.ContainsKey(vm)) continue;
            try
            {
                Directory.CreateDirectory(Path.GetDirectoryName(path)!);
                Wayland.Listen(path, vm);
                _waylandSockets[vm] = path;
                _log.LogInformation("vm \"{Vm}\": Wayland clients on {Socket}", vm, path);
            }
            catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or UnauthorizedAccessException)
            {
                // One VM's socket failing must not stop the others (as its vhost-user socket).
                _log.LogError("vm \"{Vm}\": cannot listen for Wayland clients on {Socket}: {Error}", vm, path, e.Message);
            }
        }
    }

    public void Dispose()
    {
        lock (_lock)
        {
            if (_disposed) return;
            _disposed = true;
        }
        _frameClock?.Dispose();
        foreach (var e in _vms.Values) e.Dispose();
        _vms.Clear();
        _waylandBridge?.Dispose();
        Wayland.Dispose();
        Engine.Dispose();
    }

    /// <summary>One VM's socket: a back-end server whose devices present to the compositor.</summary>
    /// <summary>The host-visible region a VM's new connections get (bytes; 0 = none).</summary>
    public static ulong HostVisibleBytes(VmConfig vm) => vm.DeviceOrDefault is { Blob: true } d ? (ulong)d.HostVisibleMiB << 20 : 0;

    private sealed class VmEndpoint : IDisposable
    {
        private readonly CancellationTokenSource _cancel = new();
        private readonly Thread _thread;
        private readonly Dictionary<GpuDevice, CompositorDisplay> _displays = new();

        public VmEndpoint(VmConfig vm, GpuDeviceOptions options, SurfaceStore store, ILoggerFactory loggers, ILogger log, VmScheduling scheduling)
        {
            Socket = vm.Socket;
            _vmName = vm.Name;
            _vmLog = log;
            Server = new GpuBackendServer(options, loggers, vm.Name, device =>
            {
                var display = new CompositorDisplay(vm.Name, store);
                lock (_displays) _displays[device] = display;
                return display;
            }) { HostVisibleSize = HostVisibleBytes(vm) };
            Server.DeviceClosed += device =>
            {
                CompositorDisplay? display;
                lock (_displays)
                {
                    if (!_displays.Remove(device.Gpu, out display)) return;
                    _closedBytesCopied += device.Gpu.ScanoutBytesCopied;
                    _closedCommands += device.Gpu.CommandsExecuted;
                    _closedErrors += device.Gpu.Errors.Count;
                }
                display.Disconnected();
            };
            Scheduling = scheduling; // before the listener accepts anything
            var ready = new ManualResetEventSlim();
            Exception? failure = null;
            _thread = new Thread(() =>
            {
                try
                {
                    Directory.CreateDirectory(Path.GetDirectoryName(vm.Socket)!);
                    Server.ServePath(vm.Socket, _cancel.Token, ready.Set);
                }
                catch (Exception e)
                {
                    // One VM's socket failing (a path in use, no permission) must not stop the others.
                    failure = e;
                    log.LogError("vm \"{Vm}\": cannot serve {Socket}: {Error}", vm.Name, vm.Socket, e.Message);
                    ready.Set();
                }
            }) { IsBackground = true, Name = $"vm {vm.Name} listener" };
            // Every log line of this VM's listener and connection threads carries its name (a scope flows into the threads started here).
            using (log.BeginScope(new Dictionary<string, object> { ["vm"] = vm.Name }))
                _thread.Start();
            ready.Wait(TimeSpan.FromSeconds(10));
            Failure = failure;
        }

        public string Socket { get; }
        public GpuBackendServer Server { get; }

        private ulong _closedBytesCopied;
        private long _closedCommands, _closedErrors;
        private VmScheduling? _scheduling;
        private string _vmName = "";
        private ILogger _vmLog = null!;

        /// <summary>The fairness policy of this VM's connections from now on (logged when it is set or changes).</summary>
        public VmScheduling Scheduling
        {
            get => _scheduling!;
            set
            {
                if (value == _scheduling) return;
                _scheduling = value;
                Server.ConnectionNice = value.Nice;
                Server.CommandBudget = value.Budget;
                using (_vmLog.BeginScope(new Dictionary<string, object> { ["vm"] = _vmName })) // as every line of this VM
                    _vmLog.LogInformation("vm \"{Vm}\": scheduling policy: {Policy}", _vmName, value);
            }
        }

        public VmDeviceStats DeviceStats()
        {
            lock (_displays)
            {
                var s = new VmDeviceStats { BytesCopied = _closedBytesCopied, Commands = _closedCommands, GuestErrors = _closedErrors };
                foreach (var d in _displays.Keys)
                {
                    s.BytesCopied += d.ScanoutBytesCopied;
                    s.Commands += d.CommandsExecuted;
                    s.GuestErrors += d.Errors.Count;
                    s.Resources += d.Resources.Count;
                    s.HostMemoryBytes += d.HostMemoryInUse;
                    try { s.MappedBlobs += d.MappedBlobs; } catch (InvalidOperationException) { } // changed under us: next read
                    s.Connections++;
                }
                return s;
            }
        }

        /// <summary>Counters read from the device threads' fields (64-bit reads, a moment's staleness is fine).</summary>
        public (ulong BytesCopied, int MappedBlobs) Stats()
        {
            lock (_displays)
            {
                ulong copied = _closedBytesCopied;
                int mapped = 0;
                foreach (var d in _displays.Keys)
                {
                    copied += d.ScanoutBytesCopied;
                    mapped += d.MappedBlobs;
                }
                return (copied, mapped);
            }
        }
        public Exception? Failure { get; }

        public void Dispose()
        {
            _cancel.Cancel();
            _thread.Join(TimeSpan.FromSeconds(30));
            _cancel.Dispose();
        }
    }
}
