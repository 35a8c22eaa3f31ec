using System.Runtime.CompilerServices;
using CsCheck;
using VirtioGpuHost.Compositor.Core.Geometry;
using VirtioGpuHost.Compositor.Rendering;
using VirtioGpuHost.Compositor.Rendering.Cpu;

namespace VirtioGpuHost.Compositor.Tests.Rendering;

/// <summary>A surface of a random scene: size, layout, row padding, pixel seed; <see cref="Owned"/> = CreateTexture (premultiplied only).</summary>
internal sealed record SurfaceSpec(int Width, int Height, SourceLayout Layout, int Pad, int Seed, bool Owned, int Block = 8)
{
    /// <summary>Pixels in blocks of Block x Block/2 of one kind (transparent, opaque, translucent, out of range).</summary>
    public PinnedSurface Make() => new PinnedSurface(Width, Height, Layout, Pad).Fill(RenderTestKit.Noise(Seed, Block, Math.Max(1, Block / 2)));

    public override string ToString() => $"{Width}x{Height} {Layout} pad {Pad} seed {Seed} block {Block}{(Owned ? " owned" : "")}";
}

/// <summary>
/// A random frame: surfaces, calls (fills and scaled draws, reaching outside the target, with
/// multi-rect clips) and pass damage, drawn over a noise background from an earlier full frame.
/// <see cref="Render"/> uses the CPU renderer, <see cref="Reference"/> the per-pixel reference.
/// </summary>
internal sealed record RandomScene(SizeI Size, IReadOnlyList<SurfaceSpec> Surfaces, IReadOnlyList<RefCall> Calls, Region Damage, int BackgroundSeed)
{
    public uint[] Render(CpuRendererOptions options)
    {
        using var renderer = new CpuRenderer(options);
        return Render(renderer);
    }

    /// <summary>The scene on <paramref name="renderer"/> (any renderer; its textures and target are disposed, the renderer is not).</summary>
    /// <remarks>
    /// Fully optimized from the first call: optimized code ends a local's life at its last use, so a
    /// surface whose pinned array is not kept alive to the end of the passes fails every time (see
    /// <see cref="SurfaceLifetimeTests"/>), not only once the method has been re-jitted at tier 1.
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public uint[] Render(IRenderer renderer)
    {
        var surfaces = Surfaces.Select(s => s.Make()).ToList();
        var textures = Surfaces.Select((s, i) => s.Owned
            ? renderer.CreateTexture(new SizeI(s.Width, s.Height), Packed(surfaces[i]))
            : renderer.ImportSurface(surfaces[i].View)).ToList();
        using var target = renderer.CreateTarget(Size);
        var background = Background();
        using (var bg = renderer.ImportSurface(background.View))
        {
            var first = renderer.BeginPass(target, RenderTestKit.All);
            first.DrawTexture(bg, Size.ToRect(), Size.ToRect(), RenderTestKit.All);
            first.Submit();
        }
        // Imported surfaces are read in place: their pinned arrays must outlive the passes that read
        // them. In Release the JIT ends a local's life at its last use (here, .View), and a pinned
        // array is still collected when unreachable: the renderer would then read freed memory.
        GC.KeepAlive(background);
        var pass = renderer.BeginPass(target, Damage);
        foreach (var call in Calls)
        {
            switch (call)
            {
                case RefFill f: pass.FillRect(f.Destination, f.Color, f.Clip); break;
                case RefDraw d: pass.DrawTexture(textures[d.Surface], d.Source, d.Destination, d.Clip, d.Dim); break;
            }
        }
        pass.Submit();
        GC.KeepAlive(surfaces);
        foreach (var t in textures) t.Dispose();
        return RenderTestKit.Read(target);
    }

    public uint[] Reference()
    {
        var background = Background();
        var pixels = new uint[Size.Width * Size.Height];
        for (int y = 0; y < Size.Height; y++)
            for (int x = 0; x < Size.Width; x++)
                pixels[y * Size.Width + x] = background[x, y] | 0xFF000000u;
        // Owned textures are packed copies: the reference reads the same pixels from the pinned surface.
        ReferenceRenderer.Apply(pixels, Size, Damage, Calls, Surfaces.Select(s => s.Make()).ToList());
        return pixels;
    }

    private PinnedSurface Background() => new PinnedSurface(Size.Width, Size.Height, SourceLayout.Bgrx).Fill(RenderTestKit.Noise(BackgroundSeed));

    private static uint[] Packed(PinnedSurface s)
    {
        var p = new uint[s.Width * s.Height];
        for (int y = 0; y < s.Height; y++)
            for (int x = 0; x < s.Width; x++) p[y * s.Width + x] = s[x, y];
        return p;
    }

