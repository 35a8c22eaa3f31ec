using Microsoft.Extensions.Logging.Abstractions;
using VirtioGpuHost.Compositor.Core.Geometry;
using VirtioGpuHost.Compositor.Core.Layout;
using VirtioGpuHost.Compositor.Core.Scene;
using VirtioGpuHost.Compositor.Outputs;
using VirtioGpuHost.Compositor.Rendering;
using VirtioGpuHost.Compositor.Rendering.Cpu;
using VirtioGpuHost.Device.Display;
using VirtioGpuHost.Device.Wire;
using VirtioGpuHost.GuestMemory;

namespace VirtioGpuHost.Compositor.Tests.Engine;

/// <summary>A resource as the compositor sees one: pixels in a refcounted block, read under a lock.</summary>
internal sealed class FakeSource : IPixelSource, IDisposable
{
    private readonly object _lock = new();
    private NativeBlock? _block;

    public FakeSource(int width, int height, VirtioGpuFormat format = VirtioGpuFormat.B8G8R8X8Unorm)
    {
        Width = width;
        Height = height;
        Format = format;
        _block = NativeBlock.Allocate((ulong)width * (ulong)height * 4);
    }

    public int Width { get; }
    public int Height { get; }
    public VirtioGpuFormat Format { get; }
    public int Acquired { get; private set; }

    public Span<uint> Pixels => System.Runtime.InteropServices.MemoryMarshal.Cast<byte, uint>(_block!.AsSpan(0, Width * Height * 4));

    public void Fill(Func<int, int, uint> pixel)
    {
        var p = Pixels;
        for (int y = 0; y < Height; y++)
            for (int x = 0; x < Width; x++) p[y * Width + x] = pixel(x, y);
    }

    public GpuSurface? AcquireCurrent()
    {
        lock (_lock)
        {
            if (_block is null) return null;
            Acquired++;
            _block.AddRef();
            return new GpuSurface(_block, 0, (uint)Width, (uint)Height, (uint)Width * 4, Format) { Source = this };
        }
    }

    public VirtioGpuRect Rect => new(0, 0, (uint)Width, (uint)Height);

    public void Dispose()
    {
        lock (_lock)
        {
            _block?.Release();
            _block = null;
        }
    }
}

/// <summary>The engine in step mode with a fake clock, a CPU renderer and headless outputs.</summary>
internal sealed class EngineRig : IDisposable
{
    private readonly List<IDisposable> _owned = new();

    public EngineRig(LayoutConfig layout, CompositorOptions? options = null, IRenderer? renderer = null)
    {
        Renderer = renderer ?? new CpuRenderer(new CpuRendererOptions { Threads = 2 });
        Store = new SurfaceStore(() => Now);
        Engine = new CompositorEngine(layout, Renderer, Store, () => Now, NullLogger.Instance, options);
    }

    public TimeSpan Now { get; set; }
    public IRenderer Renderer { get; }
    public SurfaceStore Store { get; }
    public CompositorEngine Engine { get; }

    public FakeSource Source(int w, int h, uint color)
    {
        var s = new FakeSource(w, h);
        s.Fill((_, _) => color);
        _owned.Add(s);
        return s;
    }

    /// <summary>Connects <paramref name="vm"/>, shows <paramref name="source"/> on its scanout 0 and flushes it whole.</summary>
    public long Show(string vm, FakeSource source, int scanout = 0)
    {
        long gen = Store.Connect(vm);
        Store.SetScanout(new SurfaceKey(vm, scanout), gen, source, source.Rect, source.Format);
        Store.Flushed(new SurfaceKey(vm, scanout), gen, source, source.Rect, source.Format, source.Rect);
        return gen;
    }

    public void Flush(string vm, long gen, FakeSource source, VirtioGpuRect damage, int scanout = 0) =>
        Store.Flushed(new SurfaceKey(vm, scanout), gen, source, source.Rect, source.Format, damage);

