using Silk.NET.Core;
using Silk.NET.Vulkan;
using VirtioGpuHost.Compositor.Core.Geometry;
using Semaphore = Silk.NET.Vulkan.Semaphore;

namespace VirtioGpuHost.Compositor.Rendering.Vulkan.Native;

/// <summary>
/// The Vulkan calls of window presentation (used by <see cref="VulkanPresenter"/>): a swapchain
/// on a window surface, on the renderer's device and queue. Each frame copies a target's storage
/// buffer into the acquired image (vkCmdCopyBufferToImage into the letterbox rectangle at 1:1,
/// else through a staging image and a nearest vkCmdBlitImage), then presents it. KHR entry
/// points come from vkGetInstanceProcAddr / vkGetDeviceProcAddr (no Silk.NET.Vulkan.Extensions).
/// Nothing here marks the renderer lost: a failing call is returned as an error string and the
/// window falls back to presenting without Vulkan.
/// </summary>
internal sealed unsafe class VulkanSwapchain : IDisposable
{
    private const ulong TimeoutNs = 10_000_000_000;
    private const Format SurfaceFormat = Format.B8G8R8A8Unorm; // 0xAARRGGBB words are B, G, R, A bytes

    private readonly VulkanDevice _dev;
    private readonly Vk _vk;
    private readonly Device _device;
    private SurfaceKHR _surface;
    private readonly bool _vsync;

    private readonly delegate* unmanaged<Instance, SurfaceKHR, void*, void> _destroySurface;
    private readonly delegate* unmanaged<PhysicalDevice, uint, SurfaceKHR, Bool32*, Result> _getSupport;
    private readonly delegate* unmanaged<PhysicalDevice, SurfaceKHR, SurfaceCapabilitiesKHR*, Result> _getCaps;
    private readonly delegate* unmanaged<PhysicalDevice, SurfaceKHR, uint*, SurfaceFormatKHR*, Result> _getFormats;
    private readonly delegate* unmanaged<PhysicalDevice, SurfaceKHR, uint*, PresentModeKHR*, Result> _getModes;
    private delegate* unmanaged<Device, SwapchainCreateInfoKHR*, void*, SwapchainKHR*, Result> _createSwapchain;
    private delegate* unmanaged<Device, SwapchainKHR, void*, void> _destroySwapchain;
    private delegate* unmanaged<Device, SwapchainKHR, uint*, Image*, Result> _getImages;
    private delegate* unmanaged<Device, SwapchainKHR, ulong, Semaphore, Fence, uint*, Result> _acquire;
    private delegate* unmanaged<Queue, PresentInfoKHR*, Result> _present;

    private ColorSpaceKHR _colorSpace;
    private PresentModeKHR _mode;
    private CompositeAlphaFlagsKHR _alpha;
    private SwapchainKHR _swapchain;
    private Image[] _images = [];
    private Semaphore[] _rendered = [];
    private Semaphore _acquired;
    private CommandPool _pool;
    private CommandBuffer _commands;
    private Fence _fence;
    private Image _staging;
    private DeviceMemory _stagingMemory;
    private SizeI _stagingSize;
    private bool _stale;

    private VulkanSwapchain(VulkanDevice dev, SurfaceKHR surface, bool vsync)
    {
        _dev = dev;
        _vk = dev.Api;
        _device = dev.DeviceHandle;
        _surface = surface;
        _vsync = vsync;
        var inst = dev.InstanceHandle;
        _destroySurface = (delegate* unmanaged<Instance, SurfaceKHR, void*, void>)Proc(inst, "vkDestroySurfaceKHR");
        _getSupport = (delegate* unmanaged<PhysicalDevice, uint, SurfaceKHR, Bool32*, Result>)Proc(inst, "vkGetPhysicalDeviceSurfaceSupportKHR");
        _getCaps = (delegate* unmanaged<PhysicalDevice, SurfaceKHR, SurfaceCapabilitiesKHR*, Result>)Proc(inst, "vkGetPhysicalDeviceSurfaceCapabilitiesKHR");
        _getFormats = (delegate* unmanaged<PhysicalDevice, SurfaceKHR, uint*, SurfaceFormatKHR*, Result>)Proc(inst, "vkGetPhysicalDeviceSurfaceFormatsKHR");
        _getModes = (delegate* unmanaged<PhysicalDevice, SurfaceKHR, uint*, PresentModeKHR*, Result>)Proc(inst, "vkGetPhysicalDeviceSurfacePresentModesKHR");
    }

