using Microsoft.Extensions.Logging;
using VirtioGpuHost.Compositor.Core.Geometry;
using VirtioGpuHost.Compositor.Core.Layout;
using VirtioGpuHost.Compositor.Rendering;
using VirtioGpuHost.Compositor.Rendering.Cpu;
using VirtioGpuHost.Device.Wire;
using static VirtioGpuHost.Compositor.Tests.Engine.EngineRig;

namespace VirtioGpuHost.Compositor.Tests.Engine;

/// <summary>Where <see cref="FlakyRenderer"/> loses its device.</summary>
public enum LoseAt
{
    /// <summary>BeginPass of pass N+1.</summary>
    BeginPass,
    /// <summary>The first DrawTexture of pass N+1 (half a frame drawn).</summary>
    Draw,
    /// <summary>Submit of pass N+1 (the whole frame recorded).</summary>
    Submit,
    /// <summary>The first texture update after N passes (before any pass of that frame).</summary>
    Update,
}

/// <summary>
/// A GPU renderer stand-in: the CPU renderer's pixels until its "device" is lost after
/// <c>passes</c> passes, then <see cref="RendererLostException"/> from every call (as a Vulkan
/// renderer after VK_ERROR_DEVICE_LOST).
/// </summary>
internal sealed class FlakyRenderer(int passes, LoseAt at, string name = "flaky-gpu") : IRenderer
{
    private readonly CpuRenderer _inner = new(new CpuRendererOptions { Threads = 1 });
    private int _passes;
    private bool _disposed;

    public bool Lost { get; private set; }
    public int Passes => _passes;
    public LoseAt At => at;
    public RendererCapabilities Capabilities { get; } = new(name, false, false, "a renderer that loses its device");

    private void ThrowIfLost()
    {
        if (Lost) throw new RendererLostException($"{name}: device lost (VK_ERROR_DEVICE_LOST)");
    }

    private void Lose()
    {
        Lost = true;
        ThrowIfLost();
    }

    public IRenderTarget CreateTarget(SizeI size)
    {
        ThrowIfLost();
        return _inner.CreateTarget(size);
    }

    public ITexture ImportSurface(in SurfaceView view)
    {
        ThrowIfLost();
        if (at == LoseAt.Update && _passes >= passes) Lose();
        return _inner.ImportSurface(view);
    }

    public void UpdateSurface(ITexture texture, in SurfaceView view, Region damage)
    {
        ThrowIfLost();
        if (at == LoseAt.Update && _passes >= passes) Lose();
        _inner.UpdateSurface(texture, view, damage);
    }

    public ITexture CreateTexture(SizeI size, ReadOnlySpan<uint> premultipliedBgra)
    {
        ThrowIfLost();
        return _inner.CreateTexture(size, premultipliedBgra);
    }

    public IRenderPass BeginPass(IRenderTarget target, Region damage)
    {
        ThrowIfLost();
        bool last = _passes == passes;
        if (last && at == LoseAt.BeginPass) Lose();
        _passes++;
        return new Pass(this, _inner.BeginPass(target, damage), last);
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _inner.Dispose();
    }

    private sealed class Pass(FlakyRenderer owner, IRenderPass inner, bool last) : IRenderPass
    {
        public void FillRect(RectI destination, ColorBgra color, Region clip)
        {
            owner.ThrowIfLost();
            inner.FillRect(destination, color, clip);
        }

        public void DrawTexture(ITexture texture, RectI source, RectI destination, Region clip, byte dim = 255)
        {
            owner.ThrowIfLost();
            if (last && owner.At == LoseAt.Draw) owner.Lose();
            inner.DrawTexture(texture, source, destination, clip, dim);
        }

        public void Submit()
        {
            owner.ThrowIfLost();
            if (last && owner.At == LoseAt.Submit) owner.Lose();
            inner.Submit();
        }
    }
}

/// <summary>A logger that keeps what it was told.</summary>
internal sealed class ListLogger : ILogger
{
    public List<(LogLevel Level, string Message)> Entries { get; } = new();

    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
    public bool IsEnabled(LogLevel logLevel) => true;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        lock (Entries) Entries.Add((logLevel, formatter(state, exception)));
    }
}

