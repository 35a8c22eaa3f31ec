using System.Globalization;
using System.Reflection;
using System.Text;
using VirtioGpuHost.Compositor.Core.Geometry;
using VirtioGpuHost.Compositor.Core.Layout;

namespace VirtioGpuHost.Compositor.Tests.Layout;

/// <summary>Helpers shared by the layout tests: the repository, TOML text for a layout, canonical plan dumps.</summary>
internal static class LayoutTestKit
{
    public static string RepoRoot { get; } =
        typeof(LayoutTestKit).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().First(a => a.Key == "RepoRoot").Value!;

    public static string HeadUnitPath => Path.Combine(RepoRoot, "examples", "headunit.toml");

    public static LayoutConfig HeadUnit()
    {
        var result = LayoutLoader.LoadFile(HeadUnitPath);
        Assert.True(result.Success, result.ToString());
        return result.Layout!;
    }

    /// <summary>The TOML the loader should read back as <paramref name="layout"/> (the schema of docs/layout.md).</summary>
    public static string ToToml(LayoutConfig layout)
    {
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"[layout]\nlabel_height = {layout.LabelHeight}\nborder_width = {layout.BorderWidth}\n");
        foreach (var o in layout.Outputs)
            sb.Append(CultureInfo.InvariantCulture, $"\n[[output]]\nname = \"{o.Name}\"\nwidth = {o.Width}\nheight = {o.Height}\nrefresh_hz = {o.RefreshHz}\nbackground = \"{Rgb(o.Background)}\"\n");
        foreach (var z in layout.Zones)
            sb.Append(CultureInfo.InvariantCulture, $"\n[[zone]]\nname = \"{z.Name}\"\noutput = \"{z.Output}\"\nrect = [{z.Rect.X}, {z.Rect.Y}, {z.Rect.Width}, {z.Rect.Height}]\nz = {z.Z}\nclass = \"{LayoutLoader.ClassName(z.Class)}\"\n");
        foreach (var v in layout.Vms)
            sb.Append(CultureInfo.InvariantCulture, $"\n[[vm]]\nname = \"{v.Name}\"\nsocket = \"{v.Socket}\"\nlabel = \"{v.Label}\"\nlabel_color = \"{Rgb(v.LabelColor)}\"\nclass = \"{LayoutLoader.ClassName(v.Class)}\"\nframe_period_ms = {(long)v.FramePeriod.TotalMilliseconds}\ncontent_must_change = {(v.ContentMustChange ? "true" : "false")}\nfallback = \"{LayoutLoader.FallbackText(v.Fallback)}\"\n");
        foreach (var p in layout.Placements)
            sb.Append(CultureInfo.InvariantCulture, $"\n[[placement]]\nvm = \"{p.Vm}\"\nscanout = {p.Scanout}\nzone = \"{p.Zone}\"\nscale = \"{p.Scale.ToString().ToLowerInvariant()}\"\npriority = {p.Priority}\npreempts = {(p.Preempts ? "true" : "false")}\n");
        return sb.ToString();
    }

    public static string Rgb(ColorBgra c) => $"#{c.R:X2}{c.G:X2}{c.B:X2}";

    /// <summary>Everything in a layout, as text (records compare lists by reference).</summary>
    public static string Describe(LayoutConfig l) =>
        $"label {l.LabelHeight} border {l.BorderWidth}\n" +
        string.Join("\n", l.Outputs) + "\n" + string.Join("\n", l.Zones) + "\n" + string.Join("\n", l.Vms) + "\n" + string.Join("\n", l.Placements);

    /// <summary>Everything in a plan, as text (regions compare by reference).</summary>
    public static string Describe(FramePlan plan)
    {
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"output {plan.Output} chrome@{plan.ChromeStart}\n");
        foreach (var item in plan.Items)
        {
            string what = item switch
            {
                SurfaceItem s => $"surface {s.Surface} src {s.Source} dst {s.Destination} class {s.Class} dim {s.Dim}",
                FillItem f => $"fill {f.Destination} {f.Color}",
                LabelItem l => $"label \"{l.Text}\" {l.Destination} bg {l.Background} fg {l.Foreground}",
                _ => item.GetType().Name,
            };
            sb.Append(CultureInfo.InvariantCulture, $"  [{item.Zone}] {what} clip {item.Clip}\n");
        }
        foreach (var z in plan.Zones)
            sb.Append(CultureInfo.InvariantCulture, $"  zone {z} shown {z.ShownSurface} dim {z.Dim} label \"{z.Label}\"\n");
        return sb.ToString();
    }

    public static string Describe(IReadOnlyList<FramePlan> plans) => string.Join("\n", plans.Select(Describe));

    /// <summary>What tests put on the line an error must name (found with <see cref="LineOf"/>).</summary>
    public const string Marker = "#<";

    /// <summary>
    /// The smallest valid layout: one 800x480 output, one zone, VM "a" placed in it; each argument
    /// is TOML inserted into its table (the loader tests vary one table's keys at a time); the
    /// [layout] table and the output's keys take lines only when given.
    /// </summary>
    public static string OneVmLayout(string layoutTable = "", string outputKeys = "", string vmKeys = "", string placementKeys = "") => $$"""
        {{Lines(layoutTable)}}[[output]]
        name = "main"
        width = 800
        height = 480
        {{Lines(outputKeys)}}
        [[zone]]
        name = "z"
        output = "main"
        rect = [0, 0, 800, 480]
        class = "normal"

        [[vm]]
        name = "a"
        socket = "/tmp/vgh/a.sock"
        label = "A"
        label_color = "#112233"
        class = "normal"
        {{vmKeys}}

        [[placement]]
        vm = "a"
        zone = "z"
        {{placementKeys}}
        """;

    // An empty slot adds no line, so the VM's keys keep the line numbers the tests expect.
    private static string Lines(string toml) => toml.Length == 0 ? "" : toml + "\n";

    /// <summary>Loads <paramref name="toml"/> and asserts it has no error and no warning.</summary>
    public static LayoutConfig LoadClean(string toml)
    {
        var result = LayoutLoader.Load(toml, "layout.toml");
        Assert.True(result.Success, result.ToString());
        Assert.Empty(result.Diagnostics);
        return result.Layout!;
    }

    /// <summary>Loads <paramref name="toml"/> and asserts an error on the <see cref="Marker"/> line for <paramref name="field"/> whose text contains <paramref name="fragment"/>.</summary>
    public static LayoutDiagnostic ExpectError(string toml, string field, string fragment)
    {
        int line = LineOf(toml, Marker);
        var result = LayoutLoader.Load(toml, "layout.toml");
        Assert.False(result.Success, "the layout was accepted");
        Assert.Null(result.Layout);
        var hit = result.Errors.FirstOrDefault(d => d.Line == line && d.Field == field && d.Message.Contains(fragment, StringComparison.Ordinal));
        Assert.True(hit is not null, $"no error at line {line} on {field} containing '{fragment}'; got:\n{result}");
        string text = hit.ToString();
        Assert.StartsWith($"layout.toml:{line}: ", text, StringComparison.Ordinal);
        Assert.Contains(field, text, StringComparison.Ordinal);
        return hit;
    }

    /// <summary>The 1-based line of the only line holding <paramref name="marker"/>.</summary>
    public static int LineOf(string text, string marker)
    {
        var lines = text.Split('\n');
        var hits = Enumerable.Range(0, lines.Length).Where(i => lines[i].Contains(marker, StringComparison.Ordinal)).ToList();
        Assert.True(hits.Count == 1, $"marker {marker} found {hits.Count} times");
        return hits[0] + 1;
    }

    /// <summary>Whether region <paramref name="a"/> lies inside <paramref name="b"/>.</summary>
    public static bool IsInside(Region a, Region b)
    {
        var rest = a.Clone();
        rest.Subtract(b);
        return rest.IsEmpty;
    }

    public static Region Intersect(Region a, RectI r)
    {
        var x = a.Clone();
        x.Intersect(r);
        return x;
    }
}
