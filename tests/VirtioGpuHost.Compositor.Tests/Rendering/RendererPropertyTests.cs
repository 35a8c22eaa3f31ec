using CsCheck;
using VirtioGpuHost.Compositor.Rendering.Cpu;
using VirtioGpuHost.Compositor.Rendering.Cpu.Kernels;

namespace VirtioGpuHost.Compositor.Tests.Rendering;

/// <summary>
/// Whole passes on random scenes against the per-pixel reference, in every configuration that
/// changes how the work is done but must not change a pixel: kernel widths, culling off,
/// bands on two threads.
/// </summary>
public class RendererPropertyTests
{
    /// <summary>300 by default; RENDER_PROPERTY_ITERATIONS raises it when hunting a rare failure.</summary>
    private static readonly int Iterations =
        int.TryParse(Environment.GetEnvironmentVariable("RENDER_PROPERTY_ITERATIONS"), out int n) && n > 0 ? n : 300;

    public static TheoryData<string> Configurations => new() { "default", "scalar", "avx2", "avx512", "no-culling", "bands-2-threads" };

    private static CpuRendererOptions Options(string name) => name switch
    {
        "default" => new CpuRendererOptions(),
        "scalar" => new CpuRendererOptions { Kernels = KernelIsa.Scalar },
        "avx2" => new CpuRendererOptions { Kernels = KernelIsa.Avx2 },
        "avx512" => new CpuRendererOptions { Kernels = KernelIsa.Avx512 },
        "no-culling" => new CpuRendererOptions { OcclusionCulling = false },
        "bands-2-threads" => new CpuRendererOptions { Threads = 2, ParallelThresholdPixels = 0, BandRows = 3 },
        _ => throw new ArgumentOutOfRangeException(nameof(name)),
    };

    [Theory]
    [MemberData(nameof(Configurations))]
    public void Submit_RandomScene_MatchesReference(string configuration)
    {
        var options = Options(configuration);
        if (options.Kernels != KernelIsa.Auto && options.Kernels.Resolve() != options.Kernels)
            Assert.Skip($"this CPU has no {options.Kernels}");
        RandomScene.Generator.Sample(scene => Assert.Equal(scene.Reference(), scene.Render(options)), iter: Iterations, print: s => s.ToString());
    }

    [Fact]
    public void Submit_RandomSceneWithAndWithoutCulling_SamePixels()
    {
        RandomScene.Generator.Sample(scene =>
            Assert.Equal(scene.Render(new CpuRendererOptions { OcclusionCulling = false }), scene.Render(new CpuRendererOptions())),
            iter: Iterations, print: s => s.ToString());
    }

    [Fact]
    public void Submit_RandomScene_KeepsEveryPixelOpaque()
    {
        RandomScene.Generator.Sample(scene => Assert.All(scene.Render(new CpuRendererOptions()), p => Assert.Equal(0xFFu, p >> 24)),
            iter: Iterations, print: s => s.ToString());
    }
}
