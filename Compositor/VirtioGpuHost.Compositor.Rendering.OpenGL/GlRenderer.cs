using Silk.NET.OpenGL;
using VirtioGpuHost.Compositor.Core.Geometry;
using VirtioGpuHost.Compositor.Rendering.OpenGL.Native;

namespace VirtioGpuHost.Compositor.Rendering.OpenGL;

/// <summary>
/// The OpenGL renderer: GL 4.5 core through EGL (Mesa llvmpipe here, any desktop GL 4.3+ driver
/// elsewhere). A pass is one compute dispatch per batch of calls (shaders/gl/composite.comp) over
/// the 16x16 tiles that touch the damage, in integer arithmetic, so its pixels are exactly the CPU
/// renderer's. Targets are RGBA8 textures (read back with glReadPixels as BGRA, or blitted to a
/// window surface with <see cref="PresentToSurface"/>). GL cannot read host memory in place here,
/// so guest surfaces are copied: <see cref="ImportSurface"/> uploads the whole surface,
/// <see cref="UpdateSurface"/> only its damage (glTexSubImage2D with GL_UNPACK_ROW_LENGTH straight
/// from the guest's memory). Any GL error, a reported context reset or a lost EGL context throws
/// <see cref="RendererLostException"/>; the renderer is then unusable (every call throws it) and
/// only Dispose remains, which frees what it can.
/// </summary>
public sealed class GlRenderer : IRenderer
{
    internal const int TileSize = 16;
    internal const int MaxTexturesPerBatch = 16;
    /// <summary>Calls per dispatch: the shader's uniform block holds 4096 uvec4 (64 KiB), two per call.</summary>
    internal const int MaxCallsPerBatch = 2048;
    internal const int UniformBlockBytes = 65536;
    /// <summary>Each chunk's calls start 256 bytes aligned (the largest GL_UNIFORM_BUFFER_OFFSET_ALIGNMENT allowed).</summary>
    internal const int UniformAlignWords = 64;
    /// <summary>The texture unit of the parameter texel buffer (sources use units 0..15).</summary>
    internal const int ParamUnit = MaxTexturesPerBatch;

    private readonly Lock _gate = new();
    private readonly EglContext _egl;
    private readonly bool _ownsContext;
    private readonly HashSet<IGlResource> _resources = [];
    private readonly uint _program, _paramBuffer, _paramTexture;
    private string? _lostReason;
    private bool _disposed;
    private GlFault _pendingFault;

    private GlRenderer(EglContext egl, bool ownsContext)
    {
        _egl = egl;
        _ownsContext = ownsContext;
        using (egl.Enter())
        {
            Gl = GL.GetApi(name => Egl.eglGetProcAddress(name));
            string renderer = Gl.GetStringS(StringName.Renderer) ?? "?";
            string version = Gl.GetStringS(StringName.Version) ?? "?";
            Gl.GetInteger(GetPName.MajorVersion, out int major);
            Gl.GetInteger(GetPName.MinorVersion, out int minor);
            if (major * 10 + minor < 43) throw new EglException($"GL {version} has no compute shaders (4.3 needed)");
            while (Gl.GetError() != GLEnum.NoError) { } // whatever the caller's context had pending
            Gl.GetInteger((GetPName)0x91BC /* GL_MAX_COMPUTE_TEXTURE_IMAGE_UNITS */, out int units);
            if (units < MaxTexturesPerBatch + 1) throw new EglException($"GL {version} offers {units} texture units per compute shader, {MaxTexturesPerBatch + 1} needed");
            Gl.GetInteger((GetPName)0x8A30 /* GL_MAX_UNIFORM_BLOCK_SIZE */, out int blockSize);
            if (blockSize < UniformBlockBytes) throw new EglException($"GL {version} allows uniform blocks of {blockSize} bytes, {UniformBlockBytes} needed");
            _program = GlShaders.BuildCompute(Gl, "composite.comp");
            _paramBuffer = Gl.GenBuffer();
            _paramTexture = Gl.GenTexture();
            var error = Gl.GetError();
            if (error != GLEnum.NoError) throw new EglException($"GL setup failed: {error}");
            Capabilities = new RendererCapabilities("opengl", ZeroCopySurfaces: false, Threaded: false,
                $"{renderer}, GL {version}, {egl.Description}; one compute pass per frame, damage uploads with glTexSubImage2D");
        }
    }

    /// <summary>
    /// A headless renderer on Mesa's surfaceless EGL platform, or null with a one-line
    /// <paramref name="reason"/> when EGL or GL 4.3+ is not available.
    /// </summary>
    public static GlRenderer? TryCreate(out string reason)
    {
        EglContext? egl = null;
        try
        {
            egl = EglContext.CreateSurfaceless();
            var renderer = new GlRenderer(egl, ownsContext: true);
            reason = "";
            return renderer;
        }
        catch (Exception e) when (e is EglException or DllNotFoundException or EntryPointNotFoundException or GlShaderException)
        {
            egl?.Dispose();
            reason = $"OpenGL through EGL is unavailable: {e.Message.ReplaceLineEndings(" ")}";
            return null;
        }
    }

