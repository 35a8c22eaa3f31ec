using System.Buffers.Binary;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
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

    /// <summary>The host-visible shared memory region (shmid 1), when negotiated and valid; null otherwise.</summary>
    public HostVisibleRegion? HostVisible { get; private set; }

    /// <summary>Why there is no host-visible region although one was asked for (a bad GET_SHMEM_CONFIG reply, SHMEM not offered).</summary>
    public string? HostVisibleError { get; private set; }

    /// <summary>The front-end's end of the back-end channel (null without BACKEND_REQ).</summary>
    public BackendChannelServer? BackendChannel => _backendChannel;

    /// <summary>QEMU-like feedback counters: ADD_MEM_REG / REM_MEM_REG sent for mappings, and how many the back-end refused.</summary>
    public long FeedbackSent => Interlocked.Read(ref _feedbackSent);
    public long FeedbackRefused => Interlocked.Read(ref _feedbackRefused);
    private long _feedbackSent, _feedbackRefused;

    private ILogger Log => _options.Logger ?? NullLogger.Instance;

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
                     VhostUserProtocolFeatures.ConfigureMemSlots | VhostUserProtocolFeatures.BackendReq | VhostUserProtocolFeatures.BackendSendFd |
                     (_options.HostVisibleSize != 0 ? VhostUserProtocolFeatures.Shmem : VhostUserProtocolFeatures.None);
        fe.SetProtocolFeatures(OfferedProtocolFeatures & wanted);
        ulong queues = fe.GetQueueNum();
        if (queues < 2) throw new InvalidOperationException($"the back-end has {queues} queues; virtio-gpu needs 2");
        if ((fe.Protocol & VhostUserProtocolFeatures.ConfigureMemSlots) != 0) fe.GetMaxMemSlots();
        if (_options.BackendChannel && (fe.Protocol & VhostUserProtocolFeatures.BackendReq) != 0)
        {
            var (mine, theirs) = UnixSocket.CreatePair();
            _backendChannel = new BackendChannelServer(mine, fe.ReplyAck, logger: _options.Logger);
            using (theirs) if (!fe.SetBackendReqFd(theirs)) throw new InvalidOperationException("SET_BACKEND_REQ_FD refused");
        }
        if (!fe.SetOwner()) throw new InvalidOperationException("SET_OWNER refused");
        if ((fe.Protocol & VhostUserProtocolFeatures.Config) != 0)
        {
            var cfg = fe.GetConfig(0, 16) ?? throw new InvalidOperationException("GET_CONFIG refused");
            Config = System.Runtime.InteropServices.MemoryMarshal.Read<VirtioGpuConfig>(cfg);
        }
        if (_options.HostVisibleSize != 0) SetUpHostVisible();
    }

    /// <summary>
    /// GET_SHMEM_CONFIG (QEMU asks at the end of realize) and the region's reservation. A reply
    /// that does not make sense is logged and the VM runs without a region (never a crash).
    /// </summary>
    private void SetUpHostVisible()
    {
        var fe = FrontEnd;
        if ((fe.Protocol & VhostUserProtocolFeatures.Shmem) == 0)
        {
            NoHostVisible("the back-end does not offer SHMEM (protocol feature 22)");
            return;
        }
        var reply = fe.GetShmemConfig();
        var (size, error) = ParseShmemConfig(reply, Math.Min(_options.HostVisibleSize, HostVisibleRegion.MaxSize));
        if (error is not null)
        {
            NoHostVisible($"GET_SHMEM_CONFIG: {error}");
            return;
        }
        try
        {
            HostVisible = new HostVisibleRegion(size, _options.UnmappedAccess, _options.Logger);
        }
        catch (Exception e) when (e is IOException or ArgumentException)
        {
            NoHostVisible($"cannot reserve 0x{size:x} bytes of address space: {e.Message}");
            return;
        }
        if (_backendChannel is not null)
        {
            _backendChannel.Region = HostVisible;
            if (_options.HostVisibleMemoryFeedback)
            {
                _backendChannel.Mapped = m => Feedback(m, add: true);
                _backendChannel.Unmapped = m => Feedback(m, add: false);
            }
        }
        Log.LogInformation("host-visible region: 0x{Size:x} bytes at {Address:x} ({Mode} when unmapped)", size, HostVisible.Address, _options.UnmappedAccess);
    }

    private void NoHostVisible(string why)
    {
        HostVisibleError = why;
        Log.LogWarning("no host-visible region: {Why}", why);
    }

    /// <summary>
    /// Checks a GET_SHMEM_CONFIG reply: 2056 bytes, nregions consistent with the sizes (the count
    /// of non-zero entries, or QEMU's accepted "highest shmid + 1"), shmid 1 present, a power of
    /// two, a page multiple and at most <paramref name="max"/>. Returns shmid 1's size or why not.
    /// </summary>
    public static (ulong Size, string? Error) ParseShmemConfig(ReadOnlySpan<byte> reply, ulong max)
    {
        if (reply.Length != ShmemConfig.Size) return (0, $"reply is {reply.Length} bytes, expected {ShmemConfig.Size}");
        uint nregions = BinaryPrimitives.ReadUInt32LittleEndian(reply);
        int nonZero = 0, highest = -1;
        for (int id = 0; id < ShmemConfig.MaxRegions; id++)
        {
            if (BinaryPrimitives.ReadUInt64LittleEndian(reply[(8 + 8 * id)..]) == 0) continue;
            nonZero++;
            highest = id;
        }
        if (nregions != nonZero && nregions != highest + 1)
            return (0, $"nregions {nregions} does not match the {nonZero} non-zero sizes (highest shmid {highest})");
        ulong size = BinaryPrimitives.ReadUInt64LittleEndian(reply[(8 + 8 * HostVisibleRegion.ShmId)..]);
        if (size == 0) return (0, $"no region with shmid {HostVisibleRegion.ShmId}");
        if (!ulong.IsPow2(size)) return (0, $"shmid 1 size 0x{size:x} is not a power of two");
        if (size % GuestRam.PageSize != 0) return (0, $"shmid 1 size 0x{size:x} is not a page multiple");
        if (size > max) return (0, $"shmid 1 size 0x{size:x} exceeds the 0x{max:x} bytes this VM accepts");
        return (size, null);
    }

    /// <summary>QEMU 11.1's memory listener: a mapping becomes guest memory of the back-end too.</summary>
    private void Feedback(HostVisibleMapping m, bool add)
    {
        var region = HostVisible;
        if (region is null || (FrontEnd.Protocol & VhostUserProtocolFeatures.ConfigureMemSlots) == 0) return;
        var d = new MemoryRegionDescriptor(_options.HostVisibleGuestAddress + m.Offset, m.Length, (ulong)region.Address + m.Offset, m.FdOffset);
        bool ok;
        if (add)
        {
            FdHandle? fd = null;
            region.WithMappingFd(m.Offset, (_, f) => fd = f.Duplicate());
            if (fd is null) return; // unmapped again meanwhile
            using (fd) ok = FrontEnd.AddMemReg(d, fd);
        }
        else ok = FrontEnd.RemMemReg(d);
        Interlocked.Increment(ref _feedbackSent);
        if (!ok)
        {
            Interlocked.Increment(ref _feedbackRefused);
            Log.LogWarning("host-visible feedback: the back-end refused {Request} {Region}", add ? "ADD_MEM_REG" : "REM_MEM_REG", d);
        }
    }

    /// <summary>
    /// DRIVER_OK: a new display socket, features, guest RAM, the rings (from avail index 0
    /// when <paramref name="resetRings"/>, as after a device reset; else where they stopped).
    /// </summary>
    public void Start(bool resetRings)
    {
        var fe = FrontEnd;
        if (resetRings && HostVisible is not null)
        {
            // A device reset: front-ends drop every mapping (vhost-user.rst SHMEM_MAP).
            foreach (var m in HostVisible.UnmapAll())
                if (_options.HostVisibleMemoryFeedback) Feedback(m, add: false);
        }
        var (displayMine, displayTheirs) = UnixSocket.CreatePair();
        Display?.Dispose();
        Display = new DisplayServer(displayMine, _options.Display);
        using (displayTheirs) fe.GpuSetSocket(displayTheirs);

        ulong acked = VirtioFeatures.Version1 | VhostUserFeatures.ProtocolFeatures;
        if (_options.EventIdx) acked |= VirtioFeatures.EventIdx;
        if (_options.IndirectDescriptors) acked |= VirtioFeatures.IndirectDesc;
        if (_options.Edid) acked |= VirtioGpuFeatures.Edid;
        if (_options.Blob) acked |= VirtioGpuFeatures.ResourceBlob | VirtioGpuFeatures.ContextInit | VirtioGpuFeatures.ResourceUuid | VirtioGpuFeatures.Virgl;
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
        HostVisible?.Dispose();
        FrontEnd.Dispose();
        foreach (var fd in _kick.Concat(_call).Concat(_err)) fd?.Dispose();
        Ram.Dispose();
    }
}