public class RendererFallbackTests
{
    /// <summary>The same guests driven into two engines: one on a flaky renderer, one CPU-only.</summary>
    private sealed class Twin : IDisposable
    {
        private readonly (FakeSource Cluster, FakeSource Ivi, FakeSource Apps, long IviGen, long ClusterGen) _a, _b;

        public Twin(EngineRig a, EngineRig b)
        {
            A = a;
            B = b;
            _a = Setup(a);
            _b = Setup(b);
        }

        public EngineRig A { get; }
        public EngineRig B { get; }

        private static (FakeSource, FakeSource, FakeSource, long, long) Setup(EngineRig rig)
        {
            var cluster = rig.Source(196, 276, 0);
            cluster.Fill((x, y) => 0xFF000000u | (uint)(x * 0x010203 + y * 0x030201) & 0xFFFFFF);
            var ivi = rig.Source(196, 126, 0xFF20A040);
            var apps = rig.Source(98, 63, 0xFFC02020); // scaled 2x into its zone
            long cgen = rig.Show("cluster", cluster);
            long igen = rig.Show("ivi", ivi);
            rig.Show("apps", apps);
            return (cluster, ivi, apps, igen, cgen);
        }

        /// <summary>Frame <paramref name="i"/>'s guest activity: a moving square in the IVI, a changed cluster row.</summary>
        public void Animate(int i)
        {
            foreach (var (rig, s) in new[] { (A, _a), (B, _b) })
            {
                int sx = (i * 13) % 180, sy = (i * 7) % 110;
                s.Ivi.Fill((x, y) => x >= sx && x < sx + 16 && y >= sy && y < sy + 16 ? 0xFFFFFFFFu : 0xFF20A040u);
                rig.Flush("ivi", s.IviGen, s.Ivi, s.Ivi.Rect);
                int row = (i * 31) % 276;
                for (int x = 0; x < 196; x++) s.Cluster.Pixels[row * 196 + x] = 0xFF000000u | (uint)(i * 0x112233 + x);
                rig.Flush("cluster", s.ClusterGen, s.Cluster, new VirtioGpuRect(0, (uint)row, 196, 1));
            }
        }

        public void Dispose()
        {
            A.Dispose();
            B.Dispose();
        }
    }

    [Theory]
    [InlineData(LoseAt.BeginPass)]
    [InlineData(LoseAt.Draw)]
    [InlineData(LoseAt.Submit)]
    [InlineData(LoseAt.Update)]
    public void DeviceLost_EngineMovesToCpu_OutputPixelIdenticalToCpuOnlyRun(LoseAt at)
    {
        var flaky = new FlakyRenderer(passes: 3, at);
        using var twin = new Twin(new EngineRig(HeadUnit(), renderer: flaky), new EngineRig(HeadUnit()));
        long fallbackFrame = -1;
        for (int i = 0; i < 10; i++)
        {
            twin.Animate(i);
            var ra = twin.A.Step();
            var rb = twin.B.Step();
            Assert.Equal(rb.Frame, ra.Frame);
            Assert.Equal(twin.B.Output().Snapshot(), twin.A.Output().Snapshot());
            var main = Assert.Single(ra.Outputs);
            Assert.All(main.SafetyChecks, c => Assert.True(c.Ok, c.ToString()));
            if (fallbackFrame < 0 && twin.A.Engine.RendererFallbacks > 0)
            {
                fallbackFrame = ra.Frame;
                // The frame that lost the device was drawn again, whole, and fully checked.
                Assert.Equal(new RectI(0, 0, 400, 300), main.Damage.Bounds);
                Assert.Equal(400L * 300, main.Damage.Area);
                var check = Assert.Single(main.SafetyChecks);
                Assert.True(check.Full);
                Assert.Equal(196 * 276, check.Pixels);
            }
        }
        Assert.True(flaky.Lost);
        Assert.Equal(4, fallbackFrame);
        Assert.Equal(1, twin.A.Engine.RendererFallbacks);
        Assert.IsType<CpuRenderer>(twin.A.Engine.Renderer);
        Assert.Equal(0, twin.A.Engine.SafetyFailures);
    }

