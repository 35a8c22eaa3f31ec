using VirtioGpuHost.Compositor.Wayland.Protocol;
using VirtioGpuHost.Compositor.Wayland.Runtime;

namespace VirtioGpuHost.Compositor.Wayland.Protocols;

/// <summary>xdg_wm_base v5: positioners, xdg_surfaces, ping/pong.</summary>
internal sealed class XdgWmBaseResource(WaylandClient client, uint id, uint version) : XdgWmBase(client, id, version)
{
    public const uint AdvertisedVersion = 5;
    private uint _pingSerial;

    internal int LiveSurfaces { get; set; }
    /// <summary>The last ping answered (tests; a compositor could flag unresponsive clients).</summary>
    public uint LastPong { get; private set; }

    protected override void OnCreatePositioner(uint id) => _ = new PositionerResource(Client, id, Version);

    protected override void OnGetXdgSurface(uint id, WlSurface surface)
    {
        var s = (SurfaceResource)surface;
        if (!s.CanTakeRole("xdg_surface")) throw ProtocolError((uint)Error.Role, $"{s} already has the role {s.Role!.RoleName}");
        if (s.HasContent) throw ProtocolError((uint)Error.InvalidSurfaceState, $"{s} already has a buffer committed");
        var x = new XdgSurfaceResource(Client, id, Version, this, s);
        s.SetRole(x, (uint)Error.Role, this);
        LiveSurfaces++;
        if (_pingSerial == 0) Ping();
    }

    /// <summary>When the unanswered ping was sent (Stopwatch ticks); null when none is outstanding.</summary>
    public long? OutstandingSince { get; private set; }

    /// <summary>When the last ping was sent (Stopwatch ticks).</summary>
    public long LastPingAt { get; private set; }

    /// <summary>Asks the client to answer (a liveness check).</summary>
    public void Ping()
    {
        _pingSerial = Client.Server.NextSerial();
        LastPingAt = System.Diagnostics.Stopwatch.GetTimestamp();
        OutstandingSince ??= LastPingAt;
        SendPing(_pingSerial);
    }

    protected override void OnPong(uint serial)
    {
        LastPong = serial;
        if (serial == _pingSerial) OutstandingSince = null; // an older serial proves less: wait for the newest
    }

    protected override void OnDestroy()
    {
        if (LiveSurfaces > 0) throw ProtocolError((uint)Error.DefunctSurfaces, $"{LiveSurfaces} xdg_surfaces still exist");
    }
}

/// <summary>xdg_positioner's state, copied when a popup is created or repositioned.</summary>
internal record struct PositionerState(int W, int H, IntRect Anchor, bool AnchorSet, uint AnchorEdge, uint Gravity, uint Adjust, int OffsetX, int OffsetY)
{
    public readonly bool IsComplete => W > 0 && H > 0 && AnchorSet;
}

internal sealed class PositionerResource(WaylandClient client, uint id, uint version) : XdgPositioner(client, id, version)
{
    public PositionerState State;

    protected override void OnSetSize(int width, int height)
    {
        if (width <= 0 || height <= 0) throw ProtocolError((uint)Error.InvalidInput, $"size {width}x{height} must be positive");
        State.W = width; State.H = height;
    }

    protected override void OnSetAnchorRect(int x, int y, int width, int height)
    {
        if (width < 0 || height < 0) throw ProtocolError((uint)Error.InvalidInput, $"anchor rect {width}x{height} is negative");
        State.Anchor = new IntRect(x, y, width, height);
        State.AnchorSet = true;
    }

    protected override void OnSetAnchor(uint anchor)
    {
        if (anchor > (uint)Anchor.BottomRight) throw ProtocolError((uint)Error.InvalidInput, $"invalid anchor {anchor}");
        State.AnchorEdge = anchor;
    }

    protected override void OnSetGravity(uint gravity)
    {
        if (gravity > (uint)Gravity.BottomRight) throw ProtocolError((uint)Error.InvalidInput, $"invalid gravity {gravity}");
        State.Gravity = gravity;
    }

    protected override void OnSetConstraintAdjustment(uint constraintAdjustment) => State.Adjust = constraintAdjustment;
    protected override void OnSetOffset(int x, int y) { State.OffsetX = x; State.OffsetY = y; }
    protected override void OnSetReactive() { }
    protected override void OnSetParentSize(int parentWidth, int parentHeight) { }
    protected override void OnSetParentConfigure(uint serial) { }

