using VirtioGpuHost.Compositor.Rendering;
using VirtioGpuHost.Compositor.Rendering.Cpu;
using VirtioGpuHost.Compositor.Rendering.OpenGL;
using VirtioGpuHost.Compositor.Rendering.Vulkan;

namespace VirtioGpuHost.Compositor.Tests.Rendering;

/// <summary>
/// The renderers the renderer-parameterized suites run on (golden images, contract tests,
/// random scenes against the reference). A renderer whose device is missing makes its tests
/// skip with the reason (never pass silently).
///
/// Extension point: to add a renderer, add its name to <see cref="Names"/>, a case to
/// <see cref="TryCreate"/> (null + reason when it cannot run here) and, if it is not exact,
/// its per-channel tolerance to <see cref="Tolerance"/>.
/// </summary>
internal static class RendererFactories
{
    /// <summary>The GPU renderers (add yours here).</summary>
    public static IReadOnlyList<string> Gpu { get; } = ["vulkan", "opengl"];

    /// <summary>Every renderer, for [MemberData(nameof(RendererFactories.Names), MemberType = typeof(RendererFactories))].</summary>
    public static TheoryData<string> Names => Data(["cpu", .. Gpu]);

    /// <summary>The GPU renderers only.</summary>
    public static TheoryData<string> GpuNames => Data(Gpu);

    public static TheoryData<string> Data(IEnumerable<string> names)
    {
        var data = new TheoryData<string>();
        foreach (var n in names) data.Add(n);
        return data;
    }

    /// <summary>
    /// The largest difference per channel allowed against the CPU renderer / goldens: 0 for the
    /// CPU renderer (the reference) and for Vulkan (its compute shader does the contract's integer
    /// arithmetic, so it is bit-exact: held to that, stricter than the bound);
    /// 1/255 for any other GPU renderer (the bound).
    /// </summary>
    public static int Tolerance(string name) => name is "cpu" or "vulkan" or "vulkan-copy" ? 0 : 1;

    /// <summary>A new renderer of that name, or a skipped test saying why it cannot run here.</summary>
    public static IRenderer Create(string name) =>
        TryCreate(name, out string reason) ?? throw SkipException(name, reason);

    public static IRenderer? TryCreate(string name, out string reason)
    {
        reason = "";
        switch (name)
        {
            case "cpu":
                return new CpuRenderer();
            case "vulkan":
            case "vulkan-copy":
                if (s_vulkanUnavailable is { } known)
                {
                    reason = known;
                    return null;
                }
                var options = new VulkanRendererOptions { ImportSurfaces = name == "vulkan" };
                var renderer = VulkanRenderer.TryCreate(out reason, options);
                if (renderer is null) s_vulkanUnavailable = reason;
                return renderer;
            case "opengl":
                if (s_glUnavailable is { } knownGl)
                {
                    reason = knownGl;
                    return null;
                }
                var gl = GlRenderer.TryCreate(out reason);
                if (gl is null) s_glUnavailable = reason;
                return gl;
            default:
                throw new ArgumentOutOfRangeException(nameof(name), name, "unknown renderer");
        }
    }

    private static string? s_glUnavailable;

    /// <summary>One renderer per name shared by a test class's many small scenes (creating a device per scene is slow).</summary>
    public static IRenderer Shared(string name)
    {
        lock (s_shared)
        {
            if (s_shared.TryGetValue(name, out var r) && r is not (VulkanRenderer { IsLost: true } or GlRenderer { IsLost: true })) return r;
            r = Create(name);
            s_shared[name] = r;
            return r;
        }
    }

    private static string? s_vulkanUnavailable;
    private static readonly Dictionary<string, IRenderer> s_shared = new();

    private static Exception SkipException(string name, string reason)
    {
        Assert.Skip($"renderer '{name}' is not available here: {reason}");
        return new InvalidOperationException("unreachable");
    }
}
