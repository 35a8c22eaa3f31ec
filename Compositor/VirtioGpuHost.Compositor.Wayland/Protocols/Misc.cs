using VirtioGpuHost.Compositor.Wayland.Protocol;
using VirtioGpuHost.Compositor.Wayland.Runtime;
using VirtioGpuHost.Compositor.Wayland.Wire;

namespace VirtioGpuHost.Compositor.Wayland.Protocols;

/// <summary>
/// Frame callbacks and presentation feedback of applied commits, answered when the compositor
/// reports a presented output frame (<see cref="WaylandServer.FramePresented"/>), so clients
/// are paced by the output clock.
/// </summary>
internal sealed class FrameScheduler(WaylandServer server)
{
    private List<CallbackResource> _callbacks = [];
    private readonly List<(SurfaceResource Surface, PresentationFeedbackResource Feedback)> _feedbacks = [];
    private ulong _sequence;

    public int PendingCallbacks => _callbacks.Count;

    public void Queue(List<CallbackResource> callbacks)
    {
        // Callbacks of clients that left stay here until the next frame; without frames, prune them.
        if (_callbacks.Count > 4096) _callbacks.RemoveAll(c => c.IsDestroyed);
        _callbacks.AddRange(callbacks);
    }

    /// <summary>New content replaces content not yet presented: its feedback is discarded.</summary>
    public void QueueFeedback(SurfaceResource surface, List<PresentationFeedbackResource> feedbacks)
    {
        if (feedbacks.Count == 0) return;
        for (int i = _feedbacks.Count - 1; i >= 0; i--)
        {
            if (_feedbacks[i].Surface != surface) continue;
            _feedbacks[i].Feedback.Discard();
            _feedbacks.RemoveAt(i);
        }
        foreach (var f in feedbacks) _feedbacks.Add((surface, f));
    }

    public void SurfaceGone(SurfaceResource surface)
    {
        for (int i = _feedbacks.Count - 1; i >= 0; i--)
        {
            if (_feedbacks[i].Surface != surface) continue;
            _feedbacks[i].Feedback.Discard();
            _feedbacks.RemoveAt(i);
        }
    }

    public void Presented(TimeSpan time)
    {
        uint ms = unchecked((uint)(long)time.TotalMilliseconds);
        var callbacks = _callbacks;
        _callbacks = [];
        foreach (var cb in callbacks) cb.Complete(ms);
        _sequence++;
        int hz = server.Options.Outputs[0].RefreshHz;
        uint refreshNs = hz > 0 ? (uint)(1_000_000_000L / hz) : 0;
        foreach (var (_, f) in _feedbacks) f.Present(time, refreshNs, _sequence);
        _feedbacks.Clear();
    }
}

/// <summary>wl_output v3: geometry, mode, scale, done.</summary>
internal sealed class OutputResource(WaylandClient client, uint id, uint version, WaylandOutputInfo info) : WlOutput(client, id, version)
{
    public const uint AdvertisedVersion = 3;
    public WaylandOutputInfo Output { get; } = info;

    public void Announce()
    {
        // ~96 dpi physical size: clients only use it for hints.
        SendGeometry(0, 0, Output.Width * 254 / 960, Output.Height * 254 / 960, (int)Subpixel.Unknown, "VirtioGpuHost", Output.Name, (int)Transform.Normal);
        SendMode((uint)(Mode.Current | Mode.Preferred), Output.Width, Output.Height, Output.RefreshHz * 1000);
        if (Version >= EventSince.Scale) SendScale(1);
        if (Version >= EventSince.Done) SendDone();
    }

    protected override void OnRelease() { }
}

/// <summary>wl_seat v7 with no capabilities (no input devices yet); the name identifies it.</summary>
internal sealed class SeatResource(WaylandClient client, uint id, uint version) : WlSeat(client, id, version)
{
    public const uint AdvertisedVersion = 7;

    public void Announce()
    {
        SendCapabilities(0);
        if (Version >= EventSince.Name) SendName("seat0");
    }

    protected override void OnGetPointer(uint id) => throw ProtocolError((uint)Error.MissingCapability, "the seat has no pointer");
    protected override void OnGetKeyboard(uint id) => throw ProtocolError((uint)Error.MissingCapability, "the seat has no keyboard");
    protected override void OnGetTouch(uint id) => throw ProtocolError((uint)Error.MissingCapability, "the seat has no touch");
}

/// <summary>wl_data_device_manager v3: sources and devices; selections are accepted (no focus, so no offers).</summary>
internal sealed class DataDeviceManagerResource(WaylandClient client, uint id, uint version) : WlDataDeviceManager(client, id, version)
{
    protected override void OnCreateDataSource(uint id) => _ = new DataSourceResource(Client, id, Version);
    protected override void OnGetDataDevice(uint id, WlSeat seat) => _ = new DataDeviceResource(Client, id, Version);
}

internal sealed class DataSourceResource(WaylandClient client, uint id, uint version) : WlDataSource(client, id, version)
{
    private const int MaxMimeTypes = 64;
    public List<string> MimeTypes { get; } = [];
    public bool Used { get; set; }

    protected override void OnOffer(string mimeType)
    {
        if (MimeTypes.Count < MaxMimeTypes && !MimeTypes.Contains(mimeType)) MimeTypes.Add(mimeType);
    }

