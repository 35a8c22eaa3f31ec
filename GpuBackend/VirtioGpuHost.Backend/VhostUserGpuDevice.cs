using Microsoft.Extensions.Logging;
using VirtioGpuHost.Device;
using VirtioGpuHost.Device.Display;
using VirtioGpuHost.Device.Queues;
using VirtioGpuHost.Device.Wire;
using VirtioGpuHost.GuestMemory;
using VirtioGpuHost.Virtio;
using VirtioGpuHost.VhostUser.Backend;
using VirtioGpuHost.VhostUser.Display;
using VirtioGpuHost.VhostUser.Transport;
using VirtioGpuHost.VhostUser.Wire;

namespace VirtioGpuHost.Backend;

/// <summary>
/// virtio-gpu as a vhost-user device: two rings (control, cursor), the GPU config space,
/// and GPU_SET_SOCKET, whose display socket becomes the device's display. One instance
/// per connection.
/// </summary>
public sealed class VhostUserGpuDevice : IVhostUserDevice
{
    public const int ControlQueue = 0;
    public const int CursorQueue = 1;

    /// <summary>Transport features we implement and offer.</summary>
    public const ulong TransportFeatures = VirtioFeatures.Version1 | VirtioFeatures.IndirectDesc | VirtioFeatures.EventIdx;

    private readonly GpuDeviceOptions _options;
    private readonly ILogger _log;
    private IVhostUserBackendServices _services = null!;
    private GpuDevice _device = null!;
    private ControlQueueProcessor? _control;
    private CursorQueueProcessor? _cursor;
    private DisplaySocketDisplay? _display;
    private ushort _controlStoppedAt;
    private GuestAddress? _controlStoppedDesc;
    private bool _cursorWaiting;

    private readonly Func<GpuDevice, IGpuDisplay>? _ownDisplay;
    private IGpuDisplay _idleDisplay = NullDisplay.Instance;

    /// <param name="ownDisplay">
    /// When given, the device presents on this display (the compositor) for its whole life, and a
    /// display socket QEMU hands over is negotiated but not drawn on. Without it, QEMU's display
    /// socket is the display (drop-in mode).
    /// </param>
    /// <param name="hostVisibleSize">
    /// Size of the host-visible shared memory region (shmid 1) to ask the VMM for: 0 = none, else a
    /// power of two from 4 KiB to <see cref="MaxHostVisibleSize"/> (QEMU asserts a power of two).
    /// With a region the SHMEM protocol feature is offered and GET_SHMEM_CONFIG reports it.
    /// </param>
    /// <param name="commandBudget">Limits of this connection's control-queue work per time slice (null: none).</param>
    public VhostUserGpuDevice(GpuDeviceOptions options, ILogger logger, Func<GpuDevice, IGpuDisplay>? ownDisplay = null, ulong hostVisibleSize = 0,
        CommandBudgetLimits? commandBudget = null)
    {
        commandBudget?.Validate();
        _budgetLimits = commandBudget;
        ValidateHostVisibleSize(hostVisibleSize);
        _options = options;
        _log = logger;
        _ownDisplay = ownDisplay;
        _hostVisibleSize = hostVisibleSize;
        SharedMemoryRegions = hostVisibleSize == 0
            ? new Dictionary<byte, ulong>()
            : new Dictionary<byte, ulong> { [VhostUserHostVisibleRegion.ShmId] = hostVisibleSize };
    }

    /// <summary>Largest host-visible region offered (QEMU 11.1 was measured with up to 8 GiB).</summary>
    public const ulong MaxHostVisibleSize = 64UL << 30;

    /// <summary>Throws unless <paramref name="size"/> is 0 or a power of two in 4 KiB..<see cref="MaxHostVisibleSize"/>.</summary>
    public static void ValidateHostVisibleSize(ulong size)
    {
        if (size == 0) return;
        if (!ulong.IsPow2(size) || size < 4096 || size > MaxHostVisibleSize)
            throw new ArgumentOutOfRangeException(nameof(size), $"the host-visible region must be 0 (none) or a power of two from 4 KiB to {MaxHostVisibleSize >> 30} GiB, got 0x{size:x}");
    }