    private nint Proc(Instance instance, string name) => (nint)_vk.GetInstanceProcAddr(instance, name);

    private nint DeviceProc(string name) => (nint)_vk.GetDeviceProcAddr(_device, name);

    /// <summary>The surface format, image count and present mode (for the log).</summary>
    public string Details { get; private set; } = "";

    public SizeI Extent { get; private set; }

    /// <summary>
    /// Takes ownership of <paramref name="surface"/> (destroyed on failure too) and sets up
    /// presentation on it; null with the reason when this device and surface cannot present.
    /// </summary>
    public static VulkanSwapchain? TryCreate(VulkanDevice dev, ulong surface, bool vsync, out string error)
    {
        var s = new VulkanSwapchain(dev, new SurfaceKHR(surface), vsync);
        try
        {
            error = s.Initialise();
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            error = $"{e.GetType().Name}: {e.Message}";
        }
        if (error.Length == 0) return s;
        s.Dispose();
        return null;
    }

    private string Initialise()
    {
        if (_destroySurface == null || _getSupport == null || _getCaps == null || _getFormats == null || _getModes == null)
            return "the instance has no VK_KHR_surface entry points";
        if (!_dev.SwapchainEnabled) return "the device has no VK_KHR_swapchain";
        _createSwapchain = (delegate* unmanaged<Device, SwapchainCreateInfoKHR*, void*, SwapchainKHR*, Result>)DeviceProc("vkCreateSwapchainKHR");
        _destroySwapchain = (delegate* unmanaged<Device, SwapchainKHR, void*, void>)DeviceProc("vkDestroySwapchainKHR");
        _getImages = (delegate* unmanaged<Device, SwapchainKHR, uint*, Image*, Result>)DeviceProc("vkGetSwapchainImagesKHR");
        _acquire = (delegate* unmanaged<Device, SwapchainKHR, ulong, Semaphore, Fence, uint*, Result>)DeviceProc("vkAcquireNextImageKHR");
        _present = (delegate* unmanaged<Queue, PresentInfoKHR*, Result>)DeviceProc("vkQueuePresentKHR");
        if (_createSwapchain == null || _destroySwapchain == null || _getImages == null || _acquire == null || _present == null)
            return "the device has no VK_KHR_swapchain entry points";

        var pd = _dev.PhysicalDeviceHandle;
        Bool32 supported;
        var r = _getSupport(pd, _dev.QueueFamily, _surface, &supported);
        if (r != Result.Success) return $"vkGetPhysicalDeviceSurfaceSupportKHR failed: {r}";
        if (!supported) return $"the renderer's queue family {_dev.QueueFamily} cannot present to this window";

        uint n = 0;
        r = _getFormats(pd, _surface, &n, null);
        if (r != Result.Success) return $"vkGetPhysicalDeviceSurfaceFormatsKHR failed: {r}";
        var formats = new SurfaceFormatKHR[n];
        fixed (SurfaceFormatKHR* f = formats) _getFormats(pd, _surface, &n, f);
        int fi = Array.FindIndex(formats, f => f.Format == SurfaceFormat);
        if (fi < 0) return $"the surface has no B8G8R8A8_UNORM format (has {string.Join(", ", formats.Select(f => f.Format))})";
        _colorSpace = formats[fi].ColorSpace;

        FormatProperties fp;
        _vk.GetPhysicalDeviceFormatProperties(pd, SurfaceFormat, &fp);
        var blit = FormatFeatureFlags.BlitSrcBit | FormatFeatureFlags.BlitDstBit | FormatFeatureFlags.TransferSrcBit | FormatFeatureFlags.TransferDstBit;
        if ((fp.OptimalTilingFeatures & blit) != blit) return "B8G8R8A8_UNORM images cannot be blitted on this device";

        uint mn = 0;
        _getModes(pd, _surface, &mn, null);
        var modes = new PresentModeKHR[mn];
        fixed (PresentModeKHR* m = modes) _getModes(pd, _surface, &mn, m);
        _mode = _vsync ? PresentModeKHR.FifoKhr
            : modes.Contains(PresentModeKHR.ImmediateKhr) ? PresentModeKHR.ImmediateKhr
            : modes.Contains(PresentModeKHR.MailboxKhr) ? PresentModeKHR.MailboxKhr : PresentModeKHR.FifoKhr;

        SurfaceCapabilitiesKHR caps;
        r = _getCaps(pd, _surface, &caps);
        if (r != Result.Success) return $"vkGetPhysicalDeviceSurfaceCapabilitiesKHR failed: {r}";
        if ((caps.SupportedUsageFlags & ImageUsageFlags.TransferDstBit) == 0) return "swapchain images cannot be transfer destinations";
        _alpha = (caps.SupportedCompositeAlpha & CompositeAlphaFlagsKHR.OpaqueBitKhr) != 0 ? CompositeAlphaFlagsKHR.OpaqueBitKhr
            : (CompositeAlphaFlagsKHR)((uint)caps.SupportedCompositeAlpha & (uint)-(int)caps.SupportedCompositeAlpha); // lowest bit

        var cpci = new CommandPoolCreateInfo { SType = StructureType.CommandPoolCreateInfo, QueueFamilyIndex = _dev.QueueFamily, Flags = CommandPoolCreateFlags.ResetCommandBufferBit };
        CommandPool pool;
        if ((r = _vk.CreateCommandPool(_device, &cpci, null, &pool)) != Result.Success) return $"vkCreateCommandPool failed: {r}";
        _pool = pool;
        var cbai = new CommandBufferAllocateInfo { SType = StructureType.CommandBufferAllocateInfo, CommandPool = _pool, Level = CommandBufferLevel.Primary, CommandBufferCount = 1 };
        CommandBuffer cb;
        if ((r = _vk.AllocateCommandBuffers(_device, &cbai, &cb)) != Result.Success) return $"vkAllocateCommandBuffers failed: {r}";
        _commands = cb;
        var fci = new FenceCreateInfo { SType = StructureType.FenceCreateInfo };
        Fence fence;
        if ((r = _vk.CreateFence(_device, &fci, null, &fence)) != Result.Success) return $"vkCreateFence failed: {r}";
        _fence = fence;
        _acquired = CreateSemaphore();
        if (_acquired.Handle == 0) return "vkCreateSemaphore failed";
        return "";
    }

