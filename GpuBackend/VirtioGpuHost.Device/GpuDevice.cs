using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;
using VirtioGpuHost.Device.Blobs;
using VirtioGpuHost.Device.Capsets;
using VirtioGpuHost.Device.Display;
using VirtioGpuHost.Device.Edid;
using VirtioGpuHost.Device.HostVisible;
using VirtioGpuHost.Device.Wire;
using VirtioGpuHost.GuestMemory;

namespace VirtioGpuHost.Device;

/// <summary>
/// The virtio-gpu device (virtio 1.x §5.7): 2D resources, backing, scanouts, cursor, display
/// info and EDID; with <see cref="GpuDeviceOptions.Blob"/> also blob resources (zero-copy
/// scanouts, MAP_BLOB into the host-visible region), contexts with their capsets and fences,
/// and resource UUIDs. Each control command executes into a <see cref="GpuResponse"/>;
/// every invalid request gets the spec's error response and one log line naming the
/// connection and the field, and never changes other state. Single-threaded: the
/// connection's event loop calls it.
/// </summary>
public sealed partial class GpuDevice : IDisposable
{
    private readonly GpuDeviceOptions _options;
    private readonly ILogger _log;
    private readonly Func<IGuestMemory> _memory;
    private readonly Dictionary<uint, GpuResource> _resources = new();
    private readonly Scanout[] _scanouts = new Scanout[VirtioGpuLimits.MaxScanouts];
    private IGpuDisplay _display = NullDisplay.Instance;
    private ulong _hostMemoryInUse;
    private CursorState? _cursor;
    private ulong _ackedFeatures;
    private uint _eventsRead;

    public GpuDevice(GpuDeviceOptions options, ILogger logger, string connectionName, Func<IGuestMemory> memory)
    {
        options.Validate();
        _options = options;
        _log = logger;
        _memory = memory;
        Name = connectionName;
        Errors = new GuestErrorLog(logger, connectionName);
        Capsets = CapsetRegistry.For(options);
    }

    /// <summary>The connection's name, used in every log line.</summary>
    public string Name { get; }

    public GuestErrorLog Errors { get; }

    public GpuDeviceOptions Options => _options;

    /// <summary>virtio-gpu features this device offers.</summary>
    public ulong OfferedFeatures => FeaturesFor(_options);

    /// <summary>The virtio-gpu features a device with <paramref name="options"/> offers (for a transport that needs them before the device exists).</summary>
    public static ulong FeaturesFor(GpuDeviceOptions options) =>
        (options.Edid ? VirtioGpuFeatures.Edid : 0) |
        (options.Blob ? VirtioGpuFeatures.ResourceBlob | VirtioGpuFeatures.ContextInit | VirtioGpuFeatures.ResourceUuid : 0) |
        (options.VirglCompat ? VirtioGpuFeatures.Virgl : 0);

    /// <summary>The capsets reported in the config space and by GET_CAPSET_INFO / GET_CAPSET.</summary>
    public CapsetRegistry Capsets { get; }

    /// <summary>The VMM's host-visible shared memory region (MAP_BLOB), when the transport has one.</summary>
    public IHostVisibleRegion? HostVisible { get; set; }

    /// <summary>The current guest memory snapshot.</summary>
    internal IGuestMemory CurrentMemory => _memory();

    public ulong AckedFeatures => _ackedFeatures;

    /// <summary>Where scanouts are presented; NullDisplay until one is attached.</summary>
    public IGpuDisplay Display
    {
        get => _display;
        set
        {
            _display = value ?? NullDisplay.Instance;
            // A new display starts blank: show it every enabled scanout and the cursor again.
            for (uint i = 0; i < _scanouts.Length; i++)
            {
                var s = _scanouts[i];
                if (s.Surface is not { } surface) continue;
                _display.ScanoutChanged(i, surface, s.Source);
                _display.ScanoutFlushed(i, surface, s.Source, new VirtioGpuRect(0, 0, s.Source.Width, s.Source.Height));
            }
            if (_cursor is { } c)
            {
                _display.CursorChanged(c.Scanout, c.X, c.Y, c.HotX, c.HotY, c.Bgra);
                if (!c.Visible) _display.CursorMoved(c.Scanout, c.X, c.Y, visible: false);
            }
        }
    }

    /// <summary>Every resource (2D and blob) by id.</summary>
    public IReadOnlyDictionary<uint, GpuResource> Resources => _resources;
    public ulong HostMemoryInUse => _hostMemoryInUse;

    /// <summary>The resource and source rect a scanout shows (null resource = disabled).</summary>
    public Scanout GetScanout(uint id) => _scanouts[id];

    public long CommandsExecuted { get; private set; }

