using Silk.NET.OpenGL;

namespace VirtioGpuHost.Compositor.Rendering.OpenGL.Native;

/// <summary>
/// The GL calls that take raw pointers (guest memory by address, spans pinned for the call): the
/// only unsafe code of the OpenGL renderer besides the EGL bindings.
/// </summary>
internal static unsafe class GlUnsafe
{
    /// <summary>
    /// Uploads <paramref name="width"/> x <paramref name="height"/> u32 pixels at (x, y) of the bound
    /// R32UI texture from memory whose rows are <paramref name="stride"/> bytes apart starting at
    /// <paramref name="first"/> (the rectangle's first pixel). A stride that is not a whole number of
    /// pixels is uploaded row by row.
    /// </summary>
    public static void TexSubImageU32(GL gl, int x, int y, int width, int height, nint first, int stride)
    {
        if (stride % 4 == 0)
        {
            gl.PixelStore(PixelStoreParameter.UnpackRowLength, height > 1 ? stride / 4 : 0);
            gl.TexSubImage2D(TextureTarget.Texture2D, 0, x, y, (uint)width, (uint)height, PixelFormat.RedInteger, PixelType.UnsignedInt, (void*)first);
            gl.PixelStore(PixelStoreParameter.UnpackRowLength, 0);
            return;
        }
        gl.PixelStore(PixelStoreParameter.UnpackAlignment, 1);
        for (int row = 0; row < height; row++)
            gl.TexSubImage2D(TextureTarget.Texture2D, 0, x, y + row, (uint)width, 1, PixelFormat.RedInteger, PixelType.UnsignedInt, (void*)(first + (nint)row * stride));
        gl.PixelStore(PixelStoreParameter.UnpackAlignment, 4);
    }

    public static void TexSubImageU32(GL gl, int width, int height, ReadOnlySpan<uint> pixels)
    {
        fixed (uint* p = pixels)
            gl.TexSubImage2D(TextureTarget.Texture2D, 0, 0, 0, (uint)width, (uint)height, PixelFormat.RedInteger, PixelType.UnsignedInt, p);
    }

    /// <summary>glReadPixels of the bound read framebuffer as BGRA bytes (= native u32 0xAARRGGBB), rows packed.</summary>
    public static void ReadBgra(GL gl, int x, int y, int width, int height, Span<uint> destination)
    {
        fixed (uint* p = destination)
            gl.ReadPixels(x, y, (uint)width, (uint)height, PixelFormat.Bgra, PixelType.UnsignedByte, p);
    }

    /// <summary>Replaces the whole store of a buffer with <paramref name="data"/> (orphaning the old one).</summary>
    public static void BufferData<T>(GL gl, BufferTargetARB target, uint buffer, ReadOnlySpan<T> data) where T : unmanaged
    {
        gl.BindBuffer(target, buffer);
        fixed (T* p = data)
            gl.BufferData(target, (nuint)(data.Length * sizeof(T)), p, BufferUsageARB.StreamDraw);
    }
}