    private readonly ulong _hostVisibleSize;
    private VhostUserHostVisibleRegion? _hostVisible;
    private readonly CommandBudgetLimits? _budgetLimits;
    private CommandBudget? _budget;

    /// <summary>This connection's command budget (null: none); one for the connection's life, across ring restarts.</summary>
    public CommandBudget? CommandBudget => _budget ??= _budgetLimits is { } l ? new CommandBudget(l) : null;

    /// <summary>
    /// The host-visible region while it is usable (SHMEM, BACKEND_REQ and BACKEND_SEND_FD
    /// negotiated and a back-end channel open); null otherwise.
    /// </summary>
    public VhostUserHostVisibleRegion? HostVisible => _hostVisible;

    /// <summary>Size of the host-visible region asked for (0 = none).</summary>
    public ulong HostVisibleSize => _hostVisibleSize;

    /// <summary>The connection's services (available after the connection attached; tests and stats).</summary>
    public IVhostUserBackendServices Services => _services;

    /// <summary>The device model (available after the connection attached).</summary>
    public GpuDevice Gpu => _device;

    /// <summary>QEMU's display socket as the device's display, once handed over (for stats).</summary>
    public DisplaySocketDisplay? DisplaySocket => _display;

    /// <summary>Called with the display socket display whenever QEMU hands one over (tests, stats).</summary>
    public event Action<DisplaySocketDisplay>? DisplayAttached;

    public int QueueCount => 2;
    public int MaxQueueSize => 1024;
    /// <summary>
    /// Transport bits plus the device model's own (which follow its options). The connection
    /// attaches the device in its constructor, before any GET_FEATURES; the fallback only serves
    /// a caller that asks before that.
    /// </summary>
    public ulong Features => TransportFeatures | (_device is { } d ? d.OfferedFeatures : _options.Edid ? VirtioGpuFeatures.Edid : 0);

    public VhostUserProtocolFeatures ProtocolFeatures =>
        VhostUserProtocolFeatures.Config | (_hostVisibleSize != 0 ? VhostUserProtocolFeatures.Shmem : VhostUserProtocolFeatures.None);

    public IReadOnlyDictionary<byte, ulong> SharedMemoryRegions { get; }

    /// <summary>Protocol features the host-visible region needs from the front-end.</summary>
    public const VhostUserProtocolFeatures HostVisibleProtocolFeatures =
        VhostUserProtocolFeatures.Shmem | VhostUserProtocolFeatures.BackendReq | VhostUserProtocolFeatures.BackendSendFd;

    public void Attach(IVhostUserBackendServices services)
    {
        _services = services;
        _device = new GpuDevice(_options, _log, services.ConnectionName, () => services.Memory);
        if (_ownDisplay is not null)
        {
            _idleDisplay = _ownDisplay(_device);
            _device.Display = _idleDisplay;
        }
    }

    public void AcknowledgeFeatures(ulong features)
    {
        _device.AcknowledgeFeatures(features);
        UpdateHostVisible();
    }

    public void BackendChannelChanged(BackendChannel? channel) => UpdateHostVisible();

    /// <summary>Gives the device its host-visible region when the front-end can map into it, takes it away when not.</summary>
    private void UpdateHostVisible()
    {
        var negotiated = _services.NegotiatedProtocolFeatures;
        var channel = _services.BackendChannel;
        bool usable = _hostVisibleSize != 0 && (negotiated & HostVisibleProtocolFeatures) == HostVisibleProtocolFeatures &&
                      channel is { IsClosed: false };
        if (usable && _hostVisible is null)
        {
            _hostVisible = new VhostUserHostVisibleRegion(_hostVisibleSize, _services, _log);
            if ((negotiated & VhostUserProtocolFeatures.ReplyAck) == 0)
                _log.LogWarning("{Conn}: REPLY_ACK not negotiated: SHMEM_MAP results are not reported; mappings count as done once sent", _services.ConnectionName);
            _log.LogInformation("{Conn}: host-visible region of 0x{Size:x} bytes available", _services.ConnectionName, _hostVisibleSize);
        }
        else if (!usable && _hostVisible is not null)
        {
            _hostVisible = null;
            _log.LogInformation("{Conn}: host-visible region unavailable (no back-end channel)", _services.ConnectionName);
        }
        _device.HostVisible = _hostVisible;
    }

