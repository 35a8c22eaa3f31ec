using VirtioGpuHost.Compositor.Core.Geometry;
using VirtioGpuHost.Compositor.Rendering.Vulkan.Native;

namespace VirtioGpuHost.Compositor.Rendering.Vulkan;

/// <summary>
/// Shows a <see cref="VulkanRenderer"/>'s targets in a window without reading them back: a
/// swapchain on a surface of the renderer's instance (made by the caller, e.g. GLFW's
/// glfwCreateWindowSurface), on the renderer's device and queue. <see cref="Present"/> copies the
/// target's buffer into the acquired image (vkCmdCopyBufferToImage at 1:1, a nearest blit
/// through a staging image otherwise), black around the picture, and presents; the swapchain is
/// recreated when the window's size changes or it goes out of date. Errors are returned, never
/// thrown, and never mark the renderer lost: the caller falls back to another way of showing
/// frames. Freed with the renderer at the latest (before its device and instance).
/// </summary>
/// <remarks>The renderer's instance needs VK_KHR_surface and the window system's surface
/// extension (<see cref="VulkanRendererOptions.InstanceExtensions"/>), and its device
/// VK_KHR_swapchain (<see cref="VulkanRenderer.CanPresent"/>). Use it from one thread; the
/// copy and the present take the renderer's queue lock, so they never overlap a pass.</remarks>
public sealed class VulkanPresenter : IDisposable
{
    private readonly object _lock = new();
    private readonly VulkanRenderer _renderer;
    private VulkanSwapchain? _swapchain;

    private VulkanPresenter(VulkanRenderer renderer, VulkanSwapchain swapchain)
    {
        _renderer = renderer;
        _swapchain = swapchain;
        renderer.Device.Disposing += Dispose;
    }

    /// <summary>
    /// A presenter on the surface that <paramref name="createSurface"/> makes for the renderer's
    /// VkInstance (it returns a VkResult and the VkSurfaceKHR), or null with the reason
    /// (no swapchain extension, the queue cannot present to it, no B8G8R8A8_UNORM format...).
    /// <paramref name="vsync"/>: FIFO, else IMMEDIATE (or MAILBOX) where the surface has it.
    /// </summary>
    public static VulkanPresenter? TryCreate(VulkanRenderer renderer, Func<nint, (int Result, ulong Surface)> createSurface, bool vsync, out string error)
    {
        ArgumentNullException.ThrowIfNull(renderer);
        ArgumentNullException.ThrowIfNull(createSurface);
        if (renderer.IsLost)
        {
            error = "the Vulkan renderer is lost";
            return null;
        }
        if (!renderer.CanPresent)
        {
            error = $"the Vulkan renderer was created without presentation (instance extensions: {string.Join(", ", renderer.EnabledInstanceExtensions.DefaultIfEmpty("none"))}; the device needs VK_KHR_swapchain)";
            return null;
        }
        var dev = renderer.Device;
        (int result, ulong surface) = createSurface(dev.InstanceHandle.Handle);
        if (result != 0 || surface == 0)
        {
            error = $"creating the window's Vulkan surface failed: VkResult {result} ({(Silk.NET.Vulkan.Result)result})";
            return null;
        }
        var swapchain = VulkanSwapchain.TryCreate(dev, surface, vsync, out error);
        return swapchain is null ? null : new VulkanPresenter(renderer, swapchain);
    }

    /// <summary>Freed (by <see cref="Dispose"/>, or because the renderer was).</summary>
    public bool IsDisposed
    {
        get { lock (_lock) return _swapchain is null; }
    }

    /// <summary>The swapchain's format, image count and present mode once it exists (for the log).</summary>
    public string Details
    {
        get { lock (_lock) return _swapchain?.Details ?? ""; }
    }

    /// <summary>
    /// Shows <paramref name="target"/> (a target of this renderer) in a window whose framebuffer
    /// is <paramref name="framebuffer"/>, at <paramref name="placement"/>(swapchain extent)
    /// (e.g. the letterbox rectangle). Null when it presented (or the window is minimised:
    /// nothing to present into, <paramref name="presented"/> false), else why it failed.
    /// </summary>
    public string? Present(IRenderTarget target, SizeI framebuffer, Func<SizeI, RectI> placement, out bool presented)
    {
        presented = false;
        if (target is not VulkanRenderTarget t || t.Owner != _renderer) return "the target belongs to another renderer";
        lock (_lock)
        {
            if (_swapchain is null) return "the presenter was freed (its renderer went away)";
            if (t.IsDisposed) return "the target was freed";
            try
            {
                string why = _swapchain.Present(t.Buffer, t.Size, framebuffer, placement, out presented);
                return why.Length == 0 ? null : why;
            }
            catch (Exception e) when (e is ObjectDisposedException or InvalidOperationException)
            {
                return e.Message;
            }
        }
    }

    public void Dispose()
    {
        lock (_lock)
        {
            if (_swapchain is null) return;
            _renderer.Device.Disposing -= Dispose;
            _swapchain.Dispose();
            _swapchain = null;
        }
    }
}