    /// <summary>Advances the clock by <paramref name="ms"/> and composes one frame.</summary>
    public FrameReport Step(double ms = 16)
    {
        Now += TimeSpan.FromMilliseconds(ms);
        return Engine.ComposeFrame();
    }

    public HeadlessOutput Output(string name = "main") => (HeadlessOutput)Engine.Output(name)!;

    public uint Pixel(int x, int y, string output = "main")
    {
        var o = Output(output);
        return o.Snapshot()[y * o.Size.Width + x];
    }

    /// <summary>Every pixel of <paramref name="rect"/> on the output.</summary>
    public IEnumerable<uint> Pixels(RectI rect, string output = "main")
    {
        var o = Output(output);
        var snap = o.Snapshot();
        for (int y = rect.Y; y < rect.Bottom; y++)
            for (int x = rect.X; x < rect.Right; x++) yield return snap[y * o.Size.Width + x];
    }

    public void Dispose()
    {
        Engine.Dispose();
        Renderer.Dispose();
        foreach (var d in _owned) d.Dispose();
    }

    /// <summary>
    /// A small head unit: cluster (critical) left, ivi (normal) top right with a preempting
    /// camera, apps (untrusted) bottom right. Label bar 20, border 2: content rects are
    /// cluster 196x276+2+22, ivi 196x126+202+22, apps 196x126+202+172.
    /// </summary>
    public static LayoutConfig HeadUnit(string extraVm = "", string clusterFallback = "color:#400000", bool clusterMustChange = false)
    {
        string toml = $$"""
            [layout]
            label_height = 20
            border_width = 2

            [[output]]
            name = "main"
            width = 400
            height = 300
            refresh_hz = 60
            background = "#000000"

            [[zone]]
            name = "cluster"
            output = "main"
            rect = [0, 0, 200, 300]
            z = 100
            class = "critical"

            [[zone]]
            name = "ivi"
            output = "main"
            rect = [200, 0, 200, 150]
            z = 10
            class = "normal"

            [[zone]]
            name = "apps"
            output = "main"
            rect = [200, 150, 200, 150]
            z = 0
            class = "untrusted"

            [[vm]]
            name = "cluster"
            socket = "/tmp/vgh-test/cluster.sock"
            label = "CLUSTER"
            label_color = "#0D47A1"
            class = "critical"
            frame_period_ms = 50
            content_must_change = {{(clusterMustChange ? "true" : "false")}}
            fallback = "{{clusterFallback}}"

            [[vm]]
            name = "ivi"
            socket = "/tmp/vgh-test/ivi.sock"
            label = "INFOTAINMENT"
            label_color = "#1B5E20"
            class = "normal"
            frame_period_ms = 100
            fallback = "dim"

            [[vm]]
            name = "apps"
            socket = "/tmp/vgh-test/apps.sock"
            label = "APPS"
            label_color = "#6A1B9A"
            class = "untrusted"
            frame_period_ms = 100
            fallback = "color:#202020"

            [[vm]]
            name = "camera"
            socket = "/tmp/vgh-test/camera.sock"
            label = "CAMERA"
            label_color = "#E65100"
            class = "normal"
            frame_period_ms = 40

            [[placement]]
            vm = "cluster"
            zone = "cluster"
            scale = "fit"

            [[placement]]
            vm = "ivi"
            zone = "ivi"
            scale = "fit"

            [[placement]]
            vm = "apps"
            zone = "apps"
            scale = "fit"

            [[placement]]
            vm = "camera"
            zone = "ivi"
            scale = "fill"
            priority = 100
            preempts = true
            {{extraVm}}
            """;
        var result = LayoutLoader.Load(toml, "headunit-test.toml");
        Assert.True(result.Success, result.ToString());
        return result.Layout!;
    }

    public static readonly RectI ClusterContent = new(2, 22, 196, 276);
    public static readonly RectI IviContent = new(202, 22, 196, 126);
    public static readonly RectI AppsContent = new(202, 172, 196, 126);
}