    /// <summary>
    /// The popup's geometry relative to the parent's window geometry, kept inside
    /// <paramref name="bounds"/> (same coordinates) by flip and slide where the client allows
    /// them (resize is not done: the popup keeps its size and is clipped).
    /// </summary>
    public static IntRect Place(PositionerState p, IntRect bounds)
    {
        uint anchor = p.AnchorEdge, gravity = p.Gravity;
        var r = Compute(p, anchor, gravity);
        var adj = (XdgPositioner.ConstraintAdjustment)p.Adjust;
        if (!bounds.IsEmpty)
        {
            if ((r.X < bounds.X || r.Right > bounds.Right) && adj.HasFlag(XdgPositioner.ConstraintAdjustment.FlipX))
            {
                var f = Compute(p, FlipX(anchor), FlipX(gravity));
                if (f.X >= bounds.X && f.Right <= bounds.Right) { r = f; anchor = FlipX(anchor); gravity = FlipX(gravity); }
            }
            if ((r.Y < bounds.Y || r.Bottom > bounds.Bottom) && adj.HasFlag(XdgPositioner.ConstraintAdjustment.FlipY))
            {
                var f = Compute(p, FlipY(anchor), FlipY(gravity));
                if (f.Y >= bounds.Y && f.Bottom <= bounds.Bottom) r = r with { Y = f.Y };
            }
            if (adj.HasFlag(XdgPositioner.ConstraintAdjustment.SlideX))
            {
                int x = r.X;
                if (r.Right > bounds.Right) x = (int)(bounds.Right - r.W);
                if (x < bounds.X) x = bounds.X;
                r = r with { X = x };
            }
            if (adj.HasFlag(XdgPositioner.ConstraintAdjustment.SlideY))
            {
                int y = r.Y;
                if (r.Bottom > bounds.Bottom) y = (int)(bounds.Bottom - r.H);
                if (y < bounds.Y) y = bounds.Y;
                r = r with { Y = y };
            }
        }
        return r;
    }

    private static IntRect Compute(PositionerState p, uint anchor, uint gravity)
    {
        var a = p.Anchor;
        var ae = (XdgPositioner.Anchor)anchor;
        int ax = ae switch
        {
            XdgPositioner.Anchor.Left or XdgPositioner.Anchor.TopLeft or XdgPositioner.Anchor.BottomLeft => a.X,
            XdgPositioner.Anchor.Right or XdgPositioner.Anchor.TopRight or XdgPositioner.Anchor.BottomRight => a.X + a.W,
            _ => a.X + a.W / 2,
        };
        int ay = ae switch
        {
            XdgPositioner.Anchor.Top or XdgPositioner.Anchor.TopLeft or XdgPositioner.Anchor.TopRight => a.Y,
            XdgPositioner.Anchor.Bottom or XdgPositioner.Anchor.BottomLeft or XdgPositioner.Anchor.BottomRight => a.Y + a.H,
            _ => a.Y + a.H / 2,
        };
        var g = (XdgPositioner.Gravity)gravity;
        int x = g switch
        {
            XdgPositioner.Gravity.Left or XdgPositioner.Gravity.TopLeft or XdgPositioner.Gravity.BottomLeft => ax - p.W,
            XdgPositioner.Gravity.Right or XdgPositioner.Gravity.TopRight or XdgPositioner.Gravity.BottomRight => ax,
            _ => ax - p.W / 2,
        };
        int y = g switch
        {
            XdgPositioner.Gravity.Top or XdgPositioner.Gravity.TopLeft or XdgPositioner.Gravity.TopRight => ay - p.H,
            XdgPositioner.Gravity.Bottom or XdgPositioner.Gravity.BottomLeft or XdgPositioner.Gravity.BottomRight => ay,
            _ => ay - p.H / 2,
        };
        return new IntRect(x + p.OffsetX, y + p.OffsetY, p.W, p.H);
    }

    // anchor and gravity share their values: none, top, bottom, left, right, top_left, bottom_left, top_right, bottom_right.
    private static uint FlipX(uint e) => e switch { 3 => 4, 4 => 3, 5 => 7, 7 => 5, 6 => 8, 8 => 6, _ => e };
    private static uint FlipY(uint e) => e switch { 1 => 2, 2 => 1, 5 => 6, 6 => 5, 7 => 8, 8 => 7, _ => e };
}

