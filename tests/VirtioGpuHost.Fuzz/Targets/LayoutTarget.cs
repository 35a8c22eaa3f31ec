using System.Text;
using VirtioGpuHost.Compositor.Core.Layout;

namespace VirtioGpuHost.Fuzz.Targets;

/// <summary>
/// The layout config parser: <see cref="LayoutLoader.Load"/> (Tomlyn's parser, then the schema,
/// cross-reference and safety-rule checks) on the input as UTF-8 text.
/// </summary>
/// <remarks>
/// Expected exceptions: none: LayoutLoader documents that bad input never throws. It also
/// catches its own bugs and reports them as an "internal error" diagnostic so that a reload
/// never takes the compositor down; for the fuzzer such a diagnostic is a crash. Checks: a
/// result with a layout has no error diagnostic, a result without one has at least one, and
/// every diagnostic has a line inside the file.
/// </remarks>
public sealed class LayoutTarget : IFuzzTarget
{
    public const string InternalErrorPrefix = "internal error while reading the layout";

    public string Name => "layout";
    public string Description => "layout TOML text into LayoutLoader.Load (parser, schema, rules)";
    public int MaxInputLength => 32768;

    public void Run(ReadOnlySpan<byte> input)
    {
        string text = Encoding.UTF8.GetString(input);
        var result = LayoutLoader.Load(text, "fuzz.toml");
        foreach (var d in result.Diagnostics)
        {
            if (d.Message.StartsWith(InternalErrorPrefix, StringComparison.Ordinal))
                throw new FuzzInvariantException(d.ToString());
            _ = d.ToString();
        }
        bool errors = result.Errors.Any();
        if (result.Success == errors)
            throw new FuzzInvariantException($"layout {(result.Success ? "loaded" : "rejected")} with {(errors ? "" : "no ")}errors:\n{result}");
        int lines = text.Count(c => c == '\n') + 1;
        foreach (var d in result.Diagnostics)
            if (d.Line < 0 || d.Line > lines + 1)
                throw new FuzzInvariantException($"diagnostic names line {d.Line} of a {lines}-line file: {d}");
    }

    /// <summary>The example layouts of the repository and a few small ones covering each table and key.</summary>
    public IEnumerable<(string Name, byte[] Data)> Seeds()
    {
        string examples = Path.Combine(RepoRoot.Path, "examples");
        foreach (var file in Directory.GetFiles(examples, "*.toml").Order(StringComparer.Ordinal))
            yield return (Path.GetFileNameWithoutExtension(file), File.ReadAllBytes(file));
        yield return ("minimal", Encoding.UTF8.GetBytes("""
            [[output]]
            name = "main"
            width = 1280
            height = 720

            [[zone]]
            name = "all"
            output = "main"
            rect = [0, 0, 1280, 720]
            class = "normal"

            [[vm]]
            name = "a"
            socket = "/tmp/a.sock"
            label = "A"
            class = "normal"

            [[placement]]
            vm = "a"
            zone = "all"
            """));
        yield return ("window-blob-fallback", Encoding.UTF8.GetBytes("""
            [layout]
            label_height = 20
            border_width = 1
            renderer = "cpu"

            [[output]]
            name = "w"
            width = 800
            height = 600
            kind = "window"
            title = "fuzz"
            fullscreen = false

            [[zone]]
            name = "top"
            output = "w"
            rect = [0, 0, 800, 300]
            z = 1
            class = "critical"

            [[zone]]
            name = "bottom"
            output = "w"
            rect = [0, 300, 800, 300]
            class = "untrusted"

            [[vm]]
            name = "cluster"
            socket = "/tmp/c.sock"
            label = "Cluster"
            label_color = "#ff8800"
            class = "critical"
            frame_period_ms = 200
            content_must_change = true
            fallback = "color:#102030"
            blob = true
            host_visible_mib = 64

            [[vm]]
            name = "app"
            socket = "/tmp/app.sock"
            label = "App"
            class = "untrusted"
            fallback = "vm:cluster"

            [[placement]]
            vm = "cluster"
            zone = "top"
            scale = "fit"
            priority = 10

            [[placement]]
            vm = "app"
            scanout = 0
            zone = "bottom"
            scale = "integer"
            preempts = true
            """));
    }
}