    public void AcknowledgeFeatures(ulong features) => _ackedFeatures = features & OfferedFeatures;

    /// <summary>Raises VIRTIO_GPU_EVENT_DISPLAY in events_read (the front-end delivers the config interrupt).</summary>
    public void RaiseDisplayEvent() => _eventsRead |= VirtioGpuConfig.EventDisplay;

    // ---- config space (virtio 1.x §5.7.4) ----

    public VirtioGpuConfig Config => new()
    {
        EventsRead = _eventsRead,
        EventsClear = 0,
        NumScanouts = (uint)_options.Scanouts,
        NumCapsets = (uint)Capsets.Count,
    };

    /// <summary>Largest config space a front-end may read (vhost-user's VHOST_USER_MAX_CONFIG_SIZE).</summary>
    public const int MaxConfigSpace = 256;

    /// <summary>
    /// Reads config space: virtio_gpu_config (16 bytes) then zeros. A front-end may expose a larger
    /// config space than the struct (QEMU's generic vhost-user-test-device reads all of its
    /// config_size, for example 24 bytes, in one GET_CONFIG); the bytes past the struct read as 0.
    /// </summary>
    public bool ReadConfig(uint offset, Span<byte> data)
    {
        if (offset > MaxConfigSpace || (uint)data.Length > MaxConfigSpace - offset) return false;
        var cfg = Config;
        var bytes = MemoryMarshal.AsBytes(new ReadOnlySpan<VirtioGpuConfig>(in cfg));
        data.Clear();
        if (offset < bytes.Length)
        {
            var part = bytes[(int)offset..];
            part[..Math.Min(part.Length, data.Length)].CopyTo(data);
        }
        return true;
    }

    public bool WriteConfig(uint offset, ReadOnlySpan<byte> data)
    {
        // Only events_clear (offset 4) is writable: write-1-to-clear bits of events_read.
        const int size = 16;
        if (offset > size || (uint)data.Length > size - offset) return false;
        for (int i = 0; i < data.Length; i++)
        {
            uint pos = offset + (uint)i;
            if (pos is >= 4 and < 8) _eventsRead &= ~((uint)data[i] << (int)(8 * (pos - 4)));
        }
        return true;
    }

    /// <summary>Device reset: every resource, scanout and the cursor go; the display is told.</summary>
    public void Reset()
    {
        ResetState();
        _eventsRead = 0;
        _ackedFeatures = 0;
    }

    /// <summary>
    /// What a guest's own device reset drops (resources, scanouts, the cursor), keeping what the
    /// front-end negotiated (features): used when the back-end infers a guest reset, which QEMU
    /// reports only after it has already sent the new SET_FEATURES.
    /// </summary>
    public void ResetState() => ResetState(unmapBlobs: true);

    /// <param name="unmapBlobs">
    /// Ask the VMM to unmap every mapped blob (fire-and-forget; a reset guest must not keep seeing
    /// old blob memory in the region); false when the connection is gone and with it the mappings.
    /// </param>
    private void ResetState(bool unmapBlobs)
    {
        DropMappings(unmapBlobs);
        DestroyAllContexts();
        for (uint i = 0; i < _scanouts.Length; i++) DisableScanout(i);
        if (_cursor is { Visible: true } c) _display.CursorMoved(c.Scanout, c.X, c.Y, visible: false);
        _cursor = null;
        foreach (var r in _resources.Values) r.Dispose();
        _resources.Clear();
        _hostMemoryInUse = 0;
        _hostBlobs = 0;
    }

    /// <summary>The connection is gone: everything is dropped; the VMM's mappings went with it, so none is unmapped.</summary>
    public void Dispose()
    {
        ResetState(unmapBlobs: false);
        _eventsRead = 0;
        _ackedFeatures = 0;
    }