/// <summary>
/// xdg_surface: configure/ack serials, window geometry, and the role object (toplevel or
/// popup). It hosts its surface tree: commits anywhere in it end here.
/// </summary>
internal sealed class XdgSurfaceResource : XdgSurface, ISurfaceRole, ITreeHost, ISurfaceRoleWithSurface
{
    private readonly XdgWmBaseResource _wm;
    private readonly List<uint> _sentSerials = [];

    public XdgSurfaceResource(WaylandClient client, uint id, uint version, XdgWmBaseResource wm, SurfaceResource surface) : base(client, id, version)
    {
        _wm = wm;
        Surface = surface;
    }

    public string RoleName => "xdg_surface";
    public SurfaceResource? Surface { get; private set; }
    public XdgToplevelResource? Toplevel { get; private set; }
    public XdgPopupResource? Popup { get; private set; }
    public List<XdgPopupResource> Popups { get; } = [];
    /// <summary>An ack_configure arrived since the surface was (re)started.</summary>
    public bool Configured { get; set; }
    /// <summary>The initial commit (no buffer) was made and answered with a configure.</summary>
    public bool InitialCommitDone { get; set; }
    internal XdgWmBaseResource WmBase => _wm;

    /// <summary>The window geometry in surface coordinates: the set one clamped to the extents, else the extents.</summary>
    public IntRect Geometry(IntRect extents)
    {
        if (Surface?.WindowGeometry is { } g)
        {
            var c = g.Intersect(extents);
            if (!c.IsEmpty) return c;
        }
        return extents;
    }

    public void SendConfigureNow()
    {
        uint serial = Client.Server.NextSerial();
        if (_sentSerials.Count > 64) _sentSerials.RemoveAt(0);
        _sentSerials.Add(serial);
        SendConfigure(serial);
    }

    public void BeforeCommit(SurfaceState pending)
    {
        if (Toplevel is null && Popup is null) throw ProtocolError((uint)Error.NotConstructed, "commit before get_toplevel/get_popup");
        if (pending.Attached && pending.Buffer is not null && !Configured)
            throw ProtocolError((uint)Error.UnconfiguredBuffer, "buffer committed before the first ack_configure");
        if (pending.WindowGeometry is { IsEmpty: true }) throw ProtocolError((uint)Error.InvalidSize, "empty window geometry");
        Toplevel?.BeforeCommit();
    }

    public void TreeCommitted(SurfaceResource committed)
    {
        if (committed == Surface)
        {
            if (!InitialCommitDone)
            {
                InitialCommitDone = true;
                if (Toplevel is { IsDestroyed: false } t) t.Configure();
                else if (Popup is { IsDestroyed: false } p) p.Configure();
                return;
            }
        }
        if (Toplevel is { IsDestroyed: false } top) top.Refresh();
        else if (Popup is { IsDestroyed: false } pop) pop.Refresh();
    }

    protected override void OnGetToplevel(uint id)
    {
        if (Toplevel is not null || Popup is not null) throw ProtocolError((uint)Error.AlreadyConstructed, "the xdg_surface already has a role object");
        Toplevel = new XdgToplevelResource(Client, id, Version, this);
    }

    protected override void OnGetPopup(uint id, XdgSurface? parent, XdgPositioner positioner)
    {
        if (Toplevel is not null || Popup is not null) throw ProtocolError((uint)Error.AlreadyConstructed, "the xdg_surface already has a role object");
        var pos = (PositionerResource)positioner;
        if (!pos.State.IsComplete) throw _wm.ProtocolError((uint)XdgWmBase.Error.InvalidPositioner, "positioner without size or anchor rectangle");
        var par = (XdgSurfaceResource?)parent;
        if (par is { Toplevel: null, Popup: null }) throw _wm.ProtocolError((uint)XdgWmBase.Error.InvalidPopupParent, "the parent xdg_surface has no role");
        Popup = new XdgPopupResource(Client, id, Version, this, par, pos.State);
        par?.Popups.Add(Popup);
    }

    protected override void OnSetWindowGeometry(int x, int y, int width, int height)
    {
        if (width <= 0 || height <= 0) throw ProtocolError((uint)Error.InvalidSize, $"window geometry {width}x{height} must be positive");
        Surface?.SetPendingWindowGeometry(IntRect.FromClient(x, y, width, height));
    }

