using VirtioGpuHost.Compositor.Wayland.Protocol;
using VirtioGpuHost.Compositor.Wayland.Runtime;
using VirtioGpuHost.Compositor.Wayland.Wire;

namespace VirtioGpuHost.Compositor.Wayland.Protocols;

/// <summary>wl_compositor v5: surfaces and regions.</summary>
internal sealed class CompositorResource(WaylandClient client, uint id, uint version) : WlCompositor(client, id, version)
{
    public const uint AdvertisedVersion = 5;

    protected override void OnCreateSurface(uint id) => _ = new SurfaceResource(Client, id, Version);
    protected override void OnCreateRegion(uint id) => _ = new RegionResource(Client, id, 1);
}

/// <summary>
/// wl_region. Regions only feed opaque and input regions; the flattened window image needs
/// neither (opacity comes from the pixels, there is no input yet), so only the bounding box is kept.
/// </summary>
internal sealed class RegionResource(WaylandClient client, uint id, uint version) : WlRegion(client, id, version)
{
    public IntRect Bounds { get; private set; }
    protected override void OnAdd(int x, int y, int width, int height) => Bounds = Bounds.Union(IntRect.FromClient(x, y, width, height));
    protected override void OnSubtract(int x, int y, int width, int height) { }
}

/// <summary>A surface's double-buffered state (wl_surface pending / a sync subsurface's cache).</summary>
internal sealed class SurfaceState
{
    public bool Attached;
    public BufferResource? Buffer;
    public int Dx, Dy;
    public IntRect SurfaceDamage, BufferDamage;
    public int Scale = 1;
    public int Transform;
    public (double X, double Y, double W, double H)? ViewportSource;
    public (int W, int H)? ViewportDestination;
    public IntRect? WindowGeometry;
    public List<CallbackResource> Frames = [];
    public List<PresentationFeedbackResource> Feedbacks = [];

    /// <summary>Moves this state onto <paramref name="dst"/> (pending into a cache), as a later commit overrides an earlier one.</summary>
    public void MergeInto(SurfaceState dst)
    {
        if (Attached)
        {
            dst.Attached = true;
            dst.Buffer = Buffer;
            dst.Dx += Dx;
            dst.Dy += Dy;
        }
        dst.SurfaceDamage = dst.SurfaceDamage.Union(SurfaceDamage);
        dst.BufferDamage = dst.BufferDamage.Union(BufferDamage);
        dst.Scale = Scale;
        dst.Transform = Transform;
        dst.ViewportSource = ViewportSource;
        dst.ViewportDestination = ViewportDestination;
        if (WindowGeometry is not null) dst.WindowGeometry = WindowGeometry;
        dst.Frames.AddRange(Frames);
        dst.Feedbacks.AddRange(Feedbacks);
        ResetTransient();
    }

    /// <summary>Clears what applies once (buffer, damage, callbacks); scale, transform and viewport persist.</summary>
    public void ResetTransient()
    {
        Attached = false;
        Buffer = null;
        Dx = Dy = 0;
        SurfaceDamage = BufferDamage = default;
        WindowGeometry = null;
        Frames = [];
        Feedbacks = [];
    }
}

/// <summary>The role a surface took (a surface has at most one, for life).</summary>
internal interface ISurfaceRole
{
    string RoleName { get; }
    /// <summary>Checks before the pending state is applied (xdg: configured before a buffer).</summary>
    void BeforeCommit(SurfaceState pending);
}

/// <summary>The role of a tree's root surface that turns its commits into window updates (xdg_surface).</summary>
internal interface ITreeHost
{
    /// <summary><paramref name="committed"/> (the root or a descendant) applied new state; tree structure may have changed too.</summary>
    void TreeCommitted(SurfaceResource committed);
}

/// <summary>
/// wl_surface. The current content is a copy of the last buffer's pixels (premultiplied
/// B8G8R8A8, xrgb forced opaque), refreshed in the damaged area at each commit, so the
/// client's buffer is released as soon as the commit is applied.
/// </summary>
internal sealed class SurfaceResource : WlSurface
{
    private readonly SurfaceState _pending = new();

    public SurfaceResource(WaylandClient client, uint id, uint version) : base(client, id, version)
    {
        ChildrenPending.Add(this);
        ChildrenCurrent.Add(this);
    }