    /// <summary>Executes one control-queue command.</summary>
    public GpuResponse Execute(GpuRequest request)
    {
        CommandsExecuted++;
        if (!request.HasHeader)
            return Fail(VirtioGpuCtrlType.ErrInvalidParameter, "request", $"only {request.Bytes.Length} bytes, shorter than the 24-byte header");
        var type = request.Header.Type;
        return type switch
        {
            VirtioGpuCtrlType.GetDisplayInfo => GetDisplayInfo(),
            VirtioGpuCtrlType.GetEdid => GetEdid(request),
            VirtioGpuCtrlType.ResourceCreate2D => ResourceCreate2D(request),
            VirtioGpuCtrlType.ResourceUnref => ResourceUnref(request),
            VirtioGpuCtrlType.ResourceAttachBacking => AttachBacking(request),
            VirtioGpuCtrlType.ResourceDetachBacking => DetachBacking(request),
            VirtioGpuCtrlType.SetScanout => SetScanout(request),
            VirtioGpuCtrlType.ResourceFlush => ResourceFlush(request),
            VirtioGpuCtrlType.TransferToHost2D => TransferToHost2D(request),
            VirtioGpuCtrlType.GetCapsetInfo => GetCapsetInfo(request),
            VirtioGpuCtrlType.GetCapset => GetCapset(request),
            VirtioGpuCtrlType.UpdateCursor or VirtioGpuCtrlType.MoveCursor =>
                Fail(VirtioGpuCtrlType.ErrUnspec, type.ToString(), "cursor commands belong on the cursor queue"),
            _ when RequiredFeature(type) is { } f && (_ackedFeatures & f.Bit) == 0 =>
                Fail(VirtioGpuCtrlType.ErrUnspec, type.ToString(), $"not supported: {f.Name} was not negotiated"),
            VirtioGpuCtrlType.ResourceAssignUuid => AssignUuid(request),
            VirtioGpuCtrlType.ResourceCreateBlob => CreateBlob(request),
            VirtioGpuCtrlType.SetScanoutBlob => SetScanoutBlob(request),
            VirtioGpuCtrlType.ResourceMapBlob => MapBlob(request),
            VirtioGpuCtrlType.ResourceUnmapBlob => UnmapBlob(request),
            VirtioGpuCtrlType.CtxCreate => CtxCreate(request),
            VirtioGpuCtrlType.CtxDestroy => CtxDestroy(request),
            VirtioGpuCtrlType.CtxAttachResource => CtxAttachResource(request),
            VirtioGpuCtrlType.CtxDetachResource => CtxDetachResource(request),
            VirtioGpuCtrlType.Submit3D => Submit3D(request),
            VirtioGpuCtrlType.ResourceCreate3D or VirtioGpuCtrlType.TransferToHost3D or VirtioGpuCtrlType.TransferFromHost3D =>
                Fail(VirtioGpuCtrlType.ErrUnspec, type.ToString(), "not supported: virgl 3D resources are not implemented (VIRGL is offered for the Linux driver's sake only)"),
            >= VirtioGpuCtrlType.GetDisplayInfo and <= VirtioGpuCtrlType.ResourceUnmapBlob =>
                Fail(VirtioGpuCtrlType.ErrUnspec, type.ToString(), "not supported"),
            _ => Fail(VirtioGpuCtrlType.ErrUnspec, "request", $"unknown command type 0x{(uint)type:x}"),
        };
    }

    /// <summary>The feature a command needs negotiated (null: none). Contexts need CONTEXT_INIT: no other context type exists here.</summary>
    private static (ulong Bit, string Name)? RequiredFeature(VirtioGpuCtrlType type) => type switch
    {
        VirtioGpuCtrlType.ResourceAssignUuid => (VirtioGpuFeatures.ResourceUuid, "VIRTIO_GPU_F_RESOURCE_UUID"),
        VirtioGpuCtrlType.ResourceCreateBlob or VirtioGpuCtrlType.SetScanoutBlob or
            VirtioGpuCtrlType.ResourceMapBlob or VirtioGpuCtrlType.ResourceUnmapBlob => (VirtioGpuFeatures.ResourceBlob, "VIRTIO_GPU_F_RESOURCE_BLOB"),
        VirtioGpuCtrlType.CtxCreate or VirtioGpuCtrlType.CtxDestroy or VirtioGpuCtrlType.CtxAttachResource or
            VirtioGpuCtrlType.CtxDetachResource or VirtioGpuCtrlType.Submit3D => (VirtioGpuFeatures.ContextInit, "VIRTIO_GPU_F_CONTEXT_INIT"),
        VirtioGpuCtrlType.ResourceCreate3D or VirtioGpuCtrlType.TransferToHost3D or
            VirtioGpuCtrlType.TransferFromHost3D => (VirtioGpuFeatures.Virgl, "VIRTIO_GPU_F_VIRGL"),
        _ => null,
    };

    private GpuResponse Fail(VirtioGpuCtrlType error, string command, string detail)
    {
        Errors.Report(command, detail);
        return GpuResponse.Error(error);
    }

    private GpuResponse Short(GpuRequest r, string command, int needed) =>
        Fail(VirtioGpuCtrlType.ErrUnspec, command, $"request is {r.Bytes.Length} bytes, shorter than the command ({needed} bytes)");

    private bool IsValidScanout(uint id) => _display.OwnsOutputCount ? id < VirtioGpuLimits.MaxScanouts : id < (uint)_options.Scanouts;

    // ---- display info and EDID ----