    private Semaphore CreateSemaphore()
    {
        var sci = new SemaphoreCreateInfo { SType = StructureType.SemaphoreCreateInfo };
        Semaphore s;
        return _vk.CreateSemaphore(_device, &sci, null, &s) == Result.Success ? s : default;
    }

    /// <summary>(Re)creates the swapchain for a window whose framebuffer is <paramref name="framebuffer"/>; "" when done.</summary>
    private string Recreate(SizeI framebuffer)
    {
        SurfaceCapabilitiesKHR caps;
        var r = _getCaps(_dev.PhysicalDeviceHandle, _surface, &caps);
        if (r != Result.Success) return $"vkGetPhysicalDeviceSurfaceCapabilitiesKHR failed: {r}";
        var extent = caps.CurrentExtent.Width != uint.MaxValue
            ? new SizeI((int)caps.CurrentExtent.Width, (int)caps.CurrentExtent.Height)
            : new SizeI(Math.Clamp(framebuffer.Width, (int)caps.MinImageExtent.Width, (int)caps.MaxImageExtent.Width),
                Math.Clamp(framebuffer.Height, (int)caps.MinImageExtent.Height, (int)caps.MaxImageExtent.Height));
        lock (_dev.Gate)
        {
            _vk.QueueWaitIdle(_dev.QueueHandle); // the old images and semaphores are no longer in use
            foreach (var s in _rendered) _vk.DestroySemaphore(_device, s, null);
            _rendered = [];
            var old = _swapchain;
            _swapchain = default;
            _images = [];
            Extent = default;
            if (extent.Width <= 0 || extent.Height <= 0)
            {
                if (old.Handle != 0) _destroySwapchain(_device, old, null);
                return ""; // minimised: nothing to present into
            }
            uint count = Math.Max(2u, caps.MinImageCount);
            if (caps.MaxImageCount > 0) count = Math.Min(count, caps.MaxImageCount);
            var sci = new SwapchainCreateInfoKHR
            {
                SType = StructureType.SwapchainCreateInfoKhr, Surface = _surface, MinImageCount = count, ImageFormat = SurfaceFormat, ImageColorSpace = _colorSpace,
                ImageExtent = new Extent2D((uint)extent.Width, (uint)extent.Height), ImageArrayLayers = 1, ImageUsage = ImageUsageFlags.TransferDstBit,
                ImageSharingMode = SharingMode.Exclusive, PreTransform = caps.CurrentTransform, CompositeAlpha = _alpha, PresentMode = _mode, Clipped = true,
                OldSwapchain = old,
            };
            SwapchainKHR swapchain;
            r = _createSwapchain(_device, &sci, null, &swapchain);
            if (old.Handle != 0) _destroySwapchain(_device, old, null);
            if (r != Result.Success) return $"vkCreateSwapchainKHR ({extent.Width}x{extent.Height}) failed: {r}";
            _swapchain = swapchain;
            uint n = 0;
            _getImages(_device, _swapchain, &n, null);
            var images = new Image[n];
            fixed (Image* p = images) r = _getImages(_device, _swapchain, &n, p);
            if (r != Result.Success) return $"vkGetSwapchainImagesKHR failed: {r}";
            _images = images;
            _rendered = new Semaphore[n];
            for (int i = 0; i < n; i++)
                if ((_rendered[i] = CreateSemaphore()).Handle == 0) return "vkCreateSemaphore failed";
            Extent = extent;
            _stale = false;
            Details = $"{SurfaceFormat}, {n} images, {_mode}";
            return "";
        }
    }

