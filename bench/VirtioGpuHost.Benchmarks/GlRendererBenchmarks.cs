using BenchmarkDotNet.Attributes;
using VirtioGpuHost.Compositor.Core.Geometry;
using VirtioGpuHost.Compositor.Rendering;
using VirtioGpuHost.Compositor.Rendering.Cpu;
using VirtioGpuHost.Compositor.Rendering.OpenGL;

namespace VirtioGpuHost.Benchmarks;

/// <summary>
/// The OpenGL renderer (EGL surfaceless; Mesa llvmpipe on a machine without a GPU) beside the CPU
/// renderer on the 4 x 1080p CompositeScene (opaque layer 0, three premultiplied layers), whole
/// frames as a headless output sees them:
///  - full repaint, textures resident (no upload), + readback of the whole frame;
///  - full repaint with all 4 layers changed (GL: 4 x 1080p glTexSubImage2D; CPU: rebind only,
///    zero copy), + readback of the whole frame;
///  - 64x64 damage: each layer changed in that square (GL: 4 x 64x64 uploads), pass over the
///    square, readback of the square (what HeadlessOutput.Present copies).
/// Run: dotnet run -c Release --project bench/VirtioGpuHost.Benchmarks -- --filter '*GlRenderer*'
/// (skips the GL rows with the reason when EGL/GL is unavailable).
/// </summary>
[MemoryDiagnoser]
public class GlRendererBenchmarks
{
    private const int W = CompositeScene.W, H = CompositeScene.H;
    private static readonly RectI Full = new(0, 0, W, H);
    private static readonly RectI Square = new(880, 560, 64, 64);

    private CompositeScene _scene = null!;
    private IRenderer _renderer = null!;
    private IRenderTarget _target = null!;
    private ITexture[] _layers = null!;
    private SurfaceView[] _views = null!;
    private readonly Region _full = new(Full), _square = new(Square);
    private readonly uint[] _frame = new uint[W * H], _squarePixels = new uint[Square.Width * Square.Height];

    [Params("cpu", "opengl")]
    public string Renderer { get; set; } = "cpu";

    [GlobalSetup]
    public void Setup()
    {
        _scene = new CompositeScene();
        _views = Enumerable.Range(0, 4)
            .Select(k => new SurfaceView(_scene.Layer(k), W, H, CompositeScene.Stride, k == 0 ? SourceLayout.Bgrx : SourceLayout.BgraPremultiplied)).ToArray();
        if (Renderer == "opengl")
        {
            _renderer = GlRenderer.TryCreate(out string reason) ?? throw new NotSupportedException(reason);
            ((GlRenderer)_renderer).BindToThisThread(); // the benchmark thread owns the context: no make-current per call
        }
        else
        {
            _renderer = new CpuRenderer();
        }
        _target = _renderer.CreateTarget(new SizeI(W, H));
        _layers = _views.Select(v => _renderer.ImportSurface(v)).ToArray();
        Console.WriteLine($"// {_renderer.Capabilities.Name}: {_renderer.Capabilities.Details}");
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        foreach (var t in _layers) t.Dispose();
        _target.Dispose();
        _renderer.Dispose();
        _scene.Dispose();
    }

    [Benchmark(Description = "4 layers, full 1080p, resident, + full readback")]
    public void FullResident()
    {
        Draw(_full);
        _target.ReadPixels(_frame);
    }

    [Benchmark(Description = "4 layers, full 1080p, all 4 updated (uploads), + full readback")]
    public void FullUpdated()
    {
        for (int k = 0; k < 4; k++) _renderer.UpdateSurface(_layers[k], _views[k], _full);
        Draw(_full);
        _target.ReadPixels(_frame);
    }

    [Benchmark(Description = "4 layers, 64x64 damage, 4 x 64x64 updated, + 64x64 readback")]
    public void Damage64()
    {
        for (int k = 0; k < 4; k++) _renderer.UpdateSurface(_layers[k], _views[k], _square);
        Draw(_square);
        _target.ReadPixels(Square, _squarePixels);
    }

    private void Draw(Region damage)
    {
        var pass = _renderer.BeginPass(_target, damage);
        foreach (var layer in _layers) pass.DrawTexture(layer, Full, Full, _full);
        pass.Submit();
    }
}
