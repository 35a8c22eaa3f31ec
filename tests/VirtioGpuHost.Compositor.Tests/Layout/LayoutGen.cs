using System.Text;
using CsCheck;
using VirtioGpuHost.Compositor.Core.Geometry;
using VirtioGpuHost.Compositor.Core.Layout;
using VirtioGpuHost.Compositor.Core.Scene;

namespace VirtioGpuHost.Compositor.Tests.Layout;

/// <summary>A random layout with a random scene state (and the scene's dictionaries built in reverse, for determinism checks).</summary>
public sealed record LayoutCase(LayoutConfig Layout, SceneState Scene, SceneState SceneReversed)
{
    public override string ToString()
    {
        var sb = new StringBuilder(LayoutTestKit.Describe(Layout)).Append('\n');
        foreach (var (vm, h) in Scene.Health) sb.Append($"health {vm} {h}\n");
        foreach (var (k, s) in Scene.Surfaces) sb.Append($"surface {k} {s.Width}x{s.Height}\n");
        return sb.ToString();
    }
}

/// <summary>
/// Generators of random layouts: small outputs (so plans can be rasterised cheaply), overlapping
/// zones with random z and classes, VMs with every fallback kind, ordinary and preempting
/// placements with random priorities; and random scenes (health, enabled scanouts, sizes).
/// <see cref="Valid"/> layouts obey every loader rule; <see cref="Any"/> layouts also scramble
/// the classes afterwards (lower-class VMs in higher-class zones, fallbacks of any class), which
/// the loader would reject but the solver must still keep safe.
/// </summary>
public static class LayoutGen
{
    private sealed record OutputRaw(int Width, int Height, uint Background);
    private sealed record ZoneRaw(int Output, double W, double H, double X, double Y, int Z, int Class);
    private sealed record VmRaw(int Class, uint Color, int FallbackKind, int FallbackVm, int FallbackScanout, uint FallbackColor, bool MustChange);
    private sealed record PlacementRaw(int Zone, int Vm, int Scanout, int Scale, int Priority, bool Preempts);
    private sealed record SurfaceRaw(int Kind, int Width, int Height);

    private static readonly Gen<OutputRaw> GenOutput = Gen.Select(Gen.Int[40, 160], Gen.Int[40, 120], Gen.UInt, (w, h, c) => new OutputRaw(w, h, c));

    private static readonly Gen<ZoneRaw> GenZone = Gen.Select(Gen.Int[0, 1], Gen.Double[0, 1], Gen.Double[0, 1], Gen.Double[0, 1], Gen.Double[0, 1], Gen.Int[-2, 3], Gen.Int[0, 2],
        (o, w, h, x, y, z, c) => new ZoneRaw(o, w, h, x, y, z, c));

    private static readonly Gen<VmRaw> GenVm = Gen.Select(Gen.Int[0, 2], Gen.UInt, Gen.Int[0, 2], Gen.Int[0, 3], Gen.Int[0, 1], Gen.UInt, Gen.Bool,
        (c, col, fk, fv, fs, fc, m) => new VmRaw(c, col, fk, fv, fs, fc, m));

    private static readonly Gen<PlacementRaw> GenPlacement = Gen.Select(Gen.Int[0, 7], Gen.Int[0, 3], Gen.Int[0, 1], Gen.Int[0, 3], Gen.Int[0, 4], Gen.Frequency((2, Gen.Const(false)), (3, Gen.Const(true))),
        (z, v, s, sc, p, pre) => new PlacementRaw(z, v, s, sc, p, pre));

    private static readonly Gen<SurfaceRaw> GenSurface = Gen.Select(Gen.Frequency((1, Gen.Const(0)), (4, Gen.Const(1))), Gen.Int[1, 300], Gen.Int[1, 300],
        (k, w, h) => new SurfaceRaw(k, w, h));

