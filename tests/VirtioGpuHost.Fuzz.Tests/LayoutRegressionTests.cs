using System.Text;
using VirtioGpuHost.Compositor.Core.Layout;

namespace VirtioGpuHost.Fuzz.Tests;

/// <summary>What the layout inputs found by fuzzing must produce now: a syntax error, not an internal error.</summary>
public sealed class LayoutRegressionTests
{
    private static LayoutLoadResult Load(string name) =>
        LayoutLoader.Load(Encoding.UTF8.GetString(File.ReadAllBytes(Path.Combine(RepoRoot.FuzzProject, "regressions", "layout", name))), "fuzz.toml");

    [Fact]
    public void A_trailing_backslash_is_a_syntax_error_on_its_line()
    {
        var r = Load("tomlyn-surrogate-escape");
        Assert.False(r.Success);
        var e = Assert.Single(r.Errors);
        Assert.StartsWith("TOML: invalid escape sequence", e.Message);
        Assert.Equal(1, e.Line);
    }

    [Theory]
    [InlineData("a = \"\\uD800\"\n", 1)]
    [InlineData("# x\nb = \"\\U00110000\"\n", 2)]
    public void A_surrogate_or_out_of_range_escape_is_rejected_with_its_line(string toml, int line)
    {
        var r = LayoutLoader.Load(toml, "fuzz.toml");
        Assert.False(r.Success);
        Assert.DoesNotContain(r.Diagnostics, d => d.Message.StartsWith("internal error", StringComparison.Ordinal));
        Assert.Contains(r.Errors, d => d.Line == line);
    }

    [Fact]
    public void Nesting_past_Tomlyns_limit_is_a_syntax_error()
    {
        var r = Load("tomlyn-nesting-depth");
        Assert.False(r.Success);
        Assert.Contains(r.Errors, d => d.Message.StartsWith("TOML: The maximum depth of 64 has been exceeded", StringComparison.Ordinal));
        Assert.DoesNotContain(r.Diagnostics, d => d.Message.StartsWith("internal error", StringComparison.Ordinal));
    }
}
