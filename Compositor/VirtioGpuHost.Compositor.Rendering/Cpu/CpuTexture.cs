using System.Runtime.InteropServices;
using VirtioGpuHost.Compositor.Core.Geometry;

namespace VirtioGpuHost.Compositor.Rendering.Cpu;

/// <summary>
/// A CPU texture: either a view of someone else's pixels (an imported surface, zero copy: updating
/// it only rebinds address, size, stride and layout) or a premultiplied BGRA copy it owns.
/// Premultiplied textures also keep a <see cref="TileMap"/> (unless the renderer's options turn
/// it off), rescanned only where an update's damage says pixels changed.
/// </summary>
public sealed unsafe class CpuTexture : ITexture
{
    private SurfaceView _view;
    private void* _owned;

    internal CpuTexture(CpuRenderer owner, in SurfaceView view)
    {
        Validate(view);
        Owner = owner;
        _view = view;
        ResetTiles();
    }

    internal CpuTexture(CpuRenderer owner, SizeI size, ReadOnlySpan<uint> premultipliedBgra)
    {
        if (size.IsEmpty) throw new ArgumentOutOfRangeException(nameof(size), size, "a texture needs a positive size");
        long count = (long)size.Width * size.Height;
        if (premultipliedBgra.Length < count)
            throw new ArgumentException($"{size} needs {count} pixels, got {premultipliedBgra.Length}", nameof(premultipliedBgra));
        Owner = owner;
        _owned = NativeMemory.AlignedAlloc((nuint)(count * 4), 64);
        premultipliedBgra[..(int)count].CopyTo(new Span<uint>(_owned, (int)count));
        _view = new SurfaceView((nint)_owned, size.Width, size.Height, size.Width * 4, SourceLayout.BgraPremultiplied);
        ResetTiles();
        Tiles?.ClassifyUnknown(_view); // a host texture never changes: classify it now, while it is in cache
    }

    internal CpuRenderer Owner { get; }

    public SizeI Size => new(_view.Width, _view.Height);

    public bool IsOpaque => _view.IsOpaque;

    /// <summary>The pixels the texture currently reads.</summary>
    public SurfaceView View => IsDisposed ? throw new ObjectDisposedException(nameof(CpuTexture)) : _view;

    /// <summary>Whether the pixels are a copy this texture owns (<see cref="IRenderer.CreateTexture"/>).</summary>
    public bool OwnsPixels => _owned != null;

    public bool IsDisposed { get; private set; }

    /// <summary>Which tiles are transparent or opaque (premultiplied textures only; null when off).</summary>
    internal TileMap? Tiles { get; private set; }

    /// <summary>Counts updates; a pass classifies unknown tiles only when nothing changed since the texture was last drawn.</summary>
    private long _generation, _drawnGeneration = -1;

    /// <summary>
    /// Points the texture at <paramref name="view"/>; an owned copy is released. The tiles under
    /// <paramref name="damage"/> become unknown (all of them when the size or layout changed).
    /// </summary>
    internal void Rebind(in SurfaceView view, Region damage)
    {
        ObjectDisposedException.ThrowIf(IsDisposed, this);
        Validate(view);
        FreeOwned();
        bool sameShape = Tiles is { } t && t.Width == view.Width && t.Height == view.Height && view.Layout == SourceLayout.BgraPremultiplied;
        _view = view;
        _generation++;
        if (sameShape) Tiles!.Invalidate(damage);
        else ResetTiles();
    }

    /// <summary>
    /// Called when a pass is about to draw the texture: its unknown tiles are classified if the
    /// texture did not change since it was last drawn (a texture updated every frame is never
    /// scanned; its unknown tiles are simply blended).
    /// </summary>
    internal void PrepareTiles()
    {
        if (Tiles is { HasUnknown: true } tiles && _generation == _drawnGeneration) tiles.ClassifyUnknown(_view);
        _drawnGeneration = _generation;
    }

    private void ResetTiles()
    {
        Tiles?.Dispose();
        Tiles = _view.Layout == SourceLayout.BgraPremultiplied && Owner.Options.TileMaps ? TileMap.CreateUnknown(_view.Width, _view.Height) : null;
    }

    public void Dispose()
    {
        if (IsDisposed) return;
        IsDisposed = true;
        FreeOwned();
        Tiles?.Dispose();
        Tiles = null;
        _view = default;
    }

    private void FreeOwned()
    {
        if (_owned == null) return;
        NativeMemory.AlignedFree(_owned);
        _owned = null;
    }

    internal static void Validate(in SurfaceView view)
    {
        if (view.Address == 0) throw new ArgumentException("the surface has no memory", nameof(view));
        if (view.Width <= 0 || view.Height <= 0) throw new ArgumentException($"the surface size {view.Width}x{view.Height} is empty", nameof(view));
        if (view.Stride < (long)view.Width * 4) throw new ArgumentException($"stride {view.Stride} is below width {view.Width} x 4", nameof(view));
        if (!Enum.IsDefined(view.Layout)) throw new ArgumentException($"unknown layout {view.Layout}", nameof(view));
    }
}