    // Current state.
    public byte[]? Pixels { get; private set; }
    public int BufferWidth { get; private set; }
    public int BufferHeight { get; private set; }
    public int Scale { get; private set; } = 1;
    public int Transform { get; private set; }
    public (double X, double Y, double W, double H)? ViewportSource { get; private set; }
    public (int W, int H)? ViewportDestination { get; private set; }
    /// <summary>Size in surface coordinates (after scale, transform and viewport).</summary>
    public int Width { get; private set; }
    public int Height { get; private set; }
    public bool HasContent => Pixels is not null;
    /// <summary>Damage of the last applied commits in surface coordinates, until the window takes it.</summary>
    public IntRect NewDamage { get; set; }
    /// <summary>xdg_surface.set_window_geometry as last committed (null: not set).</summary>
    public IntRect? WindowGeometry { get; private set; }

    public ISurfaceRole? Role { get; private set; }
    public SubsurfaceResource? Subsurface => Role as SubsurfaceResource;
    public ViewportResource? Viewport { get; set; }
    /// <summary>Stacking order of the subsurfaces with this surface itself among them (wl_subsurface.place_above/below).</summary>
    public List<SurfaceResource> ChildrenPending { get; } = [];
    public List<SurfaceResource> ChildrenCurrent { get; } = [];

    public void SetRole(ISurfaceRole role, uint errorCode, WaylandResource errorObject)
    {
        if (Role != role && !CanTakeRole(role.RoleName))
            throw errorObject.ProtocolError(errorCode, $"{this} already has the role {Role!.RoleName}");
        Role = role;
    }

    /// <summary>No role yet, or the same role again after its role object was destroyed.</summary>
    public bool CanTakeRole(string roleName) => Role is null || Role is DefunctRole d && d.RoleName == roleName;

    public void ClearRole(ISurfaceRole role)
    {
        // The surface keeps its role type for life, but the role object is gone.
        if (Role == role) Role = new DefunctRole(role.RoleName);
    }

    /// <summary>The topmost surface of the subsurface tree this surface belongs to.</summary>
    public SurfaceResource Root
    {
        get
        {
            var s = this;
            for (int depth = 0; s.Subsurface is { Parent: { } p } && depth < 1000; depth++) s = p;
            return s;
        }
    }

    /// <summary>True when a commit of this surface is cached until the parent commits (sync mode, own or inherited).</summary>
    public bool IsEffectivelySync
    {
        get
        {
            for (var s = this; s.Subsurface is { Parent: { } p } sub; s = p)
                if (sub.Sync) return true;
            return false;
        }
    }

    protected override void OnAttach(WlBuffer? buffer, int x, int y)
    {
        if (Version >= 5 && (x != 0 || y != 0))
            throw ProtocolError((uint)Error.InvalidOffset, $"attach with offset {x},{y} (use wl_surface.offset)");
        _pending.Attached = true;
        _pending.Buffer = (BufferResource?)buffer;
        _pending.Dx = x;
        _pending.Dy = y;
    }

    protected override void OnOffset(int x, int y)
    {
        _pending.Dx = x;
        _pending.Dy = y;
    }

    protected override void OnDamage(int x, int y, int width, int height) =>
        _pending.SurfaceDamage = _pending.SurfaceDamage.Union(IntRect.FromClient(x, y, width, height));

    protected override void OnDamageBuffer(int x, int y, int width, int height) =>
        _pending.BufferDamage = _pending.BufferDamage.Union(IntRect.FromClient(x, y, width, height));

    protected override void OnFrame(uint callback) => _pending.Frames.Add(new CallbackResource(Client, callback));

    protected override void OnSetOpaqueRegion(WlRegion? region) { }
    protected override void OnSetInputRegion(WlRegion? region) { }

    protected override void OnSetBufferTransform(int transform)
    {
        if (transform < 0 || transform > 7) throw ProtocolError((uint)Error.InvalidTransform, $"buffer transform {transform} is not a wl_output.transform");
        _pending.Transform = transform;
    }

    protected override void OnSetBufferScale(int scale)
    {
        if (scale < 1) throw ProtocolError((uint)Error.InvalidScale, $"buffer scale {scale} is not positive");
        _pending.Scale = scale;
    }

    internal void SetPendingViewport((double, double, double, double)? source, (int, int)? destination)
    {
        _pending.ViewportSource = source;
        _pending.ViewportDestination = destination;
    }

