using VirtioGpuHost.Compositor.Core.Geometry;
using VirtioGpuHost.Compositor.Rendering.Vulkan.Native;

namespace VirtioGpuHost.Compositor.Rendering.Vulkan;

/// <summary>
/// The Vulkan renderer: a compute shader (shaders/vulkan/composite.comp) composites each pass
/// in one dispatch over the damaged tiles with the contract's integer arithmetic, so it
/// produces exactly the CPU renderer's pixels. Guest surfaces are imported without a copy
/// (VK_EXT_external_memory_host) where the device and the memory allow it, else copied (damage
/// only on updates). Targets live in host-visible memory; passes are synchronous.
/// Any failing Vulkan call throws <see cref="RendererLostException"/>, after which every method
/// throws it too (Dispose still frees everything). Make one with <see cref="TryCreate"/>.
/// </summary>
public sealed class VulkanRenderer : IRenderer
{
    private const string ShaderResource = "VirtioGpuHost.Compositor.Rendering.Vulkan.composite.comp.spv";
    private bool _disposed;

    private VulkanRenderer(VulkanDevice device, VulkanRendererOptions options)
    {
        Device = device;
        Options = options;
        bool zeroCopy = options.ImportSurfaces && device.HostImportAlignment > 0;
        Capabilities = new RendererCapabilities("vulkan", ZeroCopySurfaces: zeroCopy, Threaded: false,
            $"{device.Details}, compute composite{(options.ImportSurfaces ? "" : ", surface import off")}");
    }

    /// <summary>
    /// A renderer on the first usable Vulkan device (a GPU before a CPU implementation such as
    /// lavapipe), or null with a one-line <paramref name="reason"/> (no loader, no device, a
    /// missing feature, a failed call). Never throws.
    /// </summary>
    public static VulkanRenderer? TryCreate(out string reason, VulkanRendererOptions? options = null)
    {
        options ??= new VulkanRendererOptions();
        byte[] spirv;
        try
        {
            using var stream = typeof(VulkanRenderer).Assembly.GetManifestResourceStream(ShaderResource)
                ?? throw new InvalidOperationException($"the embedded shader {ShaderResource} is missing");
            spirv = new byte[stream.Length];
            stream.ReadExactly(spirv);
        }
        catch (Exception e)
        {
            reason = e.Message;
            return null;
        }
        var device = VulkanDevice.TryCreate(spirv, options.PreferredDevice, out reason, options.InstanceExtensions);
        if (device is null) return null;
        reason = "";
        return new VulkanRenderer(device, options);
    }

    internal VulkanDevice Device { get; }

    public VulkanRendererOptions Options { get; }

    public RendererCapabilities Capabilities { get; }

    /// <summary>The device's name (e.g. "llvmpipe (LLVM 15.0.6, 256 bits)").</summary>
    public string DeviceName => Device.Name;

    /// <summary>Whether the device was lost (every call now throws <see cref="RendererLostException"/>).</summary>
    public bool IsLost => Device.IsLost;

    /// <summary>The instance extensions enabled (see <see cref="VulkanRendererOptions.InstanceExtensions"/>).</summary>
    public IReadOnlyList<string> EnabledInstanceExtensions => Device.InstanceExtensions;

    /// <summary>Whether the device has VK_KHR_swapchain enabled, so <see cref="VulkanPresenter"/> can present its targets.</summary>
    public bool CanPresent => Device.SwapchainEnabled;

    public IRenderTarget CreateTarget(SizeI size)
    {
        ThrowIfLost();
        return new VulkanRenderTarget(this, size);
    }

    public ITexture ImportSurface(in SurfaceView view)
    {
        ThrowIfLost();
        return new VulkanTexture(this, view);
    }

    /// <summary>
    /// Rebinds the texture to <paramref name="view"/>: an imported surface re-imports only when
    /// the view left the pages it imported; a copied one copies <paramref name="damage"/>.
    /// </summary>
    public void UpdateSurface(ITexture texture, in SurfaceView view, Region damage)
    {
        ArgumentNullException.ThrowIfNull(damage);
        ThrowIfLost();
        OwnTexture(texture).Rebind(view, damage);
    }

    public ITexture CreateTexture(SizeI size, ReadOnlySpan<uint> premultipliedBgra)
    {
        ThrowIfLost();
        return new VulkanTexture(this, size, premultipliedBgra);
    }

    public IRenderPass BeginPass(IRenderTarget target, Region damage)
    {
        ThrowIfLost();
        if (target is not VulkanRenderTarget t || t.Owner != this) throw new ArgumentException("the target belongs to another renderer", nameof(target));
        ObjectDisposedException.ThrowIf(t.IsDisposed, t);
        t.Pass.Begin(damage);
        return t.Pass;
    }

    internal VulkanTexture OwnTexture(ITexture texture)
    {
        ArgumentNullException.ThrowIfNull(texture);
        if (texture is not VulkanTexture t || t.Owner != this) throw new ArgumentException("the texture belongs to another renderer", nameof(texture));
        return t;
    }

    internal void ThrowIfLost()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (Device.IsLost) throw new RendererLostException("vulkan: the device was lost; the Vulkan renderer is unusable");
    }

    /// <summary>Frees every target, texture and import still alive, then the device.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        Device.Dispose();
    }
}
