using VirtioGpuHost.Compositor.Core.Geometry;
using VirtioGpuHost.Compositor.Rendering.Cpu.Kernels;

namespace VirtioGpuHost.Compositor.Rendering.Cpu;

/// <summary>
/// The CPU renderer: SIMD row kernels (AVX-512 or AVX2, scalar elsewhere) over native BGRA
/// targets, imported surfaces read in place, damage-clipped and occlusion-culled passes, large
/// frames split into bands across threads. Produces exactly the pixels the contract specifies.
/// </summary>
public sealed class CpuRenderer : IRenderer
{
    private readonly Lock _gate = new();
    private BandScheduler? _scheduler;
    private bool _disposed;

    public CpuRenderer(CpuRendererOptions? options = null)
    {
        Options = options ?? new CpuRendererOptions();
        if (Options.Threads < 1) throw new ArgumentOutOfRangeException(nameof(options), Options.Threads, "at least one thread");
        if (Options.BandRows < 0) throw new ArgumentOutOfRangeException(nameof(options), Options.BandRows, "band rows cannot be negative");
        Isa = Options.Kernels.Resolve();
        Capabilities = new RendererCapabilities("cpu", ZeroCopySurfaces: true, Threaded: Options.Threads > 1,
            $"kernels {Isa}, {Options.Threads} thread(s) above {Options.ParallelThresholdPixels} px, occlusion culling {(Options.OcclusionCulling ? "on" : "off")}");
    }

    public CpuRendererOptions Options { get; }

    /// <summary>The kernels this renderer runs (the option resolved against the machine).</summary>
    public KernelIsa Isa { get; }

    public RendererCapabilities Capabilities { get; }

    /// <summary>The workers (made on first need); null with one thread.</summary>
    internal BandScheduler? Scheduler
    {
        get
        {
            if (Options.Threads < 2) return null;
            if (_scheduler is { } s) return s;
            lock (_gate)
            {
                ObjectDisposedException.ThrowIf(_disposed, this);
                return _scheduler ??= new BandScheduler(Options.Threads - 1);
            }
        }
    }

    public IRenderTarget CreateTarget(SizeI size)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return new CpuRenderTarget(this, size);
    }

    public ITexture ImportSurface(in SurfaceView view)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return new CpuTexture(this, view);
    }

    /// <summary>
    /// Rebinds the texture to <paramref name="view"/>: nothing is copied or read. For a
    /// premultiplied texture the tiles under <paramref name="damage"/> are marked for
    /// reclassification (transparent / opaque / mixed), so pixels changed outside the damage
    /// may be skipped when blending, as the contract allows.
    /// </summary>
    public void UpdateSurface(ITexture texture, in SurfaceView view, Region damage)
    {
        ArgumentNullException.ThrowIfNull(damage);
        OwnTexture(texture).Rebind(view, damage);
    }

    public ITexture CreateTexture(SizeI size, ReadOnlySpan<uint> premultipliedBgra)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return new CpuTexture(this, size, premultipliedBgra);
    }

    public IRenderPass BeginPass(IRenderTarget target, Region damage)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (target is not CpuRenderTarget t || t.Owner != this) throw new ArgumentException("the target belongs to another renderer", nameof(target));
        ObjectDisposedException.ThrowIf(t.IsDisposed, t);
        t.Pass.Begin(damage);
        return t.Pass;
    }

    internal CpuTexture OwnTexture(ITexture texture)
    {
        ArgumentNullException.ThrowIfNull(texture);
        if (texture is not CpuTexture t || t.Owner != this) throw new ArgumentException("the texture belongs to another renderer", nameof(texture));
        return t;
    }

    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed) return;
            _disposed = true;
            _scheduler?.Dispose();
            _scheduler = null;
        }
    }
}
