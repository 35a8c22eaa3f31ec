using BenchmarkDotNet.Attributes;
using SkiaSharp;
using VirtioGpuHost.Compositor.Core.Geometry;
using VirtioGpuHost.Compositor.Rendering;
using VirtioGpuHost.Compositor.Rendering.Cpu;

namespace VirtioGpuHost.Benchmarks;

/// <summary>
/// Composite 4 surfaces of 1920x1080 onto one 1080p output (the compositor issue's benchmark),
/// our CPU renderer next to a SkiaSharp raster compositor of the same scene over the same
/// memory: the recipe's layers (opaque layer 0, three translucent ones) as a full repaint and
/// as a 64x64 damage frame, and a head unit (4 opaque surfaces fitted 2:1 into quadrants).
/// Threads: 1 or 2 (ours: band workers; Skia: two half-height surfaces, as in the recipe).
/// </summary>
[MemoryDiagnoser]
public class CompositeBenchmarks
{
    private const int W = CompositeScene.W, H = CompositeScene.H;
    private static readonly RectI Full = new(0, 0, W, H);
    private static readonly RectI Damage = new(880, 560, 64, 64);

    private CompositeScene _scene = null!;
    private CpuRenderer _renderer = null!, _plainRenderer = null!;
    private IRenderTarget _target = null!, _plainTarget = null!;
    private ITexture[] _layers = null!, _plainLayers = null!, _quadSurfaces = null!;
    private SurfaceView[] _layerViews = null!;
    private readonly Region _full = new(Full), _damage = new(Damage);
    private readonly RectI[] _quadrants = [new(0, 0, W / 2, H / 2), new(W / 2, 0, W / 2, H / 2), new(0, H / 2, W / 2, H / 2), new(W / 2, H / 2, W / 2, H / 2)];
    private Region[] _quadClips = null!;

    private SKImage[] _skLayers = null!, _skQuads = null!;
    private SKSurface _skSurface = null!;
    private SKSurface[] _skHalves = null!;
    private readonly SKSamplingOptions _nearest = new(SKFilterMode.Nearest);

    [Params(1, 2)]
    public int Threads { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _scene = new CompositeScene();
        var layerMemory = Enumerable.Range(0, 4).Select(k => _scene.Layer(k)).ToArray();
        var quadMemory = Enumerable.Range(0, 4).Select(t => _scene.Layer(0, t)).ToArray();

        _renderer = new CpuRenderer(new CpuRendererOptions { Threads = Threads });
        _target = _renderer.CreateTarget(new SizeI(W, H));
        _layerViews = layerMemory.Select((p, k) => new SurfaceView(p, W, H, CompositeScene.Stride, k == 0 ? SourceLayout.Bgrx : SourceLayout.BgraPremultiplied)).ToArray();
        _layers = _layerViews.Select(v => _renderer.ImportSurface(v)).ToArray();
        // The same without tile maps: every translucent layer is read in full every frame.
        _plainRenderer = new CpuRenderer(new CpuRendererOptions { Threads = Threads, TileMaps = false });
        _plainTarget = _plainRenderer.CreateTarget(new SizeI(W, H));
        _plainLayers = _layerViews.Select(v => _plainRenderer.ImportSurface(v)).ToArray();
        _quadSurfaces = quadMemory.Select(p => _renderer.ImportSurface(new SurfaceView(p, W, H, CompositeScene.Stride, SourceLayout.Bgrx))).ToArray();
        _quadClips = _quadrants.Select(q => new Region(q)).ToArray();

        _skLayers = layerMemory.Select((p, k) => SKImage.FromPixels(CompositeScene.Info(k == 0 ? SKAlphaType.Opaque : SKAlphaType.Premul), p, CompositeScene.Stride)).ToArray();
        _skQuads = quadMemory.Select(p => SKImage.FromPixels(CompositeScene.Info(SKAlphaType.Opaque), p, CompositeScene.Stride)).ToArray();
        nint skTarget = _scene.Allocate("skia-target");
        _skSurface = SKSurface.Create(CompositeScene.Info(), skTarget, CompositeScene.Stride);
        var half = new SKImageInfo(W, H / 2, SKColorType.Bgra8888, SKAlphaType.Premul);
        _skHalves = [SKSurface.Create(half, skTarget, CompositeScene.Stride), SKSurface.Create(half, skTarget + CompositeScene.Stride * (H / 2), CompositeScene.Stride)];

        Console.WriteLine($"// {_renderer.Capabilities.Details}");
        Console.WriteLine($"// ours vs skia, 4 layers: max |diff| {MaxDifference(skTarget, Ours_Full, Skia_Full)}, head unit: {MaxDifference(skTarget, Ours_HeadUnit, Skia_HeadUnit)}");
    }

