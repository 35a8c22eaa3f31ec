using VirtioGpuHost.Compositor.Wayland.Runtime;
using System.Runtime.InteropServices;
using VirtioGpuHost.Compositor.Wayland.Protocols;
using VirtioGpuHost.Device.Display;
using VirtioGpuHost.Device.Wire;
using VirtioGpuHost.GuestMemory;

namespace VirtioGpuHost.Compositor.Wayland;

/// <summary>
/// A mapped xdg_toplevel: its surface tree (subsurfaces in stacking order, popups on top)
/// flattened into one premultiplied B8G8R8A8 image of the window geometry. Written on the
/// server thread, read from any thread.
/// </summary>
public sealed class WaylandWindow
{
    private static long s_nextId;
    private readonly object _sync = new();
    private readonly WindowImage _image = new();
    private readonly int _maxSize;
    private List<(SurfaceResource, int, int, int, int)> _lastLayers = [];
    private Dictionary<XdgSurfaceResource, (int X, int Y)> _geometryOrigins = [];
    private int _width, _height;
    private VirtioGpuRect _lastDamage;
    private long _commits;

    internal WaylandWindow(string owner, int maxSize)
    {
        Id = Interlocked.Increment(ref s_nextId);
        Owner = owner;
        _maxSize = maxSize;
    }

    /// <summary>Unique, never reused.</summary>
    public long Id { get; }
    /// <summary>The VM (or host) the client belongs to.</summary>
    public string Owner { get; }
    public string? AppId { get; internal set; }

    /// <summary>
    /// Whether the window's client answers xdg_wm_base pings in time: an idle client that answers
    /// is alive though it draws nothing; a hung one (or a frozen guest behind a cross-domain
    /// channel) stops answering.
    /// </summary>
    public bool Responsive { get => Volatile.Read(ref _responsive); internal set => Volatile.Write(ref _responsive, value); }
    private bool _responsive = true;

    internal WaylandClient? Client { get; init; }
    public string? Title { get; internal set; }
    /// <summary>Window geometry in pixels: xdg_surface.set_window_geometry if set, else the surface tree's extent.</summary>
    public int Width { get { lock (_sync) return _width; } }
    public int Height { get { lock (_sync) return _height; } }
    /// <summary>The current flattened image (B8G8R8A8Unorm = wl_shm argb8888, premultiplied).</summary>
    public IPixelSource Pixels => _image;
    /// <summary>Content commits applied so far.</summary>
    public long Commits => Interlocked.Read(ref _commits);
    /// <summary>Union of the damage of the last commit, in window coordinates.</summary>
    public VirtioGpuRect LastDamage { get { lock (_sync) return _lastDamage; } }

    /// <summary>Where the window geometry's top-left lies in the root surface's coordinates.</summary>
    internal int GeometryX { get; private set; }
    internal int GeometryY { get; private set; }

    /// <summary>Asks the client to close the window (xdg_toplevel.close); thread-safe.</summary>
    public void RequestClose() => CloseRequested?.Invoke();
    internal Action? CloseRequested { get; set; }

    public override string ToString() => $"window {Id} ({Owner}, {AppId ?? "?"}: {Title ?? ""})";

    /// <summary>The geometry origin of an xdg_surface of this window in root-surface coordinates, as of the last render.</summary>
    internal static (int X, int Y)? GeometryOriginOf(XdgSurfaceResource x, WaylandWindow w) =>
        w._geometryOrigins.TryGetValue(x, out var o) ? o : null;

    /// <summary>Flattens the tree into a fresh image; the previous one stays valid for readers holding it.</summary>
    internal void Render(XdgToplevelResource top)
    {
        var root = top.Xdg.Surface!;
        var layers = new List<(SurfaceResource S, int X, int Y, int W, int H)>();
        Collect(root, 0, 0, layers);
        IntRect extents = default;
        foreach (var l in layers) extents = extents.Union(new IntRect(l.X, l.Y, l.W, l.H));
        var geometry = top.Xdg.Geometry(extents);
        int w = Math.Clamp(geometry.W, 1, _maxSize), h = Math.Clamp(geometry.H, 1, _maxSize);
        var origins = new Dictionary<XdgSurfaceResource, (int X, int Y)> { [top.Xdg] = (geometry.X, geometry.Y) };
        AddPopups(top.Xdg, layers, origins);

        var damage = default(IntRect);
        foreach (var l in layers)
        {
            damage = damage.Union(l.S.NewDamage.Offset(l.X - geometry.X, l.Y - geometry.Y));
            l.S.NewDamage = default;
        }
        bool sameLayout = layers.Count == _lastLayers.Count && layers.SequenceEqual(_lastLayers) && w == _width && h == _height;
        if (!sameLayout) damage = new IntRect(0, 0, w, h);
        damage = damage.Intersect(new IntRect(0, 0, w, h));

        _image.Draw(w, h, pixels =>
        {
            foreach (var l in layers) DrawLayer(pixels, w, h, l.S, l.X - geometry.X, l.Y - geometry.Y, l.W, l.H, first: l == layers[0]);
        });
        _lastLayers = layers;
        _geometryOrigins = origins;
        GeometryX = geometry.X;
        GeometryY = geometry.Y;
        lock (_sync)
        {
            _width = w;
            _height = h;
            _lastDamage = new VirtioGpuRect((uint)damage.X, (uint)damage.Y, (uint)Math.Max(0, damage.W), (uint)Math.Max(0, damage.H));
        }
        Interlocked.Increment(ref _commits);
    }

