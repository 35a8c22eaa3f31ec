using BenchmarkDotNet.Attributes;
using VirtioGpuHost.Compositor.Core.Geometry;
using VirtioGpuHost.Compositor.Rendering;
using VirtioGpuHost.Compositor.Rendering.Cpu;
using VirtioGpuHost.Compositor.Rendering.Vulkan;

namespace VirtioGpuHost.Benchmarks;

/// <summary>
/// The same frame on each renderer (IRenderer only): the recipe's 4 layers of 1920x1080 in
/// memfd memory (opaque layer 0, three translucent ones, imported as guest surfaces) composited
/// onto one 1080p target in a single pass, as a full repaint and as a 64x64 damage frame, with
/// or without reading the frame back (ReadPixels of the damaged rectangle into a host array, as
/// headless outputs and checks do). Run:
/// <c>dotnet run -c Release --project bench/VirtioGpuHost.Benchmarks -- --filter '*RendererBenchmarks*'</c>.
/// Renderers: cpu (all cores), vulkan (first Vulkan device; lavapipe on a machine without a GPU),
/// vulkan-maps-off (the same without its transparent/opaque block maps), opengl.
/// Add a renderer to <see cref="Renderer"/>'s values and <see cref="Create"/>.
/// </summary>
public class RendererBenchmarks
{
    private const int W = CompositeScene.W, H = CompositeScene.H;
    private static readonly RectI Full = new(0, 0, W, H);
    private static readonly RectI Damage = new(880, 560, 64, 64);

    private CompositeScene _scene = null!;
    private IRenderer _renderer = null!;
    private IRenderTarget _target = null!;
    private ITexture[] _layers = null!;
    private readonly Region _full = new(Full), _damage = new(Damage);
    private uint[] _readback = null!;

    [Params("cpu", "vulkan", "vulkan-maps-off", "opengl")]
    public string Renderer { get; set; } = "cpu";

    [Params(false, true)]
    public bool Readback { get; set; }

    private static IRenderer Create(string name) => name switch
    {
        "cpu" => new CpuRenderer(),
        "vulkan" => VulkanRenderer.TryCreate(out string reason) ?? throw new InvalidOperationException("no Vulkan: " + reason),
        // every layer blended over every tile, as the recipe's probe does (no transparent-block culling)
        "vulkan-maps-off" => VulkanRenderer.TryCreate(out string whyNot, new VulkanRendererOptions { TileMaps = false }) ?? throw new InvalidOperationException("no Vulkan: " + whyNot),
        "opengl" => VirtioGpuHost.Compositor.Rendering.OpenGL.GlRenderer.TryCreate(out string why) ?? throw new InvalidOperationException("no GL: " + why),
        _ => throw new ArgumentOutOfRangeException(nameof(name), name, "unknown renderer"),
    };

    [GlobalSetup]
    public void Setup()
    {
        _scene = new CompositeScene();
        _renderer = Create(Renderer);
        _target = _renderer.CreateTarget(new SizeI(W, H));
        _layers = Enumerable.Range(0, 4)
            .Select(k => _renderer.ImportSurface(new SurfaceView(_scene.Layer(k), W, H, CompositeScene.Stride, k == 0 ? SourceLayout.Bgrx : SourceLayout.BgraPremultiplied)))
            .ToArray();
        _readback = new uint[W * H];
        Console.WriteLine($"// {_renderer.Capabilities.Name}: {_renderer.Capabilities.Details}; zero-copy surfaces {_renderer.Capabilities.ZeroCopySurfaces}");
        Frame(_full, Full); // warm-up (pipeline JIT on lavapipe)
        Frame(_full, Full); // drawn again unchanged: premultiplied textures' tile maps classified (CPU and Vulkan)
    }

    private void Frame(Region damage, RectI bounds)
    {
        var pass = _renderer.BeginPass(_target, damage);
        foreach (var layer in _layers) pass.DrawTexture(layer, Full, Full, damage);
        pass.Submit();
        if (Readback) _target.ReadPixels(bounds, _readback);
    }

    [Benchmark(Description = "4 layers, full 1080p repaint")]
    public void Full1080p() => Frame(_full, Full);

    [Benchmark(Description = "4 layers, 64x64 damage")]
    public void Damage64() => Frame(_damage, Damage);

    [GlobalCleanup]
    public void Cleanup()
    {
        foreach (var t in _layers) t.Dispose();
        _target.Dispose();
        _renderer.Dispose();
        _scene.Dispose();
    }
}
