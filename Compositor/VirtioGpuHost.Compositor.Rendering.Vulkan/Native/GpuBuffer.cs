using Silk.NET.Vulkan;
using Buffer = Silk.NET.Vulkan.Buffer;

namespace VirtioGpuHost.Compositor.Rendering.Vulkan.Native;

/// <summary>
/// A storage buffer and its memory: either host-visible memory this renderer allocated (mapped
/// at <see cref="Mapped"/>) or someone else's pages imported with VK_EXT_external_memory_host
/// (zero copy). Freed by <see cref="VulkanDevice.Free"/> (or with the device).
/// </summary>
internal sealed unsafe class GpuBuffer
{
    internal GpuBuffer(Buffer buffer, DeviceMemory memory, ulong size, nint mapped, bool imported)
    {
        Handle = buffer;
        Memory = memory;
        Size = size;
        Mapped = mapped;
        Imported = imported;
    }

    internal Buffer Handle { get; }
    internal DeviceMemory Memory { get; }

    /// <summary>The R32_UINT texel view the shader reads it through (VulkanDevice creates it on first use).</summary>
    internal BufferView View { get; set; }

    /// <summary>The R32G32B32A32_UINT texel view (4 words per fetch) the shader reads tile records and SIMPLE entries through.</summary>
    internal BufferView QuadView { get; set; }
    public ulong Size { get; }

    /// <summary>The host address of the memory (mapped or imported); 0 once freed.</summary>
    public nint Mapped { get; private set; }

    public bool Imported { get; }
    public bool IsFreed => Mapped == 0;

    internal void MarkFreed() => Mapped = 0;

    /// <summary>The memory as words (allocated buffers only).</summary>
    public Span<uint> Words
    {
        get
        {
            ObjectDisposedException.ThrowIf(IsFreed, this);
            return new Span<uint>((void*)Mapped, (int)Math.Min(Size / 4, int.MaxValue));
        }
    }

    /// <summary>
    /// Copies <paramref name="rect"/> (pixels) of a surface at <paramref name="source"/> (rows
    /// <paramref name="sourceStride"/> bytes apart) to the same place in this buffer, whose rows
    /// are <paramref name="destinationStride"/> bytes apart.
    /// </summary>
    public void CopyRect(nint source, int sourceStride, int destinationStride, int x, int y, int width, int height)
    {
        ObjectDisposedException.ThrowIf(IsFreed, this);
        long bytes = (long)width * 4;
        if (width <= 0 || height <= 0) return;
        if (x < 0 || y < 0 || (long)(y + height - 1) * destinationStride + (long)(x + width) * 4 > (long)Size)
            throw new ArgumentOutOfRangeException(nameof(width), $"{width}x{height}+{x}+{y} does not fit the {Size}-byte buffer");
        for (int row = y; row < y + height; row++)
        {
            byte* from = (byte*)source + (long)row * sourceStride + (long)x * 4;
            byte* to = (byte*)Mapped + (long)row * destinationStride + (long)x * 4;
            System.Buffer.MemoryCopy(from, to, bytes, bytes);
        }
    }
}
