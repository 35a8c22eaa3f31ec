namespace VirtioGpuHost.Compositor.Rendering.Vulkan;

/// <summary>How the Vulkan renderer is set up.</summary>
public sealed record VulkanRendererOptions
{
    /// <summary>
    /// Import guest surfaces without a copy (VK_EXT_external_memory_host) where the device and
    /// the memory allow it (on); off: every surface is copied (its damage on each update).
    /// </summary>
    public bool ImportSurfaces { get; init; } = true;

    /// <summary>
    /// Keep a map of each premultiplied texture's transparent and opaque 16x16 blocks (on), as the
    /// CPU renderer's tile maps: a call is left out of the tiles where it reads only transparent
    /// pixels and culls what lies under it where it reads only opaque ones. Kept current by
    /// <see cref="IRenderer.UpdateSurface"/>'s damage (the contract); off: every call is blended
    /// everywhere it is visible.
    /// </summary>
    public bool TileMaps { get; init; } = true;

    /// <summary>A substring of the device name to prefer (e.g. "llvmpipe"); null: a GPU first, then any device.</summary>
    public string? PreferredDevice { get; init; }

    /// <summary>
    /// Instance extensions to enable where the loader has them (the others are left out): a
    /// window output's surface extensions (VK_KHR_surface, VK_KHR_xcb_surface, ...), so a
    /// <see cref="VulkanPresenter"/> can present the renderer's targets in a window. With
    /// VK_KHR_surface enabled, the device also gets VK_KHR_swapchain when it has it.
    /// </summary>
    public IReadOnlyList<string> InstanceExtensions { get; init; } = [];
}
