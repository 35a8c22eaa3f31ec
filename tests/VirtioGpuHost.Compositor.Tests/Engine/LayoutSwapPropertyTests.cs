using CsCheck;
using VirtioGpuHost.Compositor.Core.Layout;
using VirtioGpuHost.Compositor.Core.Scene;
using VirtioGpuHost.Compositor.Outputs;
using VirtioGpuHost.Compositor.Rendering.Cpu;
using VirtioGpuHost.Compositor.Tests.Layout;

namespace VirtioGpuHost.Compositor.Tests.Engine;

/// <summary>
/// Layout changes are atomic per frame: whatever layouts are set, from whichever thread and
/// when, every composed frame is exactly what a fresh compositor running that frame's layout
/// alone draws, on every output (never a mix of two layouts).
/// </summary>
public class LayoutSwapPropertyTests
{
    private const int Vms = 4, Scanouts = 2;

    /// <summary>Guest surfaces for every VM and scanout the generator can name (v0..v3, scanouts 0 and 1), each connected once.</summary>
    private sealed class Guests : IDisposable
    {
        private readonly FakeSource[,] _sources = new FakeSource[Vms, Scanouts];
        private readonly long[] _generations = new long[Vms];
        private readonly SurfaceStore _store;

        public Guests(SurfaceStore store)
        {
            _store = store;
            for (int v = 0; v < Vms; v++)
            {
                _generations[v] = store.Connect($"v{v}");
                for (int s = 0; s < Scanouts; s++)
                {
                    var src = new FakeSource(23 + 11 * v + 5 * s, 17 + 7 * v + 3 * s);
                    int seed = v * 2 + s;
                    src.Fill((x, y) => 0xFF000000u | (uint)((x * 37 + seed * 50) & 0xFF) << 16 | (uint)((y * 23 + seed * 90) & 0xFF) << 8 | (uint)(seed * 31 & 0xFF));
                    _sources[v, s] = src;
                    store.SetScanout(new SurfaceKey($"v{v}", s), _generations[v], src, src.Rect, src.Format);
                }
            }
        }

        /// <summary>Every guest flushes its whole surface (keeps every watchdog live).</summary>
        public void FlushAll()
        {
            for (int v = 0; v < Vms; v++)
                for (int s = 0; s < Scanouts; s++)
                {
                    var src = _sources[v, s];
                    _store.Flushed(new SurfaceKey($"v{v}", s), _generations[v], src, src.Rect, src.Format, src.Rect);
                }
        }

        public void Dispose()
        {
            foreach (var s in _sources) s.Dispose();
        }
    }

    /// <summary>What a fresh compositor shows with <paramref name="layout"/>: output name → pixels.</summary>
    private static Dictionary<string, uint[]> Reference(LayoutConfig layout)
    {
        using var rig = new EngineRig(layout, renderer: new CpuRenderer(new CpuRendererOptions { Threads = 1 }));
        using var guests = new Guests(rig.Store);
        guests.FlushAll();
        rig.Step();
        return layout.Outputs.ToDictionary(o => o.Name, o => rig.Output(o.Name).Snapshot());
    }

    private static void AssertFrameIsOneWholeLayout(EngineRig rig, FrameReport report, IReadOnlyList<LayoutConfig> candidates, Dictionary<LayoutConfig, Dictionary<string, uint[]>> references)
    {
        Assert.Contains(candidates, l => ReferenceEquals(l, report.Layout));
        var expected = references.TryGetValue(report.Layout, out var e) ? e : references[report.Layout] = Reference(report.Layout);
        Assert.Equal(report.Layout.Outputs.Select(o => o.Name).Order(), report.Outputs.Select(o => o.Output).Order());
        foreach (var (name, pixels) in expected)
        {
            var actual = ((HeadlessOutput)rig.Engine.Output(name)!).Snapshot();
            for (int i = 0; i < pixels.Length; i++)
                if (actual[i] != pixels[i])
                    Assert.Fail($"frame {report.Frame}, output {name}: pixel {i} is {actual[i]:x8}, the layout alone draws {pixels[i]:x8}; health {string.Join(",", report.Health.Select(h => $"{h.Key}={h.Value}"))}; layout {LayoutTestKit.Describe(report.Layout)}");
        }
    }

    /// <summary>
    /// The guests here flush the same pixels every frame, so VMs whose content must change would
    /// (rightly) go stale and differ from a fresh compositor's first frame: switch that off.
    /// </summary>
    private static LayoutConfig Unchanging(LayoutConfig l) => l with { Vms = l.Vms.Select(v => v with { ContentMustChange = false }).ToList() };

    private static readonly Gen<LayoutConfig> Layouts = LayoutGen.ValidLayout.Select(Unchanging);

    /// <summary>Pairs on the same outputs: the outputs are kept across the swap, so only damage tracking repaints them.</summary>
    private static readonly Gen<(LayoutConfig, LayoutConfig)> Pairs = LayoutGen.ValidLayoutPairOnSameOutputs.Select(p => (Unchanging(p.A), Unchanging(p.B)));

    [Fact]
    public void LayoutsSetBetweenFrames_EveryFrameIsExactlyOneWholeLayout()
    {
        Gen.Select(Gen.Frequency((1, Layouts.Array[2, 4]), (2, Pairs.Select(p => new[] { p.Item1, p.Item2 }))), Gen.Int[0, 3].Array[6]).Sample((layouts, order) =>
        {
            var references = new Dictionary<LayoutConfig, Dictionary<string, uint[]>>(ReferenceEqualityComparer.Instance);
            using var rig = new EngineRig(layouts[0], renderer: new CpuRenderer(new CpuRendererOptions { Threads = 1 }));
            using var guests = new Guests(rig.Store);
            foreach (int pick in order)
            {
                rig.Engine.SetLayout(layouts[pick % layouts.Length]);
                guests.FlushAll();
                var report = rig.Step();
                Assert.Same(layouts[pick % layouts.Length], report.Layout);
                AssertFrameIsOneWholeLayout(rig, report, layouts, references);
            }
        }, iter: 60);
    }

    [Fact]
    public void LayoutsSetFromAnotherThreadWhileFramesCompose_EveryFrameIsExactlyOneWholeLayout()
    {
        Gen.Frequency((1, Gen.Select(Layouts, Layouts)), (2, Pairs)).Sample(((LayoutConfig a, LayoutConfig b) pair) =>
        {
            var (a, b) = pair;
            var layouts = new[] { a, b };
            var references = new Dictionary<LayoutConfig, Dictionary<string, uint[]>>(ReferenceEqualityComparer.Instance);
            using var rig = new EngineRig(a, renderer: new CpuRenderer(new CpuRendererOptions { Threads = 2 }));
            using var guests = new Guests(rig.Store);
            using var stop = new CancellationTokenSource();
            var swapper = Task.Run(() =>
            {
                for (int i = 0; !stop.IsCancellationRequested; i++)
                {
                    rig.Engine.SetLayout(layouts[i & 1]);
                    Thread.SpinWait(200);
                }
            });
            try
            {
                for (int f = 0; f < 8; f++)
                {
                    guests.FlushAll();
                    var report = rig.Step();
                    AssertFrameIsOneWholeLayout(rig, report, layouts, references);
                }
            }
            finally
            {
                stop.Cancel();
                swapper.Wait();
            }
        }, iter: 25);
    }
}
