using System.Buffers.Binary;
using VirtioGpuHost.Device.Wire;
using VirtioGpuHost.Interop;
using VirtioGpuHost.Virtio;
using VirtioGpuHost.VhostUser.Transport;
using VirtioGpuHost.VhostUser.Wire;

namespace VirtioGpuHost.FrontEnd;

/// <summary>
/// A VM with a vhost-user-gpu device, as QEMU's vhost-user-gpu-pci sets it up: features
/// and protocol features, back-end channel, guest RAM by fd, the display socket, two
/// rings with kick/call/err eventfds, and a guest driver on top. <see cref="Stop"/> and
/// <see cref="Start"/> repeat what QEMU does when the guest clears and sets DRIVER_OK.
/// </summary>
public sealed class GpuVm : IDisposable
{
    private readonly GpuVmOptions _options;
    private readonly FdHandle?[] _kick = new FdHandle?[2], _call = new FdHandle?[2], _err = new FdHandle?[2];
    private BackendChannelServer? _backendChannel;
    private bool _memoryAdded;

    private GpuVm(VhostUserFrontEnd frontEnd, GpuVmOptions options)
    {
        FrontEnd = frontEnd;
        _options = options;
        Ram = GuestRam.CreateShared(options.RamSize, options.RamGuestBase);
        Control = new DriverQueue(Ram, 0, options.ControlQueueSize);
        Cursor = new DriverQueue(Ram, 1, options.CursorQueueSize);
        Driver = new GpuDriver(Ram, Control, Cursor, new EventFdNotifier(q => _kick[q], q => _call[q]))
        {
            Timeout = options.Timeout,
            UseIndirect = options.IndirectDescriptors,
        };
    }

    public VhostUserFrontEnd FrontEnd { get; }
    public GuestRam Ram { get; }
    public DriverQueue Control { get; }
    public DriverQueue Cursor { get; }
    public GpuDriver Driver { get; }
    public DisplayServer? Display { get; private set; }

    public ulong OfferedFeatures { get; private set; }
    public ulong AckedFeatures { get; private set; }
    public VhostUserProtocolFeatures OfferedProtocolFeatures { get; private set; }

    /// <summary>The virtio-gpu config read with GET_CONFIG at start.</summary>
    public VirtioGpuConfig Config { get; private set; }

    public FdHandle? ErrFd(int queue) => _err[queue];

    /// <summary>Connects to a back-end listening on <paramref name="socketPath"/> and brings the device up.</summary>
    public static GpuVm Connect(string socketPath, GpuVmOptions? options = null)
    {
        var vm = new GpuVm(VhostUserFrontEnd.Connect(socketPath), options ?? new GpuVmOptions());
        try
        {
            vm.Realize();
            vm.Start(resetRings: true);
            return vm;
        }
        catch
        {
            vm.Dispose();
            throw;
        }
    }

    /// <summary>QEMU's realize: feature discovery, back-end channel, owner, config.</summary>
    private void Realize()
    {
        var fe = FrontEnd;
        OfferedFeatures = fe.GetFeatures();
        if ((OfferedFeatures & VhostUserFeatures.ProtocolFeatures) == 0)
            throw new InvalidOperationException("the back-end does not offer VHOST_USER_F_PROTOCOL_FEATURES");
        OfferedProtocolFeatures = fe.GetProtocolFeatures();
        var wanted = VhostUserProtocolFeatures.Mq | VhostUserProtocolFeatures.ReplyAck | VhostUserProtocolFeatures.Config |
                     VhostUserProtocolFeatures.ConfigureMemSlots | VhostUserProtocolFeatures.BackendReq | VhostUserProtocolFeatures.BackendSendFd;
        fe.SetProtocolFeatures(OfferedProtocolFeatures & wanted);
        ulong queues = fe.GetQueueNum();
        if (queues < 2) throw new InvalidOperationException($"the back-end has {queues} queues; virtio-gpu needs 2");
        if ((fe.Protocol & VhostUserProtocolFeatures.ConfigureMemSlots) != 0) fe.GetMaxMemSlots();
        if (_options.BackendChannel && (fe.Protocol & VhostUserProtocolFeatures.BackendReq) != 0)
        {
            var (mine, theirs) = UnixSocket.CreatePair();
            _backendChannel = new BackendChannelServer(mine, fe.ReplyAck);
            using (theirs) if (!fe.SetBackendReqFd(theirs)) throw new InvalidOperationException("SET_BACKEND_REQ_FD refused");
        }
        if (!fe.SetOwner()) throw new InvalidOperationException("SET_OWNER refused");
        if ((fe.Protocol & VhostUserProtocolFeatures.Config) != 0)
        {
            var cfg = fe.GetConfig(0, 16) ?? throw new InvalidOperationException("GET_CONFIG refused");
            Config = System.Runtime.InteropServices.MemoryMarshal.Read<VirtioGpuConfig>(cfg);
        }
    }