    public bool ReadConfig(uint offset, Span<byte> data) => _device.ReadConfig(offset, data);

    public bool WriteConfig(uint offset, ReadOnlySpan<byte> data, uint flags) => _device.WriteConfig(offset, data);

    public void QueueStarted(VirtqueueContext queue)
    {
        var scheduler = new LoopScheduler(_services.Loop);
        if (queue.Index == ControlQueue)
        {
            // A ring that restarts from avail index 0 after it had moved means the guest reset
            // the device (QEMU resets the ring state then; after a pause it restores the index).
            // A ring that restarts from avail index 0 after it had moved, or at other guest
            // addresses, means the guest reset the device (QEMU resets the ring state then; after
            // a pause it restores the index and the rings stay where they were).
            bool restartedAtZero = queue.Queue.NextAvail == 0 && _controlStoppedAt != 0;
            bool movedRings = _controlStoppedDesc is GuestAddress d && d != queue.Queue.DescriptorTable;
            if (restartedAtZero || movedRings)
            {
                _log.LogInformation("{Conn}: control ring restarted {How}: the guest reset the device; dropping its resources",
                    _services.ConnectionName, movedRings ? "at new addresses" : "from 0");
                _device.ResetState();
                // Mappings asked for before the reset are not the new device's.
                _services.BackendChannel?.AbandonPending("the guest reset the device");
            }
            _controlStoppedAt = 0;
            _controlStoppedDesc = null;
            // A new kick fd for a ring that is already running keeps its processor (and
            // whatever it is waiting for); only a stopped ring gets a new one.
            _control ??= new ControlQueueProcessor(_device, new VhostQueue(queue), scheduler, _log, TimeSpan.FromSeconds(3), CommandBudget);
        }
        else if (queue.Index == CursorQueue)
        {
            // The cursor ring is held while the display is busy, checked before every chain:
            // a guest that keeps the ring fed would otherwise never let the processor stop.
            _cursor ??= new CursorQueueProcessor(_device, new VhostQueue(queue, () => _device.Display.IsBusy), _log);
        }
    }

    public void QueueKicked(VirtqueueContext queue)
    {
        if (queue.Index == ControlQueue) _control?.Process();
        else if (queue.Index == CursorQueue) ProcessCursor();
    }

    /// <summary>
    /// Runs the cursor queue until it is empty or the display is busy (negotiating, or not
    /// reading what it was sent); then it waits for the display, as the control queue does, so
    /// that a guest moving its cursor image cannot make us buffer without limit (each
    /// CURSOR_UPDATE is 16 KiB).
    /// </summary>
    private void ProcessCursor()
    {
        if (_cursor is null || _cursorWaiting) return;
        var cursor = _cursor;
        cursor.Process(); // stops early once the display is busy, or at its budget
        if (cursor.HasMore)
        {
            _cursorWaiting = true;
            _services.Loop.Post(() =>
            {
                _cursorWaiting = false;
                if (_cursor == cursor) ProcessCursor();
            });
            return;
        }
        if (!_device.Display.IsBusy) return;
        _cursorWaiting = true;
        _device.Display.WhenIdle(() => _services.Loop.Post(() =>
        {
            _cursorWaiting = false;
            ProcessCursor();
        }));
    }

