using VirtioGpuHost.Compositor.Rendering.Cpu.Kernels;

namespace VirtioGpuHost.Compositor.Rendering.Cpu;

/// <summary>How the CPU renderer works; the defaults are what the compositor uses.</summary>
public sealed record CpuRendererOptions
{
    /// <summary>Skip the parts of calls that later opaque calls cover (off only to prove it changes no pixel).</summary>
    public bool OcclusionCulling { get; init; } = true;

    /// <summary>Threads a large frame is split across (the calling thread included); 1 = never parallel.</summary>
    public int Threads { get; init; } = Environment.ProcessorCount;

    /// <summary>A frame drawing fewer pixels than this stays on the calling thread (tests use 0 to force bands).</summary>
    public long ParallelThresholdPixels { get; init; } = 64 * 1024;

    /// <summary>Which kernels run; never wider than the machine supports.</summary>
    public KernelIsa Kernels { get; init; } = KernelIsa.Auto;

    /// <summary>
    /// Keep a map of transparent and opaque 64x8 tiles for premultiplied textures, so blending
    /// skips transparent tiles unread (kept current by UpdateSurface's damage).
    /// </summary>
    public bool TileMaps { get; init; } = true;

    /// <summary>Rows per band (the unit of work and of cache reuse); 0 = about 512 KiB of target pixels per band (a quarter to a half of a
    /// current core's L2).</summary>
    public int BandRows { get; init; }
}
