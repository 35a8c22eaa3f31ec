using VirtioGpuHost.Compositor.Core.Geometry;
using VirtioGpuHost.Compositor.Rendering.Vulkan.Native;

namespace VirtioGpuHost.Compositor.Rendering.Vulkan;

/// <summary>
/// A Vulkan texture: a storage buffer the composite shader reads 32-bit words from.
/// <list type="bullet">
/// <item>An imported surface, zero copy: the pages holding the view (rounded out to the
/// device's import alignment) imported with VK_EXT_external_memory_host; the shader reads the
/// guest's memory in place at the view's offset and stride. An update to a view inside the same
/// pages (or the previous import: double-buffered guests) imports nothing.</item>
/// <item>A copied surface (no import: misaligned view, device without the extension, or the
/// option off): a packed copy; updates copy only their damage.</item>
/// <item>A host texture (<see cref="IRenderer.CreateTexture"/>): a packed copy made once.</item>
/// </list>
/// </summary>
public sealed class VulkanTexture : ITexture
{
    private readonly VulkanRenderer _owner;
    private GpuBuffer? _copy;
    private readonly List<GpuBuffer> _imports = new(2); // most recent last
    private SizeI _copySize;

    internal VulkanTexture(VulkanRenderer owner, in SurfaceView view)
    {
        _owner = owner;
        Rebind(view, null);
    }

    internal VulkanTexture(VulkanRenderer owner, SizeI size, ReadOnlySpan<uint> premultipliedBgra)
    {
        if (size.IsEmpty) throw new ArgumentOutOfRangeException(nameof(size), size, "a texture needs a positive size");
        long count = (long)size.Width * size.Height;
        if (premultipliedBgra.Length < count) throw new ArgumentException($"{size} needs {count} pixels, got {premultipliedBgra.Length}", nameof(premultipliedBgra));
        _owner = owner;
        _copy = owner.Device.Allocate((ulong)count * 4);
        _copySize = size;
        premultipliedBgra[..(int)count].CopyTo(_copy.Words);
        Size = size;
        Layout = SourceLayout.BgraPremultiplied;
        Buffer = _copy;
        StrideWords = size.Width;
        ResetTiles();
        Tiles?.ClassifyUnknown(_copy, 0, size.Width); // a host texture never changes: classify it now, while it is in cache
    }

    internal VulkanRenderer Owner => _owner;

    public SizeI Size { get; private set; }
    public bool IsOpaque => Layout != SourceLayout.BgraPremultiplied;
    public bool IsDisposed { get; private set; }

    /// <summary>Whether the shader reads the surface's own memory (no copy).</summary>
    public bool IsZeroCopy => Buffer is { Imported: true };

    internal SourceLayout Layout { get; private set; }
    internal GpuBuffer? Buffer { get; private set; }

    /// <summary>Where pixel (0, 0) is in <see cref="Buffer"/>, in words.</summary>
    internal int BaseWord { get; private set; }

    internal int StrideWords { get; private set; }

    /// <summary>Which 16x16 blocks are transparent or opaque (premultiplied textures only; null when off).</summary>
    internal TileClasses? Tiles { get; private set; }

    /// <summary>Counts updates; a pass classifies unknown blocks only when nothing changed since the texture was last drawn.</summary>
    private long _generation, _drawnGeneration = -1;

    /// <summary>Points the texture at <paramref name="view"/>; <paramref name="damage"/> null = everything changed.</summary>
    internal void Rebind(in SurfaceView view, Region? damage)
    {
        ObjectDisposedException.ThrowIf(IsDisposed, this);
        Validate(view);
        var before = (Size, Layout);
        if (!TryImport(view)) CopyFrom(view, damage);
        _generation++;
        if (damage is not null && Tiles is { } tiles && before == (Size, Layout)) tiles.Invalidate(damage);
        else ResetTiles();
    }