    /// <summary>
    /// Shows the target's <paramref name="frame"/>-sized buffer in the window: recreates the
    /// swapchain when the window's size changed or it went out of date, copies the frame into
    /// <paramref name="placement"/>(extent) with black around it, presents. Returns "" when it
    /// presented (or had nothing to present into: minimised), else the error.
    /// </summary>
    public string Present(GpuBuffer target, SizeI frame, SizeI framebuffer, Func<SizeI, RectI> placement, out bool presented)
    {
        presented = false;
        for (int attempt = 0; attempt < 3; attempt++)
        {
            if (_swapchain.Handle == 0 || _stale || Extent != framebuffer)
            {
                string why = Recreate(framebuffer);
                if (why.Length > 0) return why;
            }
            if (_swapchain.Handle == 0) return "";
            uint index;
            var r = _acquire(_device, _swapchain, TimeoutNs, _acquired, default, &index);
            if (r == Result.ErrorOutOfDateKhr)
            {
                _stale = true;
                continue;
            }
            if (r == Result.SuboptimalKhr) _stale = true; // acquired: present this one, recreate next time
            else if (r != Result.Success) return $"vkAcquireNextImageKHR failed: {r}";

            var dest = placement(Extent);
            lock (_dev.Gate)
            {
                if (_dev.IsLost) return "the renderer's device was lost";
                if (target.IsFreed) return "the target was freed";
                string why = Record(target, frame, _images[index], dest);
                if (why.Length > 0) return why;
                var wait = _acquired;
                var waitStage = PipelineStageFlags.TransferBit;
                var signal = _rendered[index];
                var commands = _commands;
                var submit = new SubmitInfo
                {
                    SType = StructureType.SubmitInfo, WaitSemaphoreCount = 1, PWaitSemaphores = &wait, PWaitDstStageMask = &waitStage,
                    CommandBufferCount = 1, PCommandBuffers = &commands, SignalSemaphoreCount = 1, PSignalSemaphores = &signal,
                };
                var fence = _fence;
                if ((r = _vk.QueueSubmit(_dev.QueueHandle, 1, &submit, fence)) != Result.Success) return $"vkQueueSubmit (present copy) failed: {r}";
                // Wait under the gate: the next pass must not write the target while it is being copied.
                if ((r = _vk.WaitForFences(_device, 1, &fence, true, TimeoutNs)) != Result.Success) return $"vkWaitForFences (present copy) failed: {r}";
                _vk.ResetFences(_device, 1, &fence);
                var swapchain = _swapchain;
                var info = new PresentInfoKHR
                {
                    SType = StructureType.PresentInfoKhr, WaitSemaphoreCount = 1, PWaitSemaphores = &signal,
                    SwapchainCount = 1, PSwapchains = &swapchain, PImageIndices = &index,
                };
                r = _present(_dev.QueueHandle, &info);
            }
            if (r is Result.ErrorOutOfDateKhr or Result.SuboptimalKhr)
            {
                _stale = true;
                presented = r == Result.SuboptimalKhr;
                if (presented) return "";
                continue;
            }
            if (r != Result.Success) return $"vkQueuePresentKHR failed: {r}";
            presented = true;
            return "";
        }
        return "the swapchain stayed out of date";
    }