    internal void SetPendingWindowGeometry(IntRect g) => _pending.WindowGeometry = g;

    internal void AddPendingFeedback(PresentationFeedbackResource f) => _pending.Feedbacks.Add(f);

    private SurfaceState? _cached;

    protected override void OnCommit()
    {
        Role?.BeforeCommit(_pending);
        if (IsEffectivelySync)
        {
            _pending.MergeInto(_cached ??= new SurfaceState { Scale = Scale, Transform = Transform, ViewportSource = ViewportSource, ViewportDestination = ViewportDestination });
            return;
        }
        ApplyTree(_pending);
        RootChanged();
    }

    /// <summary>Tells the role of this tree's root (an xdg_surface) that state was applied.</summary>
    internal void RootChanged() => (Root.Role as ITreeHost)?.TreeCommitted(this);

    /// <summary>Applies <paramref name="state"/>, then the stacking/positions of the children and their cached commits.</summary>
    private void ApplyTree(SurfaceState state)
    {
        Apply(state);
        ChildrenCurrent.Clear();
        ChildrenCurrent.AddRange(ChildrenPending);
        foreach (var child in ChildrenCurrent)
        {
            if (child == this || child.Subsurface is not { } sub) continue;
            sub.ApplyPosition();
            if (child._cached is { } c && child.IsEffectivelySync)
            {
                child._cached = null;
                child.ApplyTree(c);
            }
            else
            {
                child.ApplyChildrenOnly();
            }
        }
    }

    private void ApplyChildrenOnly()
    {
        foreach (var child in ChildrenCurrent)
        {
            if (child == this || child.Subsurface is not { } sub) continue;
            sub.ApplyPosition();
            if (child._cached is { } c && child.IsEffectivelySync)
            {
                child._cached = null;
                child.ApplyTree(c);
            }
        }
    }

    /// <summary>A desync'ed subsurface applies its cache at once (wl_subsurface.set_desync).</summary>
    internal void FlushCacheIfDesync()
    {
        if (_cached is { } c && !IsEffectivelySync)
        {
            _cached = null;
            ApplyTree(c);
            RootChanged();
        }
    }

    private void Apply(SurfaceState st)
    {
        int oldW = Width, oldH = Height;
        bool hadContent = HasContent;
        Scale = st.Scale;
        Transform = st.Transform;
        ViewportSource = st.ViewportSource;
        ViewportDestination = st.ViewportDestination;
        if (st.WindowGeometry is { } g) WindowGeometry = g;
        IntRect bufferDamage = default;
        bool wholeSurface = false;
        if (st.Attached)
        {
            var b = st.Buffer;
            if (b is null)
            {
                Pixels = null;
                BufferWidth = BufferHeight = 0;
            }
            else if (!b.IsDestroyed)
            {
                if (b.Width % Scale != 0 || b.Height % Scale != 0)
                    throw ProtocolError((uint)Error.InvalidSize, $"buffer {b.Width}x{b.Height} is not a multiple of scale {Scale}");
                bool resized = Pixels is null || b.Width != BufferWidth || b.Height != BufferHeight;
                if (resized)
                {
                    Pixels = new byte[checked(b.Width * b.Height * 4)];
                    BufferWidth = b.Width;
                    BufferHeight = b.Height;
                    bufferDamage = new IntRect(0, 0, b.Width, b.Height);
                    wholeSurface = true;
                }
                else
                {
                    bufferDamage = st.BufferDamage.Union(SurfaceToBufferBounds(st.SurfaceDamage));
                }
                if (!b.CopyTo(Pixels!, bufferDamage))
                    throw b.ProtocolError((uint)WlShm.Error.InvalidFd, "error accessing SHM buffer (the pool file shrank)");
                b.SendRelease();
            }
        }
        ComputeSize();
        if (Width != oldW || Height != oldH || hadContent != HasContent) wholeSurface = true;
        var damage = wholeSurface ? new IntRect(0, 0, Width, Height) : st.SurfaceDamage.Union(BufferToSurfaceBounds(bufferDamage));
        NewDamage = NewDamage.Union(damage.Intersect(new IntRect(0, 0, Width, Height)));
        Client.Server.Frames.Queue(st.Frames);
        Client.Server.Frames.QueueFeedback(this, st.Feedbacks);
        st.ResetTransient();
    }