    protected override void OnAckConfigure(uint serial)
    {
        int i = _sentSerials.IndexOf(serial);
        if (i < 0) throw ProtocolError((uint)Error.InvalidSerial, $"ack_configure of serial {serial}, which was not sent or is already acked");
        _sentSerials.RemoveRange(0, i + 1);
        Configured = true;
    }

    protected override void OnDestroy()
    {
        if (Toplevel is { IsDestroyed: false } || Popup is { IsDestroyed: false })
            throw ProtocolError((uint)Error.DefunctRoleObject, "xdg_surface destroyed before its role object");
    }

    /// <summary>The toplevel whose window shows this surface (itself, or the root of a popup chain).</summary>
    public XdgToplevelResource? OwningToplevel()
    {
        var x = this;
        for (int depth = 0; depth < 100 && x is not null; depth++)
        {
            if (x.Toplevel is { IsDestroyed: false } t) return t;
            x = x.Popup?.Parent;
        }
        return null;
    }

    public void SurfaceGone() => Surface = null;

    protected internal override void OnDestroyed()
    {
        _wm.LiveSurfaces--;
        Surface?.ClearRole(this);
        Surface = null;
    }
}

/// <summary>xdg_toplevel: title, app_id, size limits; a mapped toplevel is a <see cref="WaylandWindow"/>.</summary>
internal sealed class XdgToplevelResource(WaylandClient client, uint id, uint version, XdgSurfaceResource xdg) : XdgToplevel(client, id, version)
{
    private (int W, int H) _min, _max;
    private bool _sentCapabilities;

    public XdgSurfaceResource Xdg { get; } = xdg;
    public string? Title { get; private set; }
    public string? AppId { get; private set; }
    public WaylandWindow? Window { get; private set; }

    public void Configure()
    {
        if (Version >= EventSince.ConfigureBounds)
        {
            var o = Client.Server.Options.Outputs[0];
            SendConfigureBounds(o.Width, o.Height);
        }
        if (Version >= EventSince.WmCapabilities && !_sentCapabilities)
        {
            // None of maximize, fullscreen, minimize or a window menu is offered.
            SendWmCapabilities([]);
            _sentCapabilities = true;
        }
        SendConfigure(0, 0, []); // 0x0: the client picks its size
        Xdg.SendConfigureNow();
    }

    public void BeforeCommit()
    {
        if (_max.W > 0 && _min.W > _max.W || _max.H > 0 && _min.H > _max.H)
            throw ProtocolError((uint)Error.InvalidSize, $"min size {_min} larger than max size {_max}");
    }

    /// <summary>The tree committed: map, update or unmap the window.</summary>
    public void Refresh()
    {
        var surface = Xdg.Surface;
        if (surface is null || !surface.HasContent)
        {
            if (Window is not null) Unmap();
            if (surface is not null && Xdg.InitialCommitDone)
            {
                // Unmapped by a null buffer: the client starts over with an initial commit.
                Xdg.InitialCommitDone = false;
                Xdg.Configured = false;
            }
            return;
        }
        bool mapped = Window is null;
        Window ??= new WaylandWindow(Client.Owner, Client.Server.Options.MaxWindowSize)
        {
            Client = Client,
            Responsive = Client.Responsive,
            Title = Title,
            AppId = AppId,
            CloseRequested = () => Client.Server.Post(() => { if (!IsDestroyed) SendClose(); }),
        };
        Window.Render(this);
        if (mapped) Client.Server.OnWindowMapped(Window);
        else Client.Server.OnWindowChanged(Window);
    }

    private void Unmap()
    {
        var w = Window!;
        Window = null;
        Client.Server.OnWindowUnmapped(w);
        w.Release();
    }

    protected override void OnSetParent(XdgToplevel? parent)
    {
        for (var p = (XdgToplevelResource?)parent; p is not null; p = p.Parent)
            if (p == this) throw ProtocolError((uint)Error.InvalidParent, "the parent chain would form a loop");
        Parent = (XdgToplevelResource?)parent;
    }

    public XdgToplevelResource? Parent { get; private set; }

    protected override void OnSetTitle(string title)
    {
        Title = title.Length > 1024 ? title[..1024] : title;
        if (Window is null) return;
        Window.Title = Title;
        Client.Server.OnWindowChanged(Window);
    }

