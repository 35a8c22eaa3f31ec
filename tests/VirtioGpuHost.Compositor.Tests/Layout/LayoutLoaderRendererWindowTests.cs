using VirtioGpuHost.Compositor.Core.Layout;

namespace VirtioGpuHost.Compositor.Tests.Layout;

/// <summary>[layout] renderer and the window keys of [[output]] (kind, fullscreen, title, resizable).</summary>
public class LayoutLoaderRendererWindowTests
{
    private static string Layout(string layoutTable, string outputKeys) => LayoutTestKit.OneVmLayout(layoutTable, outputKeys);

    [Fact]
    public void Defaults_AutoRendererAndHeadlessOutputs()
    {
        var l = LayoutTestKit.LoadClean(Layout("", ""));
        Assert.Equal(RendererKind.Auto, l.Renderer);
        Assert.Null(l.Outputs[0].Window);
    }

    [Theory]
    [InlineData("auto", RendererKind.Auto)]
    [InlineData("vulkan", RendererKind.Vulkan)]
    [InlineData("gl", RendererKind.Gl)]
    [InlineData("cpu", RendererKind.Cpu)]
    public void Renderer_EachValue_Parsed(string text, RendererKind kind)
    {
        Assert.Equal(kind, LayoutTestKit.LoadClean(Layout($"[layout]\nrenderer = \"{text}\"\n", "")).Renderer);
        Assert.Equal(text, LayoutLoader.RendererName(kind));
    }

    [Fact]
    public void Renderer_Unknown_ErrorWithSuggestion() =>
        LayoutTestKit.ExpectError(Layout("[layout]\nrenderer = \"vulcan\" #<\n", ""), "renderer", "renderer must be \"auto\", \"vulkan\", \"gl\" or \"cpu\", got \"vulcan\" (did you mean \"vulkan\"?)");

    [Fact]
    public void Renderer_NotAString_TypeError() =>
        LayoutTestKit.ExpectError(Layout("[layout]\nrenderer = 1 #<\n", ""), "renderer", "renderer must be a string, got the integer 1");

    [Fact]
    public void Renderer_AtTopLevel_BelongsInLayout()
    {
        string toml = "renderer = \"cpu\" #<\n" + Layout("", "");
        LayoutTestKit.ExpectError(toml, "renderer", "\"renderer\" belongs in the [layout] table");
    }

    [Fact]
    public void Window_AllKeys_Parsed()
    {
        var o = LayoutTestKit.LoadClean(Layout("", "kind = \"window\"\nfullscreen = true\ntitle = \"Head unit\"\nresizable = false\n")).Outputs[0];
        Assert.Equal(new OutputWindowConfig(Fullscreen: true, Title: "Head unit", Resizable: false), o.Window);
    }

    [Fact]
    public void Window_KindOnly_Windowed()
    {
        Assert.Equal(new OutputWindowConfig(), LayoutTestKit.LoadClean(Layout("", "kind = \"window\"\n")).Outputs[0].Window);
        Assert.Null(LayoutTestKit.LoadClean(Layout("", "kind = \"headless\"\n")).Outputs[0].Window);
    }

    [Fact]
    public void Window_UnknownKind_ErrorWithSuggestion() =>
        LayoutTestKit.ExpectError(Layout("", "kind = \"windo\" #<\n"), "kind", "kind must be \"headless\" or \"window\", got \"windo\" (did you mean \"window\"?)");

    [Fact]
    public void Window_FullscreenWithoutWindowKind_Error() =>
        LayoutTestKit.ExpectError(Layout("", "fullscreen = true #<\n"), "fullscreen", "fullscreen applies only to a window: add kind = \"window\"");

    [Fact]
    public void Window_TitleOnHeadless_Error() =>
        LayoutTestKit.ExpectError(Layout("", "kind = \"headless\"\ntitle = \"x\" #<\n"), "title", "title applies only to a window");

    [Fact]
    public void Window_FullscreenNotABool_TypeError() =>
        LayoutTestKit.ExpectError(Layout("", "kind = \"window\"\nfullscreen = \"yes\" #<\n"), "fullscreen", "fullscreen must be true or false, got the string \"yes\"");

    [Fact]
    public void Window_EmptyTitle_Error() =>
        LayoutTestKit.ExpectError(Layout("", "kind = \"window\"\ntitle = \"  \" #<\n"), "title", "title must be 1 to 128 printable characters");

    [Fact]
    public void Window_TypoInKey_DidYouMean() =>
        LayoutTestKit.ExpectError(Layout("", "kind = \"window\"\nfulscreen = true #<\n"), "fulscreen", "unknown key \"fulscreen\" (did you mean \"fullscreen\"?)");
}