    /// <summary>Layouts that pass every rule of <see cref="LayoutLoader"/>.</summary>
    public static Gen<LayoutConfig> ValidLayout { get; } =
        Gen.Select(Gen.Int[8, 12], Gen.Int[0, 3], GenOutput.Array[1, 2], GenZone.Array[1, 5], GenVm.Array[1, 4], GenPlacement.Array[0, 8],
            (label, border, outputs, zones, vms, placements) => Build(label, border, outputs, zones, vms, placements));

    /// <summary>Two valid layouts on the same outputs (names, sizes, backgrounds): a reload that keeps the screens.</summary>
    public static Gen<(LayoutConfig A, LayoutConfig B)> ValidLayoutPairOnSameOutputs { get; } =
        GenOutput.Array[1, 2].SelectMany(outputs => Gen.Select(OnOutputs(outputs), OnOutputs(outputs)));

    private static Gen<LayoutConfig> OnOutputs(OutputRaw[] outputs) =>
        Gen.Select(Gen.Int[8, 12], Gen.Int[0, 3], GenZone.Array[1, 5], GenVm.Array[1, 4], GenPlacement.Array[0, 8],
            (label, border, zones, vms, placements) => Build(label, border, outputs, zones, vms, placements));

    /// <summary>Valid layouts, with a random scene.</summary>
    public static Gen<LayoutCase> Valid { get; } = ValidLayout.SelectMany(WithScene);

    /// <summary>Valid layouts, half of them with scrambled classes (not loadable, but the solver must stay safe).</summary>
    public static Gen<LayoutCase> Any { get; } =
        Gen.Select(ValidLayout, Gen.Bool, Gen.Int[0, 2].Array[8], Gen.Int[0, 2].Array[4], (l, scramble, zc, vc) => scramble ? Scramble(l, zc, vc) : l)
            .SelectMany(WithScene);

    private static Gen<LayoutCase> WithScene(LayoutConfig layout) =>
        Gen.Select(Gen.Int[0, 2].Array[layout.Vms.Count], GenSurface.Array[layout.Vms.Count * 2], (health, surfaces) => MakeCase(layout, health, surfaces));

    private static LayoutCase MakeCase(LayoutConfig layout, int[] health, SurfaceRaw[] surfaces)
    {
        var entriesH = layout.Vms.Select((v, i) => (v.Name, (VmHealth)health[i])).ToList();
        var entriesS = new List<(SurfaceKey, SurfaceInfo)>();
        for (int i = 0; i < layout.Vms.Count; i++)
        {
            for (int s = 0; s < 2; s++)
            {
                var raw = surfaces[i * 2 + s];
                entriesS.Add((new SurfaceKey(layout.Vms[i].Name, s), raw.Kind == 0 ? default : new SurfaceInfo(raw.Width, raw.Height)));
            }
        }
        return new LayoutCase(layout, Scene(entriesH, entriesS), Scene(Enumerable.Reverse(entriesH), Enumerable.Reverse(entriesS)));

        static SceneState Scene(IEnumerable<(string, VmHealth)> h, IEnumerable<(SurfaceKey, SurfaceInfo)> s) =>
            new(h.ToDictionary(x => x.Item1, x => x.Item2), s.ToDictionary(x => x.Item1, x => x.Item2));
    }

    private static ColorBgra Opaque(uint v) => ColorBgra.Opaque((byte)(v >> 16), (byte)(v >> 8), (byte)v);