    /// <summary>
    /// Called when a pass is about to draw the texture: its unknown blocks are classified if the
    /// texture did not change since it was last drawn (one updated every frame is never scanned;
    /// its unknown blocks are simply blended).
    /// </summary>
    internal void PrepareTiles()
    {
        if (Tiles is { HasUnknown: true } tiles && _generation == _drawnGeneration) tiles.ClassifyUnknown(Buffer!, BaseWord, StrideWords);
        _drawnGeneration = _generation;
    }

    private void ResetTiles() =>
        Tiles = Layout == SourceLayout.BgraPremultiplied && _owner.Options.TileMaps ? new TileClasses(Size.Width, Size.Height) : null;

    private bool TryImport(in SurfaceView view)
    {
        var device = _owner.Device;
        ulong a = device.HostImportAlignment;
        if (!_owner.Options.ImportSurfaces || a == 0 || view.Address % 4 != 0 || view.Stride % 4 != 0) return false;
        ulong address = (ulong)view.Address;
        ulong start = address & ~(a - 1);
        ulong end = address + (ulong)view.Stride * (ulong)(view.Height - 1) + (ulong)view.Width * 4;
        ulong length = (end - start + a - 1) & ~(a - 1);
        if ((address - start) / 4 + (ulong)view.Stride / 4 * (ulong)(view.Height - 1) + (ulong)view.Width > int.MaxValue) return false;

        GpuBuffer? buffer = null;
        for (int i = _imports.Count - 1; i >= 0; i--)
        {
            var b = _imports[i];
            if ((ulong)b.Mapped <= start && start + length <= (ulong)b.Mapped + b.Size)
            {
                buffer = b;
                _imports.RemoveAt(i);
                _imports.Add(b);
                break;
            }
        }
        if (buffer is null)
        {
            buffer = device.Import((nint)start, length);
            if (buffer is null) return false;
            _imports.Add(buffer);
            while (_imports.Count > 2)
            {
                device.Free(_imports[0]);
                _imports.RemoveAt(0);
            }
        }
        device.Free(_copy);
        _copy = null;
        Buffer = buffer;
        BaseWord = (int)((address - (ulong)buffer.Mapped) / 4);
        StrideWords = view.Stride / 4;
        Size = new SizeI(view.Width, view.Height);
        Layout = view.Layout;
        return true;
    }

    private void CopyFrom(in SurfaceView view, Region? damage)
    {
        var device = _owner.Device;
        var size = new SizeI(view.Width, view.Height);
        if (_copy is null || _copySize != size || Buffer != _copy)
        {
            device.Free(_copy);
            _copy = device.Allocate((ulong)size.Width * (ulong)size.Height * 4);
            _copySize = size;
            damage = null; // a new copy: everything
        }
        foreach (var b in _imports) device.Free(b);
        _imports.Clear();
        int stride = size.Width * 4;
        if (damage is null)
        {
            _copy.CopyRect(view.Address, view.Stride, stride, 0, 0, size.Width, size.Height);
        }
        else
        {
            foreach (var r in damage.Rects)
            {
                var c = r.Intersect(size.ToRect());
                if (!c.IsEmpty) _copy.CopyRect(view.Address, view.Stride, stride, c.X, c.Y, c.Width, c.Height);
            }
        }
        Buffer = _copy;
        BaseWord = 0;
        StrideWords = size.Width;
        Size = size;
        Layout = view.Layout;
    }

    internal static void Validate(in SurfaceView view)
    {
        if (view.Address == 0) throw new ArgumentException("the surface has no memory", nameof(view));
        if (view.Width <= 0 || view.Height <= 0) throw new ArgumentException($"the surface size {view.Width}x{view.Height} is empty", nameof(view));
        if (view.Stride < (long)view.Width * 4) throw new ArgumentException($"stride {view.Stride} is below width {view.Width} x 4", nameof(view));
        if (!Enum.IsDefined(view.Layout)) throw new ArgumentException($"unknown layout {view.Layout}", nameof(view));
    }

    public void Dispose()
    {
        if (IsDisposed) return;
        IsDisposed = true;
        var device = _owner.Device;
        device.Free(_copy);
        _copy = null;
        foreach (var b in _imports) device.Free(b);
        _imports.Clear();
        Buffer = null;
        Tiles = null;
    }
}