    protected override void OnSetActions(uint dndActions)
    {
        const uint all = (uint)(WlDataDeviceManager.DndAction.Copy | WlDataDeviceManager.DndAction.Move | WlDataDeviceManager.DndAction.Ask);
        if ((dndActions & ~all) != 0) throw ProtocolError((uint)Error.InvalidActionMask, $"invalid action mask 0x{dndActions:x}");
        if (Used) throw ProtocolError((uint)Error.InvalidSource, "set_actions after the source was used");
    }

    /// <summary>Replaced as the selection, or a drag that cannot start: the client may free it.</summary>
    public void Cancel()
    {
        if (!IsDestroyed) SendCancelled();
    }

    protected internal override void OnDestroyed()
    {
        if (Client.Server.Selections.TryGetValue(Client, out var s) && s == this) Client.Server.Selections.Remove(Client);
    }
}

internal sealed class DataDeviceResource(WaylandClient client, uint id, uint version) : WlDataDevice(client, id, version)
{
    protected override void OnStartDrag(WlDataSource? source, WlSurface origin, WlSurface? icon, uint serial)
    {
        if (icon is SurfaceResource { Role: not null } i) throw ProtocolError((uint)Error.Role, $"{i} already has a role");
        // No pointer: a drag cannot start. The source is cancelled so the client frees it.
        (source as DataSourceResource)?.Cancel();
    }

    protected override void OnSetSelection(WlDataSource? source, uint serial)
    {
        var src = (DataSourceResource?)source;
        if (src is { Used: true }) throw ((WaylandResource)src).ProtocolError((uint)WlDataSource.Error.InvalidSource, "source already used");
        var selections = Client.Server.Selections;
        if (selections.TryGetValue(Client, out var old) && old != src) old.Cancel();
        if (src is null) selections.Remove(Client);
        else { src.Used = true; selections[Client] = src; }
    }
}

/// <summary>wp_viewporter.</summary>
internal sealed class ViewporterResource(WaylandClient client, uint id, uint version) : WpViewporter(client, id, version)
{
    protected override void OnGetViewport(uint id, WlSurface surface)
    {
        var s = (SurfaceResource)surface;
        if (s.Viewport is not null) throw ProtocolError((uint)Error.ViewportExists, $"{s} already has a viewport");
        s.Viewport = new ViewportResource(Client, id, Version, s);
    }
}

/// <summary>wp_viewport: source crop and destination size, applied when the window is flattened.</summary>
internal sealed class ViewportResource(WaylandClient client, uint id, uint version, SurfaceResource surface) : WpViewport(client, id, version)
{
    private SurfaceResource? _surface = surface;
    private (double, double, double, double)? _source;
    private (int, int)? _destination;

    protected override void OnSetSource(WlFixed x, WlFixed y, WlFixed width, WlFixed height)
    {
        var s = Surface();
        if (x.Raw == -256 && y.Raw == -256 && width.Raw == -256 && height.Raw == -256) _source = null;
        else if (x.Raw < 0 || y.Raw < 0 || width.Raw <= 0 || height.Raw <= 0)
            throw ProtocolError((uint)Error.BadValue, $"invalid source {x},{y} {width}x{height}");
        else _source = (x.ToDouble(), y.ToDouble(), width.ToDouble(), height.ToDouble());
        s.SetPendingViewport(_source, _destination);
    }

    protected override void OnSetDestination(int width, int height)
    {
        var s = Surface();
        if (width == -1 && height == -1) _destination = null;
        else if (width <= 0 || height <= 0) throw ProtocolError((uint)Error.BadValue, $"invalid destination {width}x{height}");
        else _destination = (width, height);
        s.SetPendingViewport(_source, _destination);
    }

    private SurfaceResource Surface() => _surface ?? throw ProtocolError((uint)Error.NoSurface, "the wl_surface was destroyed");

    internal void SurfaceGone() => _surface = null;

    protected internal override void OnDestroyed()
    {
        if (_surface is null) return;
        _surface.SetPendingViewport(null, null); // takes effect at the next commit, as the spec says
        _surface.Viewport = null;
    }
}

/// <summary>wp_presentation v1: CLOCK_MONOTONIC feedback per commit.</summary>
internal sealed class PresentationResource(WaylandClient client, uint id, uint version) : WpPresentation(client, id, version)
{
    private const uint ClockMonotonic = 1;

    public void Announce() => SendClockId(ClockMonotonic);

    protected override void OnFeedback(WlSurface surface, uint callback) =>
        ((SurfaceResource)surface).AddPendingFeedback(new PresentationFeedbackResource(Client, callback, Version));
}

internal sealed class PresentationFeedbackResource(WaylandClient client, uint id, uint version) : WpPresentationFeedback(client, id, version)
{
    public void Present(TimeSpan time, uint refreshNs, ulong sequence)
    {
        if (IsDestroyed) return;
        foreach (var o in Client.Outputs) SendSyncOutput(o);
        long ticks = Math.Max(0, time.Ticks);
        ulong sec = (ulong)(ticks / TimeSpan.TicksPerSecond);
        uint nsec = (uint)(ticks % TimeSpan.TicksPerSecond * 100);
        SendPresented((uint)(sec >> 32), (uint)sec, nsec, refreshNs, (uint)(sequence >> 32), (uint)sequence, 0);
        Destroy();
    }

    public void Discard()
    {
        if (IsDestroyed) return;
        SendDiscarded();
        Destroy();
    }
}