    public override string ToString() =>
        $"target {Size}, damage {Damage}, background seed {BackgroundSeed}\n  surfaces: {string.Join("; ", Surfaces.Select((s, i) => $"s{i} {s}"))}\n  "
        + string.Join("\n  ", Calls);

    // ---- generators ----

    /// <summary>Small surfaces, and some wide ones whose blocks line up with the renderer's 64x8 tiles (or not).</summary>
    private static readonly Gen<SurfaceSpec> GenSurface =
        Gen.Select(Gen.Frequency((3, Gen.Int[1, 40]), (1, Gen.Int[41, 200])), Gen.Int[1, 30], Gen.Enum<SourceLayout>(), Gen.Int[0, 3], Gen.Int, Gen.Bool,
                Gen.OneOfConst(8, 16, 64, 128))
            .Select(t => new SurfaceSpec(t.Item1, t.Item2, t.Item3, t.Item4, t.Item5, t.Item3 == SourceLayout.BgraPremultiplied && t.Item6, t.Item7));

    /// <summary>Rectangles around the target: often inside, sometimes hanging off any edge.</summary>
    private static Gen<RectI> GenRect(SizeI s) =>
        Gen.Select(Gen.Int[-20, s.Width + 5], Gen.Int[-20, s.Height + 5], Gen.Int[1, s.Width + 30], Gen.Int[1, s.Height + 30])
            .Select(t => new RectI(t.Item1, t.Item2, t.Item3, t.Item4));

    private static Gen<Region> GenClip(SizeI s) => Gen.Frequency(
        (4, Gen.Const(0).Select(_ => RenderTestKit.All)),
        (5, GenRect(s).List[1, 3].Select(r => new Region(r))),
        (1, Gen.Const(0).Select(_ => new Region())));

    private static Gen<RectI> GenSource(SurfaceSpec s) =>
        Gen.Select(Gen.Int[0, s.Width - 1], Gen.Int[0, s.Height - 1]).SelectMany(xy =>
            Gen.Select(Gen.Int[1, s.Width - xy.Item1], Gen.Int[1, s.Height - xy.Item2]).Select(wh => new RectI(xy.Item1, xy.Item2, wh.Item1, wh.Item2)));

    private static readonly Gen<ColorBgra> GenColor = Gen.Frequency(
        (3, Gen.UInt.Select(c => new ColorBgra(c | 0xFF000000u))),
        (3, Gen.Select(Gen.Byte, Gen.Byte, Gen.Byte, Gen.Byte).Select(t => ColorBgra.FromStraight(t.Item1, t.Item2, t.Item3, t.Item4))),
        (1, Gen.UInt.Select(c => new ColorBgra(c))),
        (1, Gen.Const(new ColorBgra(0))));

    private static readonly Gen<byte> GenDim = Gen.Frequency((4, Gen.Const((byte)255)), (2, Gen.Byte), (1, Gen.Const((byte)0)));

    private static Gen<RefCall> GenCall(SizeI size, IReadOnlyList<SurfaceSpec> surfaces) => Gen.Frequency(
        (2, Gen.Select(GenRect(size), GenColor, GenClip(size)).Select(t => (RefCall)new RefFill(t.Item1, t.Item2, t.Item3))),
        (3, Gen.Int[0, surfaces.Count - 1].SelectMany(i =>
            Gen.Select(GenSource(surfaces[i]), GenRect(size), GenClip(size), GenDim, Gen.Int[0, 2])
                .Select(t => (RefCall)new RefDraw(i, t.Item1, Unscaled(t.Item2, t.Item1, t.Item5), t.Item3, t.Item4)))));

    /// <summary>Kind 0: the random destination as it is (scaled); 1: the source's size (1:1, the common case); 2: the source's width only.</summary>
    private static RectI Unscaled(RectI destination, RectI source, int kind) => kind switch
    {
        1 => destination with { Width = source.Width, Height = source.Height },
        2 => destination with { Width = source.Width },
        _ => destination,
    };

    public static readonly Gen<RandomScene> Generator =
        Gen.Select(Gen.Int[1, 90], Gen.Int[1, 60]).Select(t => new SizeI(t.Item1, t.Item2)).SelectMany(size =>
            GenSurface.List[1, 4].SelectMany(surfaces =>
                Gen.Select(
                    GenCall(size, surfaces).List[0, 8],
                    Gen.Frequency((2, Gen.Const(0).Select(_ => RenderTestKit.All)), (5, GenRect(size).List[1, 3].Select(r => new Region(r)))),
                    Gen.Int)
                .Select(t => new RandomScene(size, surfaces, t.Item1, t.Item2, t.Item3))));
}