    private void ComputeSize()
    {
        if (!HasContent) { Width = Height = 0; return; }
        int w = BufferWidth / Scale, h = BufferHeight / Scale;
        if ((Transform & 1) == 1) (w, h) = (h, w);
        if (ViewportSource is { } src)
        {
            if (src.X < 0 || src.Y < 0 || src.X + src.W > w || src.Y + src.H > h)
                throw (Viewport ?? (WaylandResource)this).ProtocolError((uint)WpViewport.Error.OutOfBuffer, $"source rectangle {src} extends outside the {w}x{h} buffer");
        }
        if (ViewportDestination is { } dst) { w = dst.W; h = dst.H; }
        else if (ViewportSource is { } s2)
        {
            if (s2.W != Math.Floor(s2.W) || s2.H != Math.Floor(s2.H))
                throw (Viewport ?? (WaylandResource)this).ProtocolError((uint)WpViewport.Error.BadSize, $"source size {s2.W}x{s2.H} is not integer and no destination is set");
            w = (int)s2.W;
            h = (int)s2.H;
        }
        Width = w;
        Height = h;
    }

    /// <summary>Surface damage as a buffer rectangle (bounds; a transformed or viewported surface damages all).</summary>
    private IntRect SurfaceToBufferBounds(IntRect d)
    {
        if (d.IsEmpty) return d;
        if (Transform != 0 || ViewportSource is not null || ViewportDestination is not null) return new IntRect(0, 0, BufferWidth, BufferHeight);
        return IntRect.FromClient(d.X * Scale, d.Y * Scale, d.W * Scale, d.H * Scale);
    }

    private IntRect BufferToSurfaceBounds(IntRect d)
    {
        if (d.IsEmpty) return d;
        if (Transform != 0 || ViewportSource is not null || ViewportDestination is not null) return new IntRect(0, 0, Width, Height);
        int x1 = d.X / Scale, y1 = d.Y / Scale;
        int x2 = (int)((d.Right + Scale - 1) / Scale), y2 = (int)((d.Bottom + Scale - 1) / Scale);
        return new IntRect(x1, y1, x2 - x1, y2 - y1);
    }

    /// <summary>Maps a point in surface coordinates to buffer pixel coordinates (viewport, scale, transform).</summary>
    public (int X, int Y) SurfaceToBuffer(double sx, double sy)
    {
        int lw = BufferWidth / Scale, lh = BufferHeight / Scale; // logical size of the untransformed buffer
        int tw = (Transform & 1) == 1 ? lh : lw, th = (Transform & 1) == 1 ? lw : lh; // after the transform
        double vx = sx, vy = sy;
        if (ViewportSource is { } src)
        {
            vx = src.X + sx * src.W / Width;
            vy = src.Y + sy * src.H / Height;
        }
        else if (ViewportDestination is not null)
        {
            vx = sx * tw / Width;
            vy = sy * th / Height;
        }
        // weston_transformed_coord, with the transformed surface's size.
        double bx, by;
        switch (Transform)
        {
            default: bx = vx; by = vy; break;
            case 4: bx = tw - vx; by = vy; break;           // flipped
            case 1: bx = th - vy; by = vx; break;           // 90
            case 5: bx = vy; by = vx; break;                // flipped-90
            case 2: bx = tw - vx; by = th - vy; break;      // 180
            case 6: bx = vx; by = th - vy; break;           // flipped-180
            case 3: bx = vy; by = tw - vx; break;           // 270
            case 7: bx = th - vy; by = tw - vx; break;      // flipped-270
        }
        int px = (int)Math.Floor(bx * Scale), py = (int)Math.Floor(by * Scale);
        return (Math.Clamp(px, 0, BufferWidth - 1), Math.Clamp(py, 0, BufferHeight - 1));
    }

    /// <summary>True when the surface maps 1:1 onto its buffer (rows can be copied).</summary>
    public bool IsIdentityMapped => Scale == 1 && Transform == 0 && ViewportSource is null && ViewportDestination is null;