    /// <summary>Records the copy of the frame into <paramref name="image"/> (at dest, black around it).</summary>
    private string Record(GpuBuffer target, SizeI frame, Image image, RectI dest)
    {
        var cb = _commands;
        var r = _vk.ResetCommandBuffer(cb, 0);
        var begin = new CommandBufferBeginInfo { SType = StructureType.CommandBufferBeginInfo, Flags = CommandBufferUsageFlags.OneTimeSubmitBit };
        if (r == Result.Success) r = _vk.BeginCommandBuffer(cb, &begin);
        if (r != Result.Success) return $"vkBeginCommandBuffer (present) failed: {r}";
        var range = new ImageSubresourceRange(ImageAspectFlags.ColorBit, 0, 1, 0, 1);
        var layers = new ImageSubresourceLayers(ImageAspectFlags.ColorBit, 0, 0, 1);

        // The pass's shader (and host) writes of the target are visible to the copy.
        var written = new MemoryBarrier { SType = StructureType.MemoryBarrier, SrcAccessMask = AccessFlags.ShaderWriteBit | AccessFlags.HostWriteBit, DstAccessMask = AccessFlags.TransferReadBit };
        _vk.CmdPipelineBarrier(cb, PipelineStageFlags.ComputeShaderBit | PipelineStageFlags.HostBit, PipelineStageFlags.TransferBit, 0, 1, &written, 0, null, 0, null);
        ImageBarrier(cb, image, ImageLayout.Undefined, ImageLayout.TransferDstOptimal, 0, AccessFlags.TransferWriteBit, PipelineStageFlags.TransferBit, PipelineStageFlags.TransferBit);

        bool covers = dest.X == 0 && dest.Y == 0 && dest.Width == Extent.Width && dest.Height == Extent.Height;
        if (!covers)
        {
            var black = new ClearColorValue(0f, 0f, 0f, 1f);
            _vk.CmdClearColorImage(cb, image, ImageLayout.TransferDstOptimal, &black, 1, &range);
            var cleared = new MemoryBarrier { SType = StructureType.MemoryBarrier, SrcAccessMask = AccessFlags.TransferWriteBit, DstAccessMask = AccessFlags.TransferWriteBit };
            _vk.CmdPipelineBarrier(cb, PipelineStageFlags.TransferBit, PipelineStageFlags.TransferBit, 0, 1, &cleared, 0, null, 0, null);
        }
        if (dest.Width > 0 && dest.Height > 0)
        {
            if (dest.Width == frame.Width && dest.Height == frame.Height)
            {
                // 1:1: the buffer straight into the centred rectangle.
                var region = new BufferImageCopy
                {
                    BufferOffset = 0, BufferRowLength = 0, BufferImageHeight = 0, ImageSubresource = layers,
                    ImageOffset = new Offset3D(dest.X, dest.Y, 0), ImageExtent = new Extent3D((uint)frame.Width, (uint)frame.Height, 1),
                };
                _vk.CmdCopyBufferToImage(cb, target.Handle, image, ImageLayout.TransferDstOptimal, 1, &region);
            }
            else
            {
                // Scaled: buffer -> staging image (frame size) -> nearest blit into the rectangle.
                string why = EnsureStaging(frame);
                if (why.Length > 0)
                {
                    _vk.EndCommandBuffer(cb);
                    return why;
                }
                ImageBarrier(cb, _staging, ImageLayout.Undefined, ImageLayout.TransferDstOptimal, 0, AccessFlags.TransferWriteBit, PipelineStageFlags.TransferBit, PipelineStageFlags.TransferBit);
                var region = new BufferImageCopy { ImageSubresource = layers, ImageExtent = new Extent3D((uint)frame.Width, (uint)frame.Height, 1) };
                _vk.CmdCopyBufferToImage(cb, target.Handle, _staging, ImageLayout.TransferDstOptimal, 1, &region);
                ImageBarrier(cb, _staging, ImageLayout.TransferDstOptimal, ImageLayout.TransferSrcOptimal, AccessFlags.TransferWriteBit, AccessFlags.TransferReadBit, PipelineStageFlags.TransferBit, PipelineStageFlags.TransferBit);
                var blit = new ImageBlit { SrcSubresource = layers, DstSubresource = layers };
                blit.SrcOffsets[0] = new Offset3D(0, 0, 0);
                blit.SrcOffsets[1] = new Offset3D(frame.Width, frame.Height, 1);
                blit.DstOffsets[0] = new Offset3D(dest.X, dest.Y, 0);
                blit.DstOffsets[1] = new Offset3D(dest.Right, dest.Bottom, 1);
                _vk.CmdBlitImage(cb, _staging, ImageLayout.TransferSrcOptimal, image, ImageLayout.TransferDstOptimal, 1, &blit, Filter.Nearest);
            }
        }
        ImageBarrier(cb, image, ImageLayout.TransferDstOptimal, ImageLayout.PresentSrcKhr, AccessFlags.TransferWriteBit, 0, PipelineStageFlags.TransferBit, PipelineStageFlags.BottomOfPipeBit);
        r = _vk.EndCommandBuffer(cb);
        return r == Result.Success ? "" : $"vkEndCommandBuffer (present) failed: {r}";
    }