    private static LayoutConfig Build(int label, int border, OutputRaw[] outputsRaw, ZoneRaw[] zonesRaw, VmRaw[] vmsRaw, PlacementRaw[] placementsRaw)
    {
        var outputs = outputsRaw.Select((o, i) => new OutputConfig($"o{i}", o.Width, o.Height, 60, Opaque(o.Background))).ToList();

        var vmClasses = vmsRaw.Select(v => (SafetyClass)v.Class).ToList();
        var maxVmClass = vmClasses.Max();

        var zones = new List<ZoneConfig>();
        for (int i = 0; i < zonesRaw.Length; i++)
        {
            var z = zonesRaw[i];
            var o = outputs[z.Output % outputs.Count];
            int minW = 2 * border + 1, minH = label + 2 * border + 1;
            int w = minW + (int)(z.W * (o.Width - minW));
            int h = minH + (int)(z.H * (o.Height - minH));
            int x = (int)(z.X * (o.Width - w));
            int y = (int)(z.Y * (o.Height - h));
            // Every zone needs a VM of at least its class to be placeable.
            var cls = (SafetyClass)Math.Min(z.Class, (int)maxVmClass);
            zones.Add(new ZoneConfig($"z{i}", o.Name, new RectI(x, y, w, h), z.Z, cls));
        }

        var names = vmsRaw.Select((_, i) => $"v{i}").ToList();

        // Placements: VMs of at least the zone's class, no duplicates, one ordinary placement per zone.
        var chosen = new List<(int Zone, int Vm, int Scanout, ScaleMode Scale, int Raw, bool Preempts)>();
        var ordinary = new Dictionary<int, int>(); // zone -> priority
        foreach (var p in placementsRaw)
        {
            int zi = p.Zone % zones.Count;
            var candidates = Enumerable.Range(0, names.Count).Where(v => vmClasses[v] >= zones[zi].Class).ToList();
            int vi = candidates[p.Vm % candidates.Count];
            if (chosen.Any(c => c.Zone == zi && c.Vm == vi && c.Scanout == p.Scanout)) continue;
            bool preempts = p.Preempts || ordinary.ContainsKey(zi);
            if (!preempts) ordinary[zi] = p.Priority;
            chosen.Add((zi, vi, p.Scanout, (ScaleMode)p.Scale, p.Priority, preempts));
        }
        for (int zi = 0; zi < zones.Count; zi++)
        {
            if (chosen.Any(c => c.Zone == zi)) continue;
            int vi = Enumerable.Range(0, names.Count).First(v => vmClasses[v] >= zones[zi].Class);
            chosen.Add((zi, vi, 0, ScaleMode.Fit, 0, false));
            ordinary[zi] = 0;
        }
        var placements = chosen.Select(c => new PlacementConfig(names[c.Vm], c.Scanout, zones[c.Zone].Name, c.Scale,
            c.Preempts && ordinary.TryGetValue(c.Zone, out int op) ? op + 1 + c.Raw : c.Raw, c.Preempts)).ToList();

        var vms = new List<VmConfig>();
        for (int i = 0; i < vmsRaw.Length; i++)
        {
            var v = vmsRaw[i];
            FallbackConfig fallback = v.FallbackKind switch
            {
                1 => new FallbackConfig(FallbackKind.Color, Opaque(v.FallbackColor)),
                2 => new FallbackConfig(FallbackKind.OtherVm, default, names[v.FallbackVm % names.Count], v.FallbackScanout),
                _ => new FallbackConfig(FallbackKind.Dim),
            };
            if (fallback.Kind == FallbackKind.OtherVm)
            {
                int target = v.FallbackVm % names.Count;
                var shownIn = placements.Where(p => p.Vm == names[i]).Select(p => zones.First(z => z.Name == p.Zone).Class);
                if (target == i || shownIn.Any(c => vmClasses[target] < c)) fallback = new FallbackConfig(FallbackKind.Dim);
            }
            vms.Add(new VmConfig(names[i], $"/tmp/vgh/{names[i]}.sock", $"V{i}", Opaque(v.Color), vmClasses[i], TimeSpan.FromMilliseconds(100), v.MustChange, fallback));
        }

        return new LayoutConfig(outputs, zones, vms, placements, label, border);
    }

    private static LayoutConfig Scramble(LayoutConfig l, int[] zoneClasses, int[] vmClasses) => l with
    {
        Zones = l.Zones.Select((z, i) => z with { Class = (SafetyClass)zoneClasses[i % zoneClasses.Length] }).ToList(),
        Vms = l.Vms.Select((v, i) => v with { Class = (SafetyClass)vmClasses[i % vmClasses.Length] }).ToList(),
    };
}
