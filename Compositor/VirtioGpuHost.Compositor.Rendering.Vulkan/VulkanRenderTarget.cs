using VirtioGpuHost.Compositor.Core.Geometry;
using VirtioGpuHost.Compositor.Rendering.Vulkan.Native;

namespace VirtioGpuHost.Compositor.Rendering.Vulkan;

/// <summary>
/// An output frame: a storage buffer of premultiplied BGRA words (0xAARRGGBB, row-major, no
/// padding) in host-visible memory, starting opaque black. Passes are synchronous, so reading
/// it back is a copy out of the mapping.
/// </summary>
public sealed class VulkanRenderTarget : IRenderTarget
{
    private GpuBuffer? _buffer;

    internal VulkanRenderTarget(VulkanRenderer owner, SizeI size)
    {
        if (size.IsEmpty) throw new ArgumentOutOfRangeException(nameof(size), size, "a target needs a positive size");
        // the shader's parameters pack coordinates in 16 bits
        if ((long)size.Width * size.Height > int.MaxValue / 4 || size.Width > 65535 || size.Height > 65535) throw new ArgumentOutOfRangeException(nameof(size), size, "target too large");
        Owner = owner;
        Size = size;
        _buffer = owner.Device.Allocate((ulong)size.Width * (ulong)size.Height * 4);
        Pixels.Fill(0xFF000000u);
        Pass = new VulkanRenderPass(this);
    }

    internal VulkanRenderer Owner { get; }
    internal VulkanRenderPass Pass { get; }
    public SizeI Size { get; }

    internal bool IsDisposed => _buffer is null || _buffer.IsFreed;

    internal GpuBuffer Buffer => !IsDisposed ? _buffer! : throw new ObjectDisposedException(nameof(VulkanRenderTarget));

    private Span<uint> Pixels => Buffer.Words[..(Size.Width * Size.Height)];

    public void ReadPixels(Span<uint> destination)
    {
        Owner.ThrowIfLost();
        Pixels.CopyTo(destination);
    }

    public void ReadPixels(RectI rect, Span<uint> destination)
    {
        Owner.ThrowIfLost();
        if (!Size.ToRect().Contains(rect)) throw new ArgumentOutOfRangeException(nameof(rect), rect, $"not inside the {Size} target");
        if (destination.Length < rect.Area) throw new ArgumentException($"{rect} needs {rect.Area} pixels", nameof(destination));
        var all = Pixels;
        for (int y = 0; y < rect.Height; y++)
            all.Slice((rect.Y + y) * Size.Width + rect.X, rect.Width).CopyTo(destination.Slice(y * rect.Width, rect.Width));
    }

    public void Dispose()
    {
        if (_buffer is null) return;
        Owner.Device.Free(_buffer);
        _buffer = null;
    }
}