    [Fact]
    public void DeviceLost_ChainGoesVulkanToCpu_SkippingAnUnavailableGl_AndLogsIt()
    {
        var log = new ListLogger();
        FlakyRenderer? flaky = null;
        var candidates = new RendererCandidate[]
        {
            new(RendererKind.Vulkan, (out string? reason) =>
            {
                reason = null;
                return flaky = new FlakyRenderer(passes: 2, LoseAt.Submit, "vulkan");
            }),
            RendererCandidate.Unavailable(RendererKind.Gl, "no EGL display"),
            RendererCandidate.Cpu(new CpuRendererOptions { Threads = 1 }),
        };
        Assert.True(RendererSelection.TrySelect(RendererKind.Auto, candidates, log, out var chain, out _));
        using var renderers = chain!;
        using var twin = new Twin(new EngineRig(HeadUnit(), new CompositorOptions { NextRenderer = renderers.Next }, renderers.Current), new EngineRig(HeadUnit()));
        for (int i = 0; i < 6; i++)
        {
            twin.Animate(i);
            twin.A.Step();
            twin.B.Step();
            Assert.Equal(twin.B.Output().Snapshot(), twin.A.Output().Snapshot());
        }
        Assert.True(flaky!.Lost);
        Assert.Equal(RendererKind.Cpu, renderers.CurrentKind);
        Assert.Same(renderers.Current, twin.A.Engine.Renderer);
        Assert.Equal(1, renderers.Fallbacks);
        Assert.Contains(log.Entries, e => e.Level == LogLevel.Warning && e.Message.Contains("vulkan lost its device", StringComparison.Ordinal)
            && e.Message.Contains("continuing on cpu (gl unavailable: no EGL display)", StringComparison.Ordinal));
    }

    [Fact]
    public void DeviceLost_NoRendererLeft_FrameFailsWithTheLoss_AndTheNextFrameTriesAgain()
    {
        var flaky = new FlakyRenderer(passes: 1, LoseAt.BeginPass);
        int asked = 0;
        using var rig = new EngineRig(HeadUnit(), new CompositorOptions { NextRenderer = _ => { asked++; return null; } }, flaky);
        var cluster = rig.Source(196, 276, 0xFF1040C0);
        long gen = rig.Show("cluster", cluster);
        rig.Step();
        rig.Flush("cluster", gen, cluster, new VirtioGpuRect(0, 0, 8, 8));
        Assert.Throws<RendererLostException>(() => rig.Step());
        Assert.Equal(1, asked);
        Assert.Same(flaky, rig.Engine.Renderer);
        // Nothing changed since, but the output is repainted whole again (and fails again).
        Assert.Throws<RendererLostException>(() => rig.Step());
        Assert.Equal(2, asked);
    }
}

public class RendererSelectionTests
{
    private static RendererCandidate Works(RendererKind kind) =>
        new(kind, (out string? reason) =>
        {
            reason = null;
            return new FlakyRenderer(int.MaxValue, LoseAt.Submit, RendererSelection.Name(kind));
        });

    [Fact]
    public void Auto_VulkanUnavailable_PicksGl_OneLineSaysWhy()
    {
        var log = new ListLogger();
        var ok = RendererSelection.TrySelect(RendererKind.Auto,
            [RendererCandidate.Unavailable(RendererKind.Vulkan, "no Vulkan device"), Works(RendererKind.Gl), Works(RendererKind.Cpu)],
            log, out var chain, out var decision);
        using var _ = chain;
        Assert.True(ok);
        Assert.Equal(RendererKind.Gl, chain!.CurrentKind);
        var line = Assert.Single(log.Entries);
        Assert.Equal(LogLevel.Information, line.Level);
        Assert.Equal(decision, line.Message);
        Assert.StartsWith("renderer: gl (auto: vulkan unavailable: no Vulkan device; cpu not needed): ", decision, StringComparison.Ordinal);
    }