    /// <summary>The mapped surfaces of a subsurface tree in drawing order (an unmapped parent hides its children).</summary>
    private static void Collect(SurfaceResource s, int x, int y, List<(SurfaceResource, int, int, int, int)> layers, int depth = 0)
    {
        if (!s.HasContent || depth > 64) return;
        foreach (var c in s.ChildrenCurrent)
        {
            if (c == s) layers.Add((s, x, y, s.Width, s.Height));
            else if (c.Subsurface is { } sub) Collect(c, x + sub.X, y + sub.Y, layers, depth + 1);
        }
    }

    private static void AddPopups(XdgSurfaceResource parent, List<(SurfaceResource, int, int, int, int)> layers, Dictionary<XdgSurfaceResource, (int X, int Y)> origins, int depth = 0)
    {
        if (depth > 16) return;
        var po = origins[parent];
        foreach (var p in parent.Popups)
        {
            if (p.IsDestroyed || p.Xdg.Surface is not { HasContent: true } ps) continue;
            var popupLayers = new List<(SurfaceResource, int, int, int, int)>();
            Collect(ps, 0, 0, popupLayers);
            IntRect ext = default;
            foreach (var l in popupLayers) ext = ext.Union(new IntRect(l.Item2, l.Item3, l.Item4, l.Item5));
            var g = p.Xdg.Geometry(ext);
            // The popup's geometry goes where the positioner placed it; its surfaces follow.
            int ox = po.X + p.Placement.X, oy = po.Y + p.Placement.Y;
            origins[p.Xdg] = (ox, oy);
            foreach (var l in popupLayers) layers.Add((l.Item1, l.Item2 + ox - g.X, l.Item3 + oy - g.Y, l.Item4, l.Item5));
            AddPopups(p.Xdg, layers, origins, depth + 1);
        }
    }

    private static void DrawLayer(Span<uint> dst, int w, int h, SurfaceResource s, int x, int y, int sw, int sh, bool first)
    {
        var area = new IntRect(x, y, sw, sh).Intersect(new IntRect(0, 0, w, h));
        if (area.IsEmpty || s.Pixels is null) return;
        var src = MemoryMarshal.Cast<byte, uint>(s.Pixels.AsSpan());
        int bw = s.BufferWidth;
        if (s.IsIdentityMapped)
        {
            for (int row = area.Y; row < area.Y + area.H; row++)
            {
                var from = src.Slice((row - y) * bw + (area.X - x), area.W);
                var to = dst.Slice(row * w + area.X, area.W);
                if (first) from.CopyTo(to); // over a cleared image, source-over is a copy
                else PixelOps.BlendOver(from, to);
            }
            return;
        }
        for (int row = area.Y; row < area.Y + area.H; row++)
        {
            var to = dst.Slice(row * w + area.X, area.W);
            for (int i = 0; i < area.W; i++)
            {
                var (bx, by) = s.SurfaceToBuffer(area.X - x + i + 0.5, row - y + 0.5);
                uint p = src[by * bw + bx];
                to[i] = first || (p >> 24) == 255 ? p : PixelOps.BlendPixel(p, to[i]);
            }
        }
    }

    /// <summary>The window is gone: its images are freed once no reader holds them.</summary>
    internal void Release() => _image.Release();
}

/// <summary>
/// The window's pixels, double-buffered: a new frame is drawn into a buffer no reader holds
/// (the spare if it is free, else a new one), then published under the lock. A reader that
/// acquired the previous image keeps a reference and never sees it written.
/// </summary>
internal sealed class WindowImage : IPixelSource
{
    private readonly object _sync = new();
    private MemoryBlock? _front, _spare;
    private GpuSurface? _surface;
    private bool _released;

    public GpuSurface? AcquireCurrent()
    {
        lock (_sync)
        {
            if (_released || _surface is null) return null;
            _surface.Memory.AddRef();
            return _surface;
        }
    }

    public delegate void DrawAction(Span<uint> pixels);

    public unsafe void Draw(int width, int height, DrawAction draw)
    {
        ulong bytes = (ulong)width * (ulong)height * 4;
        MemoryBlock target;
        lock (_sync)
        {
            if (_released) return;
            if (_spare is not null && _spare.IsExclusive && _spare.Length == bytes) { target = _spare; _spare = null; }
            else
            {
                _spare?.Release();
                _spare = null;
                target = NativeBlock.Allocate(bytes, clear: false);
            }
        }
        var span = new Span<uint>((void*)target.Address, checked(width * height));
        span.Clear();
        draw(span);
        lock (_sync)
        {
            if (_released) { target.Release(); return; }
            _spare = _front;
            _front = target;
            _surface = new GpuSurface(target, 0, (uint)width, (uint)height, (uint)width * 4, VirtioGpuFormat.B8G8R8A8Unorm) { Source = this };
        }
    }

    public void Release()
    {
        lock (_sync)
        {
            if (_released) return;
            _released = true;
            _front?.Release();
            _spare?.Release();
            _front = _spare = null;
            _surface = null;
        }
    }
}