    /// <summary>The largest channel difference between our frame and Skia's after running both (a sanity check of the scene).</summary>
    private int MaxDifference(nint skTarget, Action ours, Action skia)
    {
        ours();
        skia();
        var a = new uint[W * H];
        var b = new int[W * H];
        _target.ReadPixels(a);
        System.Runtime.InteropServices.Marshal.Copy(skTarget, b, 0, b.Length);
        int max = 0;
        for (int i = 0; i < a.Length; i++)
            for (int shift = 0; shift < 32; shift += 8)
            {
                int x = (int)((a[i] >> shift) & 0xFF), y = (int)(((uint)b[i] >> shift) & 0xFF);
                max = Math.Max(max, Math.Abs(x - y));
            }
        return max;
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        foreach (var t in _layers.Concat(_quadSurfaces).Concat(_plainLayers)) t.Dispose();
        _target.Dispose();
        _plainTarget.Dispose();
        _renderer.Dispose();
        _plainRenderer.Dispose();
        foreach (var i in _skLayers.Concat(_skQuads)) i.Dispose();
        _skSurface.Dispose();
        foreach (var s in _skHalves) s.Dispose();
        _scene.Dispose();
    }

    // ---- the recipe's 4 layers ----

    [Benchmark(Description = "ours: 4 layers, full 1080p")]
    public void Ours_Full() => DrawLayers(_full);

    [Benchmark(Description = "ours: 4 layers, full 1080p, all 4 updated (full damage)")]
    public void Ours_FullUpdated()
    {
        for (int k = 0; k < 4; k++) _renderer.UpdateSurface(_layers[k], _layerViews[k], _full);
        DrawLayers(_full);
    }

    [Benchmark(Description = "ours: 4 layers, full 1080p, no tile maps")]
    public void Ours_FullNoTileMaps()
    {
        var pass = _plainRenderer.BeginPass(_plainTarget, _full);
        foreach (var layer in _plainLayers) pass.DrawTexture(layer, Full, Full, _full);
        pass.Submit();
    }

    [Benchmark(Description = "skia: 4 layers, full 1080p")]
    public void Skia_Full()
    {
        if (Threads == 1) SkiaLayers(_skSurface.Canvas, 0);
        else Parallel.For(0, 2, h => SkiaLayers(_skHalves[h].Canvas, -h * (H / 2)));
    }

    [Benchmark(Description = "ours: 4 layers, 64x64 damage")]
    public void Ours_Damage64() => DrawLayers(_damage);

    [Benchmark(Description = "skia: 4 layers, 64x64 damage")]
    public void Skia_Damage64()
    {
        var c = _skSurface.Canvas;
        c.Save();
        c.ClipRect(SKRect.Create(Damage.X, Damage.Y, Damage.Width, Damage.Height));
        SkiaLayers(c, 0);
        c.Restore();
    }

    private void DrawLayers(Region damage)
    {
        var pass = _renderer.BeginPass(_target, damage);
        foreach (var layer in _layers) pass.DrawTexture(layer, Full, Full, _full);
        pass.Submit();
    }

    private void SkiaLayers(SKCanvas c, int dy)
    {
        foreach (var image in _skLayers) c.DrawImage(image, 0, dy, _nearest);
        c.Flush();
    }

    // ---- head unit: 4 opaque 1080p surfaces fitted (2:1) into quadrants ----

    [Benchmark(Description = "ours: head unit 4 scaled, full 1080p")]
    public void Ours_HeadUnit()
    {
        var pass = _renderer.BeginPass(_target, _full);
        for (int i = 0; i < 4; i++) pass.DrawTexture(_quadSurfaces[i], Full, _quadrants[i], _quadClips[i]);
        pass.Submit();
    }

    [Benchmark(Description = "skia: head unit 4 scaled, full 1080p")]
    public void Skia_HeadUnit()
    {
        if (Threads == 1) SkiaQuads(_skSurface.Canvas, 0);
        else Parallel.For(0, 2, h => SkiaQuads(_skHalves[h].Canvas, -h * (H / 2)));
    }

    private void SkiaQuads(SKCanvas c, int dy)
    {
        var src = SKRect.Create(0, 0, W, H);
        for (int i = 0; i < 4; i++)
        {
            var q = _quadrants[i];
            c.DrawImage(_skQuads[i], src, SKRect.Create(q.X, q.Y + dy, q.Width, q.Height), _nearest);
        }
        c.Flush();
    }
}
