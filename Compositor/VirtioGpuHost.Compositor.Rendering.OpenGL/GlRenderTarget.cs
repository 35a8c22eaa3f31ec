using Silk.NET.OpenGL;
using VirtioGpuHost.Compositor.Core.Geometry;
using VirtioGpuHost.Compositor.Rendering.OpenGL.Native;

namespace VirtioGpuHost.Compositor.Rendering.OpenGL;

/// <summary>
/// An output frame in GL: an RGBA8 texture (written by the compute pass as an rgba8ui image) with
/// a framebuffer object for readback and presentation. GL row 0 is the frame's top row, so
/// glReadPixels returns rows in frame order; <see cref="BlitToDefaultFramebuffer"/> flips for a
/// window. Starts opaque black.
/// </summary>
public sealed class GlRenderTarget : IRenderTarget, IGlResource
{
    internal GlRenderTarget(GlRenderer owner, SizeI size)
    {
        Owner = owner;
        Size = size;
        var gl = owner.Gl;
        Texture = gl.GenTexture();
        gl.BindTexture(TextureTarget.Texture2D, Texture);
        gl.TexStorage2D(TextureTarget.Texture2D, 1, SizedInternalFormat.Rgba8, (uint)size.Width, (uint)size.Height);
        gl.TexParameter(TextureTarget.Texture2D, TextureParameterName.TextureMinFilter, (int)GLEnum.Nearest);
        gl.TexParameter(TextureTarget.Texture2D, TextureParameterName.TextureMagFilter, (int)GLEnum.Nearest);
        Framebuffer = gl.GenFramebuffer();
        gl.BindFramebuffer(FramebufferTarget.Framebuffer, Framebuffer);
        gl.FramebufferTexture2D(FramebufferTarget.Framebuffer, FramebufferAttachment.ColorAttachment0, TextureTarget.Texture2D, Texture, 0);
        var status = gl.CheckFramebufferStatus(FramebufferTarget.Framebuffer);
        if (status != GLEnum.FramebufferComplete) throw new RendererLostException($"the target's framebuffer is incomplete: {status}");
        gl.ClearColor(0, 0, 0, 1);
        gl.Clear(ClearBufferMask.ColorBufferBit);
        gl.BindFramebuffer(FramebufferTarget.Framebuffer, 0);
        Pass = new GlRenderPass(this);
    }

    internal GlRenderer Owner { get; }

    /// <summary>The GL texture holding the frame (RGBA8, row 0 = top); valid until Dispose.</summary>
    public uint Texture { get; private set; }

    /// <summary>A framebuffer object with <see cref="Texture"/> as colour attachment 0.</summary>
    public uint Framebuffer { get; private set; }

    internal GlRenderPass Pass { get; }

    public SizeI Size { get; }

    public bool IsDisposed { get; private set; }

    public void ReadPixels(Span<uint> destination) => ReadPixels(Size.ToRect(), destination);

    public void ReadPixels(RectI rect, Span<uint> destination)
    {
        if (!Size.ToRect().Contains(rect)) throw new ArgumentOutOfRangeException(nameof(rect), rect, $"not inside the {Size} target");
        if (destination.Length < rect.Area) throw new ArgumentException($"{rect} needs {rect.Area} pixels", nameof(destination));
        using var scope = Owner.Enter();
        ObjectDisposedException.ThrowIf(IsDisposed, this);
        var gl = Owner.Gl;
        gl.BindFramebuffer(FramebufferTarget.ReadFramebuffer, Framebuffer);
        gl.ReadBuffer(ReadBufferMode.ColorAttachment0);
        gl.PixelStore(PixelStoreParameter.PackAlignment, 4);
        GlUnsafe.ReadBgra(gl, rect.X, rect.Y, rect.Width, rect.Height, destination);
        gl.BindFramebuffer(FramebufferTarget.ReadFramebuffer, 0);
        Owner.Check("ReadPixels");
    }

    /// <summary>Copies the frame to framebuffer 0 (the window surface) scaled to width x height, top row up (context current).</summary>
    internal void BlitToDefaultFramebuffer(int width, int height)
    {
        var gl = Owner.Gl;
        gl.BindFramebuffer(FramebufferTarget.ReadFramebuffer, Framebuffer);
        gl.BindFramebuffer(FramebufferTarget.DrawFramebuffer, 0);
        gl.BlitFramebuffer(0, 0, Size.Width, Size.Height, 0, height, width, 0, ClearBufferMask.ColorBufferBit, BlitFramebufferFilter.Nearest);
        gl.BindFramebuffer(FramebufferTarget.Framebuffer, 0);
    }

    public void Dispose()
    {
        if (IsDisposed) return;
        IsDisposed = true;
        Owner.Release(this);
    }

    void IGlResource.DeleteObjects(GL gl)
    {
        if (Framebuffer != 0) gl.DeleteFramebuffer(Framebuffer);
        if (Texture != 0) gl.DeleteTexture(Texture);
        Framebuffer = Texture = 0;
    }

    void IGlResource.MarkReleased()
    {
        IsDisposed = true;
        Framebuffer = Texture = 0;
    }
}