    /// <summary>
    /// A renderer on a context someone made (a window output's <see cref="EglContext.CreateForWindow"/>
    /// or <see cref="EglContext.Wrap"/>); disposing the renderer disposes the context only when
    /// <paramref name="ownsContext"/>. Throws <see cref="EglException"/> when GL is not usable.
    /// </summary>
    public static GlRenderer Create(EglContext context, bool ownsContext)
    {
        ArgumentNullException.ThrowIfNull(context);
        return new GlRenderer(context, ownsContext);
    }

    internal GL Gl { get; }

    public EglContext Context => _egl;

    public RendererCapabilities Capabilities { get; }

    /// <summary>GL objects (targets, textures) alive now; 0 after Dispose.</summary>
    public int LiveResources
    {
        get { lock (_gate) return _resources.Count; }
    }

    /// <summary>Whether a failure made the renderer unusable.</summary>
    public bool IsLost => _lostReason is not null;

    public IRenderTarget CreateTarget(SizeI size)
    {
        if (size.IsEmpty) throw new ArgumentOutOfRangeException(nameof(size), size, "a target needs a positive size");
        using var scope = Enter();
        var target = new GlRenderTarget(this, size);
        Track(target);
        Check("CreateTarget");
        return target;
    }

    public ITexture ImportSurface(in SurfaceView view)
    {
        Validate(view);
        using var scope = Enter();
        var texture = new GlTexture(this, view);
        Track(texture);
        Check("ImportSurface");
        return texture;
    }

    public void UpdateSurface(ITexture texture, in SurfaceView view, Region damage)
    {
        ArgumentNullException.ThrowIfNull(damage);
        var t = Own(texture);
        Validate(view);
        using var scope = Enter();
        ObjectDisposedException.ThrowIf(t.IsDisposed, t);
        t.Update(view, damage);
        Check("UpdateSurface");
    }

    public ITexture CreateTexture(SizeI size, ReadOnlySpan<uint> premultipliedBgra)
    {
        if (size.IsEmpty) throw new ArgumentOutOfRangeException(nameof(size), size, "a texture needs a positive size");
        long count = (long)size.Width * size.Height;
        if (premultipliedBgra.Length < count)
            throw new ArgumentException($"{size} needs {count} pixels, got {premultipliedBgra.Length}", nameof(premultipliedBgra));
        using var scope = Enter();
        var texture = new GlTexture(this, size, premultipliedBgra[..(int)count]);
        Track(texture);
        Check("CreateTexture");
        return texture;
    }

    public IRenderPass BeginPass(IRenderTarget target, Region damage)
    {
        ArgumentNullException.ThrowIfNull(damage);
        ThrowIfUnusable();
        if (target is not GlRenderTarget t || t.Owner != this) throw new ArgumentException("the target belongs to another renderer", nameof(target));
        ObjectDisposedException.ThrowIf(t.IsDisposed, t);
        t.Pass.Begin(damage);
        return t.Pass;
    }

    /// <summary>
    /// Copies <paramref name="target"/> to the window surface of the renderer's context (scaled to the
    /// surface size, nearest) and swaps buffers. Needs a context made with
    /// <see cref="EglContext.CreateForWindow"/> or wrapped with a surface.
    /// </summary>
    public void PresentToSurface(IRenderTarget target)
    {
        if (target is not GlRenderTarget t || t.Owner != this) throw new ArgumentException("the target belongs to another renderer", nameof(target));
        if (_egl.Surface == 0) throw new InvalidOperationException("the renderer's context has no window surface");
        using var scope = Enter();
        ObjectDisposedException.ThrowIf(t.IsDisposed, t);
        var (w, h) = _egl.SurfaceSize();
        t.BlitToDefaultFramebuffer(w, h);
        Check("PresentToSurface");
        _egl.SwapBuffers();
    }

    /// <summary>
    /// Makes the renderer's context current on the calling thread and leaves it there, so calls from
    /// this thread skip the per-call make-current/release (a window's render thread). Other threads
    /// cannot use the renderer until <see cref="ReleaseFromThisThread"/>.
    /// </summary>
    public void BindToThisThread()
    {
        lock (_gate)
        {
            ThrowIfUnusable();
            _egl.MakeCurrent();
        }
    }

    public void ReleaseFromThisThread()
    {
        lock (_gate) _egl.ReleaseCurrent();
    }

    // ---- internals shared by targets, textures and passes ----

