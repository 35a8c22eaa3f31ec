using SkiaSharp;
using VirtioGpuHost.Compositor.Rendering.Labels;
using VirtioGpuHost.Interop;

namespace VirtioGpuHost.Benchmarks;

/// <summary>
/// The graphics-stack recipe's scene (shared/recipes/graphics-stack/common/Layers.cs), drawn
/// with SkiaSharp into memfd mappings like guest RAM: 1920x1080 BGRA layers, layer 0 an opaque
/// gradient with text, layers 1..3 transparent with a 60 % alpha rounded rectangle and a label.
/// </summary>
public sealed class CompositeScene : IDisposable
{
    public const int W = 1920, H = 1080, Stride = W * 4;
    private readonly List<(FdHandle Fd, MappedMemory Map)> _maps = new();

    public static SKImageInfo Info(SKAlphaType alpha = SKAlphaType.Premul) => new(W, H, SKColorType.Bgra8888, alpha);

    /// <summary>A fresh memfd-backed 1080p buffer (zeroed).</summary>
    public nint Allocate(string name)
    {
        var fd = MemFd.Create(name, (ulong)Stride * H);
        var map = MappedMemory.Map(fd, 0, (ulong)Stride * H);
        _maps.Add((fd, map));
        return map.Address;
    }

    /// <summary>Layer <paramref name="k"/> of the recipe; <paramref name="tint"/> varies layer 0's gradient (the head-unit surfaces).</summary>
    public nint Layer(int k, int tint = 0)
    {
        nint p = Allocate($"layer{k}.{tint}");
        using var surface = SKSurface.Create(Info(), p, Stride);
        var c = surface.Canvas;
        using var font = new SKFont(LabelFonts.Bold, 64);
        using var text = new SKPaint { Color = SKColors.White, IsAntialias = true };
        if (k == 0)
        {
            using var shader = SKShader.CreateLinearGradient(new SKPoint(0, 0), new SKPoint(W, H),
                [new SKColor((byte)(20 + tint * 50), 40, 90), new SKColor(200, (byte)(120 + tint * 30), 30)], SKShaderTileMode.Clamp);
            using var bg = new SKPaint { Shader = shader };
            c.DrawRect(0, 0, W, H, bg);
            c.DrawText($"layer 0 (opaque)  TOP-LEFT  {tint}", 40, 90, SKTextAlign.Left, font, text);
        }
        else
        {
            c.Clear(SKColors.Transparent);
            var colour = k switch { 1 => new SKColor(255, 0, 0, 153), 2 => new SKColor(0, 255, 0, 153), _ => new SKColor(0, 80, 255, 153) };
            using var rect = new SKPaint { Color = colour, IsAntialias = true };
            var r = SKRect.Create(150 + (k - 1) * 450, 200 + (k - 1) * 220, 800, 450);
            c.DrawRoundRect(r, 40, 40, rect);
            c.DrawText($"layer {k}", r.Left + 30, r.Top + 80, SKTextAlign.Left, font, text);
        }
        c.Flush();
        return p;
    }

    public void Dispose()
    {
        foreach (var (fd, map) in _maps)
        {
            map.Dispose();
            fd.Dispose();
        }
        _maps.Clear();
    }
}