    /// <summary>
    /// DRIVER_OK: a new display socket, features, guest RAM, the rings (from avail index 0
    /// when <paramref name="resetRings"/>, as after a device reset; else where they stopped).
    /// </summary>
    public void Start(bool resetRings)
    {
        var fe = FrontEnd;
        var (displayMine, displayTheirs) = UnixSocket.CreatePair();
        Display?.Dispose();
        Display = new DisplayServer(displayMine, _options.Display);
        using (displayTheirs) fe.GpuSetSocket(displayTheirs);

        ulong acked = VirtioFeatures.Version1 | VhostUserFeatures.ProtocolFeatures;
        if (_options.EventIdx) acked |= VirtioFeatures.EventIdx;
        if (_options.IndirectDescriptors) acked |= VirtioFeatures.IndirectDesc;
        if (_options.Edid) acked |= VirtioGpuFeatures.Edid;
        acked &= OfferedFeatures;
        AckedFeatures = acked;
        if (!fe.SetFeatures(acked)) throw new InvalidOperationException("SET_FEATURES refused");

        var region = new MemoryRegionDescriptor(Ram.GuestBase.Value, Ram.Size, (ulong)Ram.Block.Address, 0);
        bool addMemReg = _options.MemoryMode == MemoryTableMode.AddMemReg ||
                         (_options.MemoryMode == MemoryTableMode.Auto && (fe.Protocol & VhostUserProtocolFeatures.ConfigureMemSlots) != 0);
        // Like QEMU: SET_MEM_TABLE is sent at every start; with memory slots only the
        // regions the back-end does not have yet are added (ours never change).
        if (!addMemReg || !_memoryAdded)
        {
            bool ok = addMemReg ? fe.AddMemReg(region, Ram.Fd) : fe.SetMemTable([(region, Ram.Fd)]);
            if (!ok) throw new InvalidOperationException("the back-end refused the guest memory");
            _memoryAdded = true;
        }

        foreach (var q in new[] { Control, Cursor })
        {
            uint i = (uint)q.Index;
            if (resetRings) q.Reset();
            Check(fe.SetVringNum(i, q.Size), "SET_VRING_NUM");
            Check(fe.SetVringBase(i, resetRings ? 0u : q.AvailIndex), "SET_VRING_BASE");
            Check(fe.SetVringAddr(new VringAddress(i, 0, Ram.UserAddress(q.Descriptors), Ram.UserAddress(q.Used), Ram.UserAddress(q.Avail), 0)), "SET_VRING_ADDR");
            _kick[i]?.Dispose();
            _kick[i] = EventFd.Create();
            Check(fe.SetVringFd(VhostUserRequest.SetVringKick, i, _kick[i]), "SET_VRING_KICK");
            _call[i] ??= EventFd.Create();
            Check(fe.SetVringFd(VhostUserRequest.SetVringCall, i, _call[i]), "SET_VRING_CALL");
            _err[i] ??= EventFd.Create();
            Check(fe.SetVringFd(VhostUserRequest.SetVringErr, i, _err[i]), "SET_VRING_ERR");
        }
        foreach (var q in new[] { Control, Cursor }) Check(fe.SetVringEnable((uint)q.Index, true), "SET_VRING_ENABLE");
    }

    /// <summary>
    /// DRIVER_OK cleared (or the VM paused): the display socket closes, the rings are
    /// stopped with GET_VRING_BASE. Returns the avail indices the back-end reported.
    /// </summary>
    public (uint Control, uint Cursor) Stop()
    {
        Display?.Dispose();
        Display = null;
        var fe = FrontEnd;
        fe.SetVringEnable(0, false);
        fe.SetVringEnable(1, false);
        return (fe.GetVringBase(0), fe.GetVringBase(1));
    }

    /// <summary>Waits for the display to have negotiated (the back-end's first act on a new socket).</summary>
    public bool WaitForDisplayReady(TimeSpan timeout) =>
        Display?.WaitFor(d => d.AgreedFeatures is not null, timeout) ?? false;

    private static void Check(bool ok, string what)
    {
        if (!ok) throw new InvalidOperationException($"{what} refused by the back-end");
    }

    public void Dispose()
    {
        Display?.Dispose();
        _backendChannel?.Dispose();
        FrontEnd.Dispose();
        foreach (var fd in _kick.Concat(_call).Concat(_err)) fd?.Dispose();
        Ram.Dispose();
    }
}

/// <summary>
/// The front-end's end of the back-end channel: reads back-end requests and acks them.
/// Nothing the back-end sends can crash it; unknown requests get a failure ack.
/// </summary>
public sealed class BackendChannelServer : IDisposable
{
    private readonly FramedSocket _socket;
    private readonly Thread _thread;
    private readonly bool _replyAck;

    public BackendChannelServer(FdHandle socket, bool replyAck)
    {
        _socket = new FramedSocket(socket);
        _replyAck = replyAck;
        _thread = new Thread(Run) { IsBackground = true, Name = "backend-channel" };
        _thread.Start();
    }

    /// <summary>Requests received: id and payload size.</summary>
    public List<(VhostUserBackendRequest Request, int Size)> Received { get; } = new();

    private void Run()
    {
        try
        {
            while (_socket.Receive() is { } msg)
            {
                using (msg)
                {
                    lock (Received) Received.Add(((VhostUserBackendRequest)msg.Header.Request, msg.Payload.Length));
                    if (msg.Header.NeedsReply && _replyAck)
                    {
                        var ack = new byte[8];
                        BinaryPrimitives.WriteUInt64LittleEndian(ack, 1); // nothing is implemented here yet
                        _socket.Send(msg.Header.Request, VhostUserHeader.Version | VhostUserHeader.FlagReply, ack);
                    }
                }
            }
        }
        catch (Exception e) when (e is IOException or ProtocolViolationException or ObjectDisposedException)
        {
            // The channel ends with the connection.
        }
    }

    public void Dispose()
    {
        UnixSocket.Shutdown(_socket.Socket);
        _thread.Join(TimeSpan.FromSeconds(2));
        _socket.Dispose();
    }
}