    /// <summary>Holds the renderer's lock and its context current on this thread for one operation.</summary>
    internal Scope Enter()
    {
        var lockScope = _gate.EnterScope();
        try
        {
            ThrowIfUnusable();
            EglContext.CurrentScope current;
            try
            {
                current = _egl.Enter();
            }
            catch (RendererLostException e)
            {
                _lostReason = e.Message;
                throw;
            }
            return new Scope(lockScope, current);
        }
        catch
        {
            lockScope.Dispose();
            throw;
        }
    }

    internal ref struct Scope(Lock.Scope lockScope, EglContext.CurrentScope current)
    {
        private Lock.Scope _lock = lockScope;

        public void Dispose()
        {
            current.Dispose();
            _lock.Dispose();
        }
    }

    /// <summary>
    /// Throws <see cref="RendererLostException"/> (and marks the renderer lost) on a GL error or a
    /// context reset. Called with the scope held after each group of GL calls.
    /// </summary>
    internal void Check(string where)
    {
        var fault = _pendingFault;
        _pendingFault = GlFault.None;
        if (fault == GlFault.GlError) Gl.BindTexture((TextureTarget)0x1234, 0); // a real GL_INVALID_ENUM
        var reset = fault == GlFault.ContextReset ? GLEnum.UnknownContextReset : Gl.GetGraphicsResetStatus();
        if (reset != GLEnum.NoError)
            throw Lose($"the GL context was reset ({reset}) during {where}");
        var error = Gl.GetError();
        if (error == GLEnum.NoError) return;
        while (Gl.GetError() != GLEnum.NoError) { }
        throw Lose($"GL error {error} during {where}");
    }

    private RendererLostException Lose(string reason)
    {
        _lostReason = reason;
        return new RendererLostException($"OpenGL renderer lost: {reason}");
    }

    /// <summary>Test hook: the next <see cref="Check"/> sees this failure (a real GL error, or a reported reset).</summary>
    internal void InjectFault(GlFault fault)
    {
        lock (_gate) _pendingFault = fault;
    }

    internal void ThrowIfUnusable()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_lostReason is { } reason) throw new RendererLostException($"OpenGL renderer lost earlier: {reason}");
    }

    internal uint Program => _program;
    internal uint ParamBuffer => _paramBuffer;
    internal uint ParamTexture => _paramTexture;

    private void Track(IGlResource resource)
    {
        lock (_gate) _resources.Add(resource);
    }

    /// <summary>
    /// Deletes a target's or texture's GL objects (under the lock, context current) unless the
    /// renderer is gone; then they went with its context.
    /// </summary>
    internal void Release(IGlResource resource)
    {
        lock (_gate)
        {
            if (!_resources.Remove(resource) || _disposed) return;
            try
            {
                using var current = _egl.Enter();
                resource.DeleteObjects(Gl);
            }
            catch (Exception e) when (e is RendererLostException or EglException)
            {
                // the context is gone: its objects went with it
            }
        }
    }

    internal GlTexture Own(ITexture texture)
    {
        ArgumentNullException.ThrowIfNull(texture);
        if (texture is not GlTexture t || t.Owner != this) throw new ArgumentException("the texture belongs to another renderer", nameof(texture));
        return t;
    }

    private static void Validate(in SurfaceView view)
    {
        if (view.Address == 0) throw new ArgumentException("the surface has no memory", nameof(view));
        if (view.Width <= 0 || view.Height <= 0) throw new ArgumentException($"the surface size {view.Width}x{view.Height} is empty", nameof(view));
        if (view.Stride < (long)view.Width * 4) throw new ArgumentException($"stride {view.Stride} is below width {view.Width} x 4", nameof(view));
        if (!Enum.IsDefined(view.Layout)) throw new ArgumentException($"unknown layout {view.Layout}", nameof(view));
    }

    /// <summary>Frees every target, texture, buffer and the program (when the context still works), then the context if owned.</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed) return;
            _disposed = true;
            try
            {
                using var current = _egl.Enter();
                foreach (var r in _resources) r.DeleteObjects(Gl);
                Gl.DeleteBuffer(_paramBuffer);
                Gl.DeleteTexture(_paramTexture);
                Gl.DeleteProgram(_program);
                Gl.Finish();
            }
            catch (Exception e) when (e is RendererLostException or EglException)
            {
                // lost: the objects go with the context
            }
            foreach (var r in _resources) r.MarkReleased();
            _resources.Clear();
            Gl.Dispose();
            if (_ownsContext) _egl.Dispose();
        }
    }
}

/// <summary>Failures the tests inject (<see cref="GlRenderer.InjectFault"/>).</summary>
internal enum GlFault
{
    None,
    /// <summary>A real GL error (GL_INVALID_ENUM from a bad glBindTexture) before the next check.</summary>
    GlError,
    /// <summary>The next check reads a context reset, as after a GPU reset with robustness.</summary>
    ContextReset,
}

/// <summary>A target or texture: GL objects the renderer deletes when it goes first.</summary>
internal interface IGlResource
{
    void DeleteObjects(GL gl);
    void MarkReleased();
}
