using System.CommandLine;
using Microsoft.Extensions.Logging;
using VirtioGpuHost.Compositor;
using VirtioGpuHost.Compositor.Core.Geometry;
using VirtioGpuHost.Compositor.Core.Layout;
using VirtioGpuHost.Compositor.Outputs;
using VirtioGpuHost.Compositor.Outputs.Window;
using VirtioGpuHost.Compositor.Rendering;
using VirtioGpuHost.Compositor.Rendering.OpenGL;
using VirtioGpuHost.Compositor.Rendering.Vulkan;

namespace VirtioGpuHost.Cli;

/// <summary>
/// `--renderer` and `--window` for serve and demo: the renderer candidates this binary has
/// (Vulkan, OpenGL through EGL, CPU) for <see cref="RendererSelection"/>, and the output
/// factory that opens a window for outputs of kind "window".
/// </summary>
internal static class RendererWiring
{
    public static Option<string?> RendererOption() => new("--renderer")
    {
        Description = "auto (vulkan, else gl, else cpu), vulkan, gl or cpu; overrides the layout's [layout] renderer (default: the layout's, else auto)",
        HelpName = "auto|vulkan|gl|cpu",
        Validators =
        {
            r =>
            {
                string? v = r.GetValueOrDefault<string?>();
                if (v is not null && !RendererSelection.TryParse(v, out _))
                    r.AddError($"--renderer must be one of {string.Join(", ", RendererSelection.Names)}, got \"{v}\"");
            },
        },
    };

    public static Option<bool> WindowOption() => new("--window")
    {
        Description = "Show every output in a window (as if it said kind = \"window\"); outputs of kind \"window\" open one anyway",
    };

    /// <summary>
    /// The renderers this build has, in auto order. With <paramref name="skipSoftware"/> (auto),
    /// a GPU API that only has a software implementation (Mesa lavapipe, llvmpipe) counts as
    /// unavailable: our CPU renderer does the same frame one to two orders of magnitude faster
    /// (docs/benchmarks.md). Naming the renderer explicitly still gets it.
    /// </summary>
    /// <param name="windows">Some output is a window: the Vulkan renderer's instance gets the
    /// window surface extensions (and its device VK_KHR_swapchain) so windows present through a
    /// Vulkan swapchain instead of reading frames back.</param>
    public static IReadOnlyList<RendererCandidate> Candidates(bool skipSoftware = false, bool windows = false) =>
    [
        new(RendererKind.Vulkan, (out string? reason) => Hardware(VulkanRenderer.TryCreate(out reason, VulkanOptions(windows)), skipSoftware, ref reason)),
        new(RendererKind.Gl, (out string? reason) => Hardware(GlRenderer.TryCreate(out reason), skipSoftware, ref reason)),
        RendererCandidate.Cpu(),
    ];

    /// <summary>The Vulkan renderer's options: window presentation when some output is a window.</summary>
    public static VulkanRendererOptions VulkanOptions(bool windows) =>
        windows ? new VulkanRendererOptions { InstanceExtensions = WindowOutput.VulkanInstanceExtensions } : new VulkanRendererOptions();

    /// <summary>Software rasterizers as their drivers name them (Vulkan reports the device type Cpu).</summary>
    private static readonly string[] SoftwareMarkers = ["llvmpipe", "lavapipe", "softpipe", "swrast", "SwiftShader", "(Cpu,"];

    private static IRenderer? Hardware(IRenderer? renderer, bool skipSoftware, ref string? reason)
    {
        if (renderer is null || !skipSoftware) return renderer;
        string details = renderer.Capabilities.Details;
        if (!SoftwareMarkers.Any(m => details.Contains(m, StringComparison.OrdinalIgnoreCase))) return renderer;
        renderer.Dispose();
        reason = $"only a software implementation ({details}), slower than the CPU renderer";
        return null;
    }

    /// <summary>Picks the renderer (the CLI's choice, else the layout's) and logs the one line that says which and why.</summary>
    public static RendererChain? Select(string? cli, LayoutConfig layout, ILogger log, bool windowAll = false)
    {
        bool windows = windowAll || layout.Outputs.Any(o => o.Window is not null);
        RendererKind? asked = cli is null ? null : RendererSelection.TryParse(cli, out var k) ? k : RendererKind.Auto;
        var kind = RendererSelection.Requested(asked, layout);
        return RendererSelection.TrySelect(kind, Candidates(skipSoftware: kind == RendererKind.Auto, windows), log, out var chain, out _) ? chain : null;
    }

    /// <summary>Device-loss fallback along the chain, and window outputs where the layout (or --window) asks for them.</summary>
    public static CompositorHostOptions HostOptions(RendererChain chain, bool windowAll, ILoggerFactory loggers)
    {
        var log = loggers.CreateLogger("VirtioGpuHost.Window");
        return new CompositorHostOptions
        {
            Compositor = new CompositorOptions { NextRenderer = chain.Next },
            OutputFactory = (o, renderer) => MakeOutput(o, renderer, windowAll, log),
        };
    }

    private static IOutput MakeOutput(OutputConfig o, IRenderer renderer, bool windowAll, ILogger log)
    {
        var size = new SizeI(o.Width, o.Height);
        var window = o.Window ?? (windowAll ? new OutputWindowConfig() : null);
        if (window is null) return new HeadlessOutput(renderer, o.Name, size, o.RefreshHz);
        var options = new WindowOutputOptions { Fullscreen = window.Fullscreen, Title = window.Title, Resizable = window.Resizable };
        var output = WindowOutput.TryCreate(renderer, o.Name, size, o.RefreshHz, options, log, out var error);
        if (output is not null) return output;
        // No display here: the output still composes (snapshots, checks), it is just not shown.
        log.LogError("output \"{Output}\": {Error}; running it headless", o.Name, error);
        return new HeadlessOutput(renderer, o.Name, size, o.RefreshHz);
    }
}