    protected internal override void OnDestroyed()
    {
        foreach (var f in _pending.Frames) f.Destroy();
        foreach (var f in _pending.Feedbacks) f.Discard();
        if (_cached is not null) { foreach (var f in _cached.Frames) f.Destroy(); foreach (var f in _cached.Feedbacks) f.Discard(); }
        Client.Server.Frames.SurfaceGone(this);
        Viewport?.SurfaceGone();
        // Children lose their parent; this surface leaves its parent's stack.
        foreach (var c in ChildrenPending.ToList()) if (c != this) c.Subsurface?.ParentGone();
        foreach (var c in ChildrenCurrent.ToList()) if (c != this) c.Subsurface?.ParentGone();
        if (Role is ISurfaceRoleWithSurface r) r.SurfaceGone();
        Pixels = null;
    }
}

/// <summary>The role object's wl_surface went away first.</summary>
internal interface ISurfaceRoleWithSurface
{
    void SurfaceGone();
}

internal sealed class DefunctRole(string name) : ISurfaceRole
{
    public string RoleName => name;
    public void BeforeCommit(SurfaceState pending) { }
}

/// <summary>wl_subcompositor.</summary>
internal sealed class SubcompositorResource(WaylandClient client, uint id, uint version) : WlSubcompositor(client, id, version)
{
    protected override void OnGetSubsurface(uint id, WlSurface surface, WlSurface parent)
    {
        var s = (SurfaceResource)surface;
        var p = (SurfaceResource)parent;
        if (s == p) throw ProtocolError((uint)Error.BadSurface, $"{s} cannot be its own parent");
        if (!s.CanTakeRole("wl_subsurface")) throw ProtocolError((uint)Error.BadSurface, $"{s} already has the role {s.Role!.RoleName}");
        for (var a = p; a is not null; a = a.Subsurface?.Parent)
            if (a == s) throw ProtocolError((uint)Error.BadSurface, $"{p} is a descendant of {s}");
        var sub = new SubsurfaceResource(Client, id, Version, s, p);
        s.SetRole(sub, (uint)Error.BadSurface, this);
    }
}

/// <summary>wl_subsurface: position, stacking, sync/desync.</summary>
internal sealed class SubsurfaceResource : WlSubsurface, ISurfaceRole, ISurfaceRoleWithSurface
{
    private (int X, int Y) _pendingPos;

    public SubsurfaceResource(WaylandClient client, uint id, uint version, SurfaceResource surface, SurfaceResource parent) : base(client, id, version)
    {
        Surface = surface;
        Parent = parent;
        parent.ChildrenPending.Add(surface);
        parent.ChildrenCurrent.Add(surface); // on top of the stack at once (weston does the same)
    }

    public string RoleName => "wl_subsurface";
    public SurfaceResource? Surface { get; private set; }
    public SurfaceResource? Parent { get; private set; }
    public bool Sync { get; private set; } = true;
    public int X { get; private set; }
    public int Y { get; private set; }

    public void BeforeCommit(SurfaceState pending) { }

    internal void ApplyPosition() => (X, Y) = _pendingPos;

    protected override void OnSetPosition(int x, int y) => _pendingPos = (x, y);

    protected override void OnPlaceAbove(WlSurface sibling) => Restack((SurfaceResource)sibling, above: true);
    protected override void OnPlaceBelow(WlSurface sibling) => Restack((SurfaceResource)sibling, above: false);

    private void Restack(SurfaceResource sibling, bool above)
    {
        if (Parent is null || Surface is null) throw ProtocolError((uint)Error.BadSurface, "the subsurface has no parent");
        var list = Parent.ChildrenPending;
        if (sibling == Surface || !list.Contains(sibling))
            throw ProtocolError((uint)Error.BadSurface, $"{sibling} is not a sibling or the parent");
        list.Remove(Surface);
        int at = list.IndexOf(sibling);
        list.Insert(above ? at + 1 : at, Surface);
    }

    protected override void OnSetSync() => Sync = true;

    protected override void OnSetDesync()
    {
        Sync = false;
        Surface?.FlushCacheIfDesync();
    }

    internal void ParentGone()
    {
        Detach();
    }

    public void SurfaceGone()
    {
        Detach();
        Surface = null;
    }

    private void Detach()
    {
        if (Parent is { } p && Surface is { } s)
        {
            p.ChildrenPending.Remove(s);
            p.ChildrenCurrent.Remove(s);
            Parent = null;
            p.RootChanged(); // the window redraws without it
        }
        Parent = null;
    }

    protected internal override void OnDestroyed()
    {
        Detach();
        Surface?.ClearRole(this);
        Surface = null;
    }
}