    private GpuResponse GetDisplayInfo()
    {
        var query = _display.QueryDisplayInfo();
        if (query is null) return OwnDisplayInfo();
        return GpuResponse.Later(new DeferredResponse(query, reply =>
        {
            if (reply is { Length: VirtioGpuResponseSizes.DisplayInfo } &&
                BinaryPrimitives.ReadUInt32LittleEndian(reply) == (uint)VirtioGpuCtrlType.OkDisplayInfo)
            {
                return GpuResponse.WithBody(VirtioGpuCtrlType.OkDisplayInfo, reply.AsSpan(VirtioGpuCtrlHeader.Size).ToArray());
            }
            _log.LogDebug("{Conn}: display gave no usable display info; answering from the configured modes", Name);
            return OwnDisplayInfo();
        }));
    }

    /// <summary>GET_DISPLAY_INFO answered from the configured scanouts and modes.</summary>
    public GpuResponse OwnDisplayInfo()
    {
        var body = new byte[VirtioGpuResponseSizes.DisplayInfo - VirtioGpuCtrlHeader.Size];
        for (int i = 0; i < _options.Scanouts; i++)
        {
            var m = _options.ModeFor(i);
            var one = new VirtioGpuDisplayOne { Rect = new VirtioGpuRect(0, 0, m.Width, m.Height), Enabled = 1 };
            MemoryMarshal.Write(body.AsSpan(i * 24), in one);
        }
        return GpuResponse.WithBody(VirtioGpuCtrlType.OkDisplayInfo, body);
    }

    private GpuResponse GetEdid(GpuRequest r)
    {
        if ((_ackedFeatures & VirtioGpuFeatures.Edid) == 0)
            return Fail(VirtioGpuCtrlType.ErrUnspec, "GET_EDID", "VIRTIO_GPU_F_EDID was not negotiated");
        if (!r.TryRead<VirtioGpuGetEdid>(out var c)) return Short(r, "GET_EDID", 32);
        if (!IsValidScanout(c.Scanout))
            return Fail(VirtioGpuCtrlType.ErrInvalidScanoutId, "GET_EDID", $"scanout {c.Scanout} does not exist");
        var query = _display.QueryEdid(c.Scanout);
        if (query is null) return OwnEdid(c.Scanout);
        uint scanout = c.Scanout;
        return GpuResponse.Later(new DeferredResponse(query, reply =>
        {
            if (reply is { Length: VirtioGpuResponseSizes.Edid } &&
                BinaryPrimitives.ReadUInt32LittleEndian(reply) == (uint)VirtioGpuCtrlType.OkEdid &&
                BinaryPrimitives.ReadUInt32LittleEndian(reply.AsSpan(24)) is > 0 and <= VirtioGpuResponseSizes.EdidBytes)
            {
                return GpuResponse.WithBody(VirtioGpuCtrlType.OkEdid, reply.AsSpan(VirtioGpuCtrlHeader.Size).ToArray());
            }
            return OwnEdid(scanout);
        }));
    }

    /// <summary>GET_EDID answered with an EDID generated for the scanout's configured mode.</summary>
    public GpuResponse OwnEdid(uint scanout)
    {
        var m = _options.ModeFor((int)scanout);
        uint w = Math.Min(m.Width, 4095), h = Math.Min(m.Height, 4095);
        // A detailed timing holds at most 655.35 MHz: a faster configured mode is offered at
        // the highest refresh rate that fits (Build would throw otherwise).
        var edid = EdidBuilder.Build(w, h, EdidBuilder.FittingRefreshHz(w, h, m.RefreshHz), serial: scanout);
        var body = new byte[VirtioGpuResponseSizes.Edid - VirtioGpuCtrlHeader.Size];
        BinaryPrimitives.WriteUInt32LittleEndian(body, (uint)edid.Length);
        edid.CopyTo(body.AsSpan(8));
        return GpuResponse.WithBody(VirtioGpuCtrlType.OkEdid, body);
    }
}

/// <summary>The cursor as last set (re-sent to a new display).</summary>
internal sealed record CursorState(uint Scanout, uint X, uint Y, uint HotX, uint HotY, byte[] Bgra, bool Visible);

/// <summary>What one scanout shows: a 2D resource, or a blob seen through SET_SCANOUT_BLOB's layout.</summary>
public readonly record struct Scanout(GpuResource? Resource, VirtioGpuRect Source)
{
    /// <summary>The blob's view (layout, zero-copy or gathered surface) when a blob is shown.</summary>
    internal BlobScanout? Blob { get; init; }

    /// <summary>The pixels the display reads now (null when disabled).</summary>
    public GpuSurface? Surface => Blob is { } b ? b.Surface : (Resource as Resource2D)?.Surface;
}