    [Fact]
    public void Auto_NoGpuRenderer_PicksCpu_NamingBothReasons_AThrowingFactoryIsUnavailable()
    {
        var log = new ListLogger();
        var throwing = new RendererCandidate(RendererKind.Gl, (out string? reason) => throw new InvalidOperationException("eglInitialize failed"));
        Assert.True(RendererSelection.TrySelect(RendererKind.Auto, [RendererCandidate.Unavailable(RendererKind.Vulkan, "no loader"), throwing], log, out var chain, out var decision));
        using var _ = chain;
        Assert.IsType<CpuRenderer>(chain!.Current);
        Assert.Single(log.Entries);
        Assert.StartsWith("renderer: cpu (auto: vulkan unavailable: no loader; gl unavailable: InvalidOperationException: eglInitialize failed): kernels ", decision, StringComparison.Ordinal);
    }

    [Fact]
    public void Auto_VulkanWorks_FirstChoice_RestKeptForFallback()
    {
        var log = new ListLogger();
        Assert.True(RendererSelection.TrySelect(RendererKind.Auto, [Works(RendererKind.Vulkan), Works(RendererKind.Gl)], log, out var chain, out var decision));
        using var _ = chain;
        Assert.StartsWith("renderer: vulkan (auto: first choice; gl, cpu not needed)", decision, StringComparison.Ordinal);
        Assert.Single(log.Entries);
    }

    [Fact]
    public void Explicit_Unavailable_FailsWithOneErrorLine_AndTriesNothingElse()
    {
        var log = new ListLogger();
        bool cpuTried = false;
        var cpu = new RendererCandidate(RendererKind.Cpu, (out string? reason) =>
        {
            cpuTried = true;
            reason = null;
            return new CpuRenderer();
        });
        Assert.False(RendererSelection.TrySelect(RendererKind.Gl, [RendererCandidate.Unavailable(RendererKind.Gl, "no EGL display"), cpu], log, out var chain, out var decision));
        Assert.Null(chain);
        Assert.False(cpuTried);
        var line = Assert.Single(log.Entries);
        Assert.Equal(LogLevel.Error, line.Level);
        Assert.Equal("renderer: gl was asked for but cannot be used: gl unavailable: no EGL display", decision);
    }

    [Fact]
    public void Explicit_Vulkan_CpuOnlyAsDeviceLossFallback()
    {
        var log = new ListLogger();
        Assert.True(RendererSelection.TrySelect(RendererKind.Vulkan, [Works(RendererKind.Vulkan), Works(RendererKind.Gl)], log, out var chain, out var decision));
        using var renderers = chain!;
        Assert.StartsWith("renderer: vulkan (asked for; cpu only as the fallback if its device is lost)", decision, StringComparison.Ordinal);
        Assert.IsType<CpuRenderer>(renderers.Next(new RendererLostException()));
        Assert.Equal(RendererKind.Cpu, renderers.CurrentKind);
        Assert.Null(renderers.Next(new RendererLostException()));
    }

    [Fact]
    public void Explicit_Cpu_NoFallback()
    {
        Assert.True(RendererSelection.TrySelect(RendererKind.Cpu, [Works(RendererKind.Vulkan)], new ListLogger(), out var chain, out var decision));
        using var _ = chain;
        Assert.StartsWith("renderer: cpu (asked for): ", decision, StringComparison.Ordinal);
    }

    [Fact]
    public void Requested_CliOverridesTheLayout()
    {
        var layout = HeadUnit() with { Renderer = RendererKind.Gl };
        Assert.Equal(RendererKind.Gl, RendererSelection.Requested(null, layout));
        Assert.Equal(RendererKind.Cpu, RendererSelection.Requested(RendererKind.Cpu, layout));
        Assert.Equal(RendererKind.Auto, RendererSelection.Requested(null, HeadUnit()));
    }

    [Theory]
    [InlineData("auto", true)]
    [InlineData("vulkan", true)]
    [InlineData("gl", true)]
    [InlineData("cpu", true)]
    [InlineData("Vulkan", false)]
    [InlineData("opengl", false)]
    [InlineData("", false)]
    public void TryParse_ExactLowerCaseNames(string text, bool ok) => Assert.Equal(ok, RendererSelection.TryParse(text, out _));
}