    private void ImageBarrier(CommandBuffer cb, Image image, ImageLayout from, ImageLayout to, AccessFlags src, AccessFlags dst, PipelineStageFlags srcStage, PipelineStageFlags dstStage)
    {
        var b = new ImageMemoryBarrier
        {
            SType = StructureType.ImageMemoryBarrier, OldLayout = from, NewLayout = to, SrcAccessMask = src, DstAccessMask = dst, Image = image,
            SubresourceRange = new ImageSubresourceRange(ImageAspectFlags.ColorBit, 0, 1, 0, 1),
            SrcQueueFamilyIndex = Vk.QueueFamilyIgnored, DstQueueFamilyIndex = Vk.QueueFamilyIgnored,
        };
        _vk.CmdPipelineBarrier(cb, srcStage, dstStage, 0, 0, null, 0, null, 1, &b);
    }

    private string EnsureStaging(SizeI frame)
    {
        if (_staging.Handle != 0 && _stagingSize == frame) return "";
        FreeStaging();
        var ici = new ImageCreateInfo
        {
            SType = StructureType.ImageCreateInfo, ImageType = ImageType.Type2D, Format = SurfaceFormat, Extent = new Extent3D((uint)frame.Width, (uint)frame.Height, 1),
            MipLevels = 1, ArrayLayers = 1, Samples = SampleCountFlags.Count1Bit, Tiling = ImageTiling.Optimal,
            Usage = ImageUsageFlags.TransferDstBit | ImageUsageFlags.TransferSrcBit, SharingMode = SharingMode.Exclusive, InitialLayout = ImageLayout.Undefined,
        };
        Image img;
        var r = _vk.CreateImage(_device, &ici, null, &img);
        if (r != Result.Success) return $"vkCreateImage (staging) failed: {r}";
        _staging = img;
        MemoryRequirements req;
        _vk.GetImageMemoryRequirements(_device, img, &req);
        int type = _dev.FindMemoryType(req.MemoryTypeBits, MemoryPropertyFlags.DeviceLocalBit, 0);
        if (type < 0) type = _dev.FindMemoryType(req.MemoryTypeBits, 0, 0);
        var mai = new MemoryAllocateInfo { SType = StructureType.MemoryAllocateInfo, AllocationSize = req.Size, MemoryTypeIndex = (uint)type };
        DeviceMemory memory;
        r = _vk.AllocateMemory(_device, &mai, null, &memory);
        if (r != Result.Success) return $"vkAllocateMemory (staging image) failed: {r}";
        _stagingMemory = memory;
        r = _vk.BindImageMemory(_device, img, memory, 0);
        if (r != Result.Success) return $"vkBindImageMemory (staging image) failed: {r}";
        _stagingSize = frame;
        return "";
    }

    private void FreeStaging()
    {
        if (_staging.Handle != 0) _vk.DestroyImage(_device, _staging, null);
        if (_stagingMemory.Handle != 0) _vk.FreeMemory(_device, _stagingMemory, null);
        _staging = default;
        _stagingMemory = default;
        _stagingSize = default;
    }

    /// <summary>Frees the swapchain, its objects and the surface (the device and instance must still exist).</summary>
    public void Dispose()
    {
        lock (_dev.Gate)
        {
            if (_device.Handle != 0) _vk.QueueWaitIdle(_dev.QueueHandle); // result ignored: a lost device still lets us destroy
            foreach (var s in _rendered) _vk.DestroySemaphore(_device, s, null);
            _rendered = [];
            if (_acquired.Handle != 0) _vk.DestroySemaphore(_device, _acquired, null);
            _acquired = default;
            if (_fence.Handle != 0) _vk.DestroyFence(_device, _fence, null);
            _fence = default;
            if (_pool.Handle != 0) _vk.DestroyCommandPool(_device, _pool, null);
            _pool = default;
            FreeStaging();
            if (_swapchain.Handle != 0) _destroySwapchain(_device, _swapchain, null);
            _swapchain = default;
            _images = [];
            if (_surface.Handle != 0 && _destroySurface != null) _destroySurface(_dev.InstanceHandle, _surface, null);
            _surface = default;
        }
    }
}
