using Silk.NET.OpenGL;
using VirtioGpuHost.Compositor.Core.Geometry;
using VirtioGpuHost.Compositor.Rendering.OpenGL.Native;

namespace VirtioGpuHost.Compositor.Rendering.OpenGL;

/// <summary>
/// A GL texture: R32UI, one texel per source pixel holding its 4 bytes unchanged (the guest's byte
/// order; the shader converts per <see cref="Layout"/>), so uploads are plain copies. An imported
/// surface is a copy taken at <see cref="IRenderer.ImportSurface"/> and refreshed where
/// <see cref="IRenderer.UpdateSurface"/> says it changed (GL has no zero-copy import of host memory
/// here); a host texture is uploaded once.
/// </summary>
public sealed class GlTexture : ITexture, IGlResource
{
    internal GlTexture(GlRenderer owner, in SurfaceView view)
    {
        Owner = owner;
        Layout = view.Layout;
        Allocate(new SizeI(view.Width, view.Height));
        Upload(view, new RectI(0, 0, view.Width, view.Height));
    }

    internal GlTexture(GlRenderer owner, SizeI size, ReadOnlySpan<uint> premultipliedBgra)
    {
        Owner = owner;
        Layout = SourceLayout.BgraPremultiplied;
        Allocate(size);
        GlUnsafe.TexSubImageU32(owner.Gl, size.Width, size.Height, premultipliedBgra);
        BytesUploaded += (long)size.Width * size.Height * 4;
    }

    internal GlRenderer Owner { get; }

    internal uint Name { get; private set; }

    public SizeI Size { get; private set; }

    public SourceLayout Layout { get; private set; }

    public bool IsOpaque => Layout != SourceLayout.BgraPremultiplied;

    public bool IsDisposed { get; private set; }

    /// <summary>Bytes copied into the texture so far (whole imports plus damage).</summary>
    public long BytesUploaded { get; private set; }

    private void Allocate(SizeI size)
    {
        var gl = Owner.Gl;
        Name = gl.GenTexture();
        gl.BindTexture(TextureTarget.Texture2D, Name);
        gl.TexStorage2D(TextureTarget.Texture2D, 1, SizedInternalFormat.R32ui, (uint)size.Width, (uint)size.Height);
        gl.TexParameter(TextureTarget.Texture2D, TextureParameterName.TextureMinFilter, (int)GLEnum.Nearest);
        gl.TexParameter(TextureTarget.Texture2D, TextureParameterName.TextureMagFilter, (int)GLEnum.Nearest);
        Size = size;
    }

    /// <summary>Rebinds to <paramref name="view"/>: a new size reallocates and uploads all, otherwise only the damage is uploaded.</summary>
    internal void Update(in SurfaceView view, Region damage)
    {
        var size = new SizeI(view.Width, view.Height);
        Layout = view.Layout;
        if (size != Size)
        {
            Owner.Gl.DeleteTexture(Name);
            Allocate(size);
            Upload(view, size.ToRect());
            return;
        }
        Owner.Gl.BindTexture(TextureTarget.Texture2D, Name);
        foreach (var r in damage.Rects)
        {
            var c = r.Intersect(size.ToRect());
            if (!c.IsEmpty) Upload(view, c, bind: false);
        }
    }

    private void Upload(in SurfaceView view, RectI rect, bool bind = true)
    {
        if (bind) Owner.Gl.BindTexture(TextureTarget.Texture2D, Name);
        nint first = view.Address + (nint)rect.Y * view.Stride + (nint)rect.X * 4;
        GlUnsafe.TexSubImageU32(Owner.Gl, rect.X, rect.Y, rect.Width, rect.Height, first, view.Stride);
        BytesUploaded += rect.Area * 4;
    }

    public void Dispose()
    {
        if (IsDisposed) return;
        IsDisposed = true;
        Owner.Release(this);
    }

    void IGlResource.DeleteObjects(GL gl)
    {
        if (Name != 0) gl.DeleteTexture(Name);
        Name = 0;
    }

    void IGlResource.MarkReleased()
    {
        IsDisposed = true;
        Name = 0;
    }
}