    protected override void OnSetAppId(string appId)
    {
        AppId = appId.Length > 1024 ? appId[..1024] : appId;
        if (Window is null) return;
        Window.AppId = AppId;
        Client.Server.OnWindowChanged(Window);
    }

    // No pointer or seat input: interactive move/resize and the window menu have nothing to act on.
    protected override void OnShowWindowMenu(WlSeat seat, uint serial, int x, int y) { }
    protected override void OnMove(WlSeat seat, uint serial) { }

    protected override void OnResize(WlSeat seat, uint serial, uint edges)
    {
        if (edges is 3 or 7 or > 10) throw ProtocolError((uint)Error.InvalidResizeEdge, $"invalid resize edge {edges}");
    }

    protected override void OnSetMaxSize(int width, int height)
    {
        if (width < 0 || height < 0) throw ProtocolError((uint)Error.InvalidSize, $"max size {width}x{height} is negative");
        _max = (width, height);
    }

    protected override void OnSetMinSize(int width, int height)
    {
        if (width < 0 || height < 0) throw ProtocolError((uint)Error.InvalidSize, $"min size {width}x{height} is negative");
        _min = (width, height);
    }

    // The layout decides window sizes: these states are refused by a configure with the state unchanged.
    protected override void OnSetMaximized() => ReconfigureIfMapped();
    protected override void OnUnsetMaximized() => ReconfigureIfMapped();
    protected override void OnSetFullscreen(WlOutput? output) => ReconfigureIfMapped();
    protected override void OnUnsetFullscreen() => ReconfigureIfMapped();
    protected override void OnSetMinimized() { }

    private void ReconfigureIfMapped()
    {
        if (Xdg.InitialCommitDone) Configure();
    }

    protected internal override void OnDestroyed()
    {
        if (Window is not null) Unmap();
    }
}

/// <summary>xdg_popup: placed by its positioner relative to the parent, drawn into the toplevel's window.</summary>
internal sealed class XdgPopupResource(WaylandClient client, uint id, uint version, XdgSurfaceResource xdg, XdgSurfaceResource? parent, PositionerState positioner)
    : XdgPopup(client, id, version)
{
    private PositionerState _positioner = positioner;

    public XdgSurfaceResource Xdg { get; } = xdg;
    public XdgSurfaceResource? Parent { get; private set; } = parent;
    /// <summary>Geometry relative to the parent's window geometry.</summary>
    public IntRect Placement { get; private set; }

    public void Configure()
    {
        Placement = PositionerResource.Place(_positioner, ConstraintArea());
        SendConfigure(Placement.X, Placement.Y, Placement.W, Placement.H);
        Xdg.SendConfigureNow();
    }

    /// <summary>The owning window's geometry in the parent's window-geometry coordinates.</summary>
    private IntRect ConstraintArea()
    {
        var top = Xdg.OwningToplevel();
        if (top?.Window is not { } w || Parent is null) return default;
        var parentOrigin = WaylandWindow.GeometryOriginOf(Parent, w);
        return parentOrigin is { } o ? new IntRect(w.GeometryX - o.X, w.GeometryY - o.Y, w.Width, w.Height) : default;
    }

    public void Refresh()
    {
        var top = Xdg.OwningToplevel();
        if (top is not null && top.Window is not null) top.Refresh();
    }

    protected override void OnGrab(WlSeat seat, uint serial) { } // no input devices: nothing to grab

    protected override void OnReposition(XdgPositioner positioner, uint token)
    {
        var p = ((PositionerResource)positioner).State;
        if (!p.IsComplete) throw Xdg.WmBase.ProtocolError((uint)XdgWmBase.Error.InvalidPositioner, "positioner without size or anchor rectangle");
        _positioner = p;
        SendRepositioned(token);
        Configure();
    }

    protected override void OnDestroy()
    {
        if (Xdg.Popups.Any(c => !c.IsDestroyed))
            throw Xdg.WmBase.ProtocolError((uint)XdgWmBase.Error.NotTheTopmostPopup, "a child popup is still open");
    }

    protected internal override void OnDestroyed()
    {
        Parent?.Popups.Remove(this);
        var top = Parent?.OwningToplevel();
        Parent = null;
        if (top?.Window is not null) top.Refresh();
    }
}