    public void QueueStopping(VirtqueueContext queue)
    {
        if (queue.Index == ControlQueue)
        {
            _control?.FinishInFlight();
            _control?.Abandon();
            _control = null;
            _controlStoppedAt = queue.Queue.NextAvail;
            _controlStoppedDesc = queue.Queue.DescriptorTable;
        }
        else if (queue.Index == CursorQueue)
        {
            _cursor = null;
        }
    }

    public void MemoryChanged(GuestMemoryMap memory) { }

    public bool? HandleDeviceRequest(ReceivedMessage message)
    {
        if (message.Header.Request != (uint)VhostUserRequest.GpuSetSocket) return null;
        if (message.Payload.Length != 0 || message.Fds.Count != 1)
        {
            _log.LogWarning("{Conn}: refused GPU_SET_SOCKET: {Size} payload bytes and {Fds} fds (expected 0 and 1)",
                _services.ConnectionName, message.Payload.Length, message.Fds.Count);
            return false;
        }
        // A new socket replaces the old one: QEMU makes a fresh socketpair at every DRIVER_OK.
        DetachDisplay();
        var client = new DisplaySocketClient(message.Fds.Take(0), _services.Loop, _log, _services.ConnectionName);
        var display = new DisplaySocketDisplay(client);
        _display = display;
        client.Closed += () =>
        {
            if (_display == display) DetachDisplay();
        };
        _ = NegotiateAndAttach(display);
        return true;
    }

    private async Task NegotiateAndAttach(DisplaySocketDisplay display)
    {
        try
        {
            // Until the display has negotiated, the control queue waits (the C back-end does the
            // same), so that GET_DISPLAY_INFO and GET_EDID go to QEMU.
            if (_ownDisplay is not null)
            {
                // The compositor is the display: answer QEMU's display socket, draw nothing on it.
                await display.NegotiateAsync(() => DisplayAttached?.Invoke(display));
                return;
            }
            _device.Display = new PendingDisplay(display);
            await display.NegotiateAsync(() =>
            {
                if (_display != display) return;
                _device.Display = display; // re-sends every enabled scanout to the new display
                DisplayAttached?.Invoke(display);
            });
        }
        catch (Exception e)
        {
            _log.LogError(e, "{Conn}: display socket negotiation failed", _services.ConnectionName);
            if (_display == display) DetachDisplay();
        }
    }

    private void DetachDisplay()
    {
        var old = _display;
        _display = null;
        if (_device.Display != _idleDisplay) _device.Display = _idleDisplay;
        old?.Dispose();
        // Requests held for the old display go on against the idle one; posted, so a display
        // callback (Closed, a failed negotiation) never runs ring processing inside itself.
        _services.Loop.Post(() => _control?.Process());
    }

    public void Reset()
    {
        // Drop the queue processors first: detaching the display wakes the control queue, and
        // a reset device must not take more work from the rings (nor answer a late display reply).
        _control?.Abandon();
        _control = null;
        _cursor = null;
        DetachDisplay();
        _device.Reset();
        _controlStoppedAt = 0;
        _controlStoppedDesc = null;
    }

    /// <summary>Holds the control queue (busy) while the display socket negotiates; shows nothing.</summary>
    private sealed class PendingDisplay(DisplaySocketDisplay next) : IGpuDisplay
    {
        public bool OwnsOutputCount => true;
        public Task<byte[]?>? QueryDisplayInfo() => null;
        public Task<byte[]?>? QueryEdid(uint scanoutId) => null;
        public bool IsBusy => !next.IsNegotiated && !next.Client.IsClosed;
        public void WhenIdle(Action resume) => next.WhenIdle(resume);
        public void ScanoutChanged(uint scanoutId, GpuSurface? surface, VirtioGpuRect source) { }
        public void ScanoutFlushed(uint scanoutId, GpuSurface surface, VirtioGpuRect source, VirtioGpuRect damage) { }
        public void CursorChanged(uint scanoutId, uint x, uint y, uint hotX, uint hotY, ReadOnlySpan<byte> bgra) { }
        public void CursorMoved(uint scanoutId, uint x, uint y, bool visible) { }
    }
}
