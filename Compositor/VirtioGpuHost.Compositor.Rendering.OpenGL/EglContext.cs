using VirtioGpuHost.Compositor.Rendering.OpenGL.Native;

namespace VirtioGpuHost.Compositor.Rendering.OpenGL;

/// <summary>
/// An EGL display + OpenGL 4.5 core context (+ an optional draw surface) the GL renderer draws
/// with. Made headless (<see cref="CreateSurfaceless"/>: Mesa's surfaceless platform, no surface),
/// for a native window (<see cref="CreateForWindow"/>: a window surface to present into), or
/// wrapped around a display/context a caller already made (<see cref="Wrap"/>, not owned).
/// Current-ness is per thread: <see cref="Enter"/> makes the context current on the calling thread
/// for a scope and restores what was current before, so any thread may use it one at a time.
/// </summary>
public sealed class EglContext : IDisposable
{
    private readonly bool _ownsDisplay, _ownsContext, _ownsSurface;
    private bool _disposed;

    private EglContext(nint display, nint context, nint surface, bool ownsDisplay, bool ownsContext, bool ownsSurface, string description)
    {
        Display = display;
        Context = context;
        Surface = surface;
        _ownsDisplay = ownsDisplay;
        _ownsContext = ownsContext;
        _ownsSurface = ownsSurface;
        Description = description;
    }

    public nint Display { get; }
    public nint Context { get; }

    /// <summary>The draw/read surface made current with the context (0 = surfaceless: FBOs only).</summary>
    public nint Surface { get; }

    /// <summary>EGL version, vendor and platform, for logs.</summary>
    public string Description { get; }

    /// <summary>GL 4.5 core on Mesa's surfaceless platform (no window system, no config, no surface).</summary>
    public static EglContext CreateSurfaceless()
    {
        if (!Egl.IsLibraryPresent(out string why)) throw new EglException(why);
        string? clientExtensions = Egl.QueryString(0, Egl.EXTENSIONS);
        if (clientExtensions is null || !clientExtensions.Contains("EGL_MESA_platform_surfaceless", StringComparison.Ordinal))
            throw new EglException("EGL has no EGL_MESA_platform_surfaceless (Mesa's libegl-mesa0 is needed)");
        nint display = Egl.eglGetPlatformDisplay(Egl.PLATFORM_SURFACELESS_MESA, 0, null);
        return Create(display, "surfaceless", nativeWindow: 0);
    }

    /// <summary>
    /// GL 4.5 core with a window surface on <paramref name="platform"/> (e.g. <see cref="Egl.PLATFORM_X11_KHR"/>
    /// with an X11 Display*; for X11 <paramref name="nativeWindow"/> is a pointer to the Window XID, as
    /// eglCreatePlatformWindowSurface wants). The renderer's targets are presented into it with
    /// <see cref="GlRenderer.PresentToSurface"/>.
    /// </summary>
    public static EglContext CreateForWindow(int platform, nint nativeDisplay, nint nativeWindow)
    {
        if (!Egl.IsLibraryPresent(out string why)) throw new EglException(why);
        if (nativeWindow == 0) throw new ArgumentException("a native window is needed", nameof(nativeWindow));
        nint display = Egl.eglGetPlatformDisplay(platform, nativeDisplay, null);
        return Create(display, $"platform 0x{platform:x} window", nativeWindow);
    }

    /// <summary>
    /// Uses a display, context and surface (0 = none) someone else made and keeps owning: they are
    /// not destroyed by <see cref="Dispose"/>. The context must be desktop GL 4.3 or newer (compute shaders).
    /// </summary>
    public static EglContext Wrap(nint display, nint context, nint surface) =>
        display == 0 || context == 0
            ? throw new ArgumentException("a display and a context are needed")
            : new EglContext(display, context, surface, ownsDisplay: false, ownsContext: false, ownsSurface: false, $"wrapped context 0x{context:x}");

    private static EglContext Create(nint display, string platformName, nint nativeWindow)
    {
        if (display == 0) throw new EglException($"eglGetPlatformDisplay ({platformName}) failed: {Egl.ErrorName(Egl.eglGetError())}");
        if (!AcquireDisplay(display, out int major, out int minor))
            throw new EglException($"eglInitialize ({platformName}) failed: {Egl.ErrorName(Egl.eglGetError())}");
        nint context = 0, surface = 0;
        try
        {
            if (Egl.eglBindAPI(Egl.OPENGL_API) == 0) throw new EglException($"eglBindAPI(EGL_OPENGL_API) failed: {Egl.ErrorName(Egl.eglGetError())}");
            nint config = 0; // EGL_NO_CONFIG_KHR (EGL_KHR_no_config_context) when surfaceless
            if (nativeWindow != 0)
            {
                int[] configAttributes = [Egl.SURFACE_TYPE, Egl.WINDOW_BIT, Egl.RENDERABLE_TYPE, Egl.OPENGL_BIT,
                    Egl.RED_SIZE, 8, Egl.GREEN_SIZE, 8, Egl.BLUE_SIZE, 8, Egl.ALPHA_SIZE, 0, Egl.NONE];
                var configs = new nint[1];
                if (Egl.eglChooseConfig(display, configAttributes, configs, 1, out int count) == 0 || count == 0)
                    throw new EglException($"no EGL config with a window surface and desktop GL: {Egl.ErrorName(Egl.eglGetError())}");
                config = configs[0];
                surface = Egl.eglCreatePlatformWindowSurface(display, config, nativeWindow, null);
                if (surface == 0) throw new EglException($"eglCreatePlatformWindowSurface failed: {Egl.ErrorName(Egl.eglGetError())}");
            }
            int[] contextAttributes = [Egl.CONTEXT_MAJOR_VERSION, 4, Egl.CONTEXT_MINOR_VERSION, 5,
                Egl.CONTEXT_OPENGL_PROFILE_MASK, Egl.CONTEXT_OPENGL_CORE_PROFILE_BIT, Egl.NONE];
            context = Egl.eglCreateContext(display, config, 0, contextAttributes);
            if (context == 0) throw new EglException($"eglCreateContext (GL 4.5 core) failed: {Egl.ErrorName(Egl.eglGetError())}");
            string vendor = Egl.QueryString(display, Egl.VENDOR) ?? "?";
            return new EglContext(display, context, surface, ownsDisplay: true, ownsContext: true, ownsSurface: surface != 0,
                $"EGL {major}.{minor} {vendor}, {platformName}");
        }
        catch
        {
            if (surface != 0) Egl.eglDestroySurface(display, surface);
            if (context != 0) Egl.eglDestroyContext(display, context);
            ReleaseDisplay(display);
            throw;
        }
    }

    /// <summary>
    /// Makes the context current on this thread until the scope is disposed (then the previous
    /// binding of this thread is restored). Nothing happens when it already is current here.
    /// Throws <see cref="RendererLostException"/> when EGL reports the context lost, and
    /// <see cref="EglException"/> for other failures (e.g. current on another thread).
    /// </summary>
    public CurrentScope Enter()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        nint previousContext = Egl.eglGetCurrentContext();
        if (previousContext == Context) return default;
        nint previousDisplay = Egl.eglGetCurrentDisplay();
        nint previousDraw = previousContext != 0 ? Egl.eglGetCurrentSurface(Egl.DRAW) : 0;
        nint previousRead = previousContext != 0 ? Egl.eglGetCurrentSurface(Egl.READ) : 0;
        if (Egl.eglMakeCurrent(Display, Surface, Surface, Context) == 0)
        {
            int error = Egl.eglGetError();
            if (error == Egl.CONTEXT_LOST) throw new RendererLostException("the EGL context was lost (eglMakeCurrent: EGL_CONTEXT_LOST)");
            throw new EglException($"eglMakeCurrent failed: {Egl.ErrorName(error)} (is the context current on another thread?)");
        }
        return new CurrentScope(this, previousDisplay, previousContext, previousDraw, previousRead);
    }

    /// <summary>Makes the context current on this thread and leaves it so (for a thread that owns it, e.g. a window's render thread).</summary>
    public void MakeCurrent()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (Egl.eglGetCurrentContext() == Context) return;
        if (Egl.eglMakeCurrent(Display, Surface, Surface, Context) == 0)
            throw new EglException($"eglMakeCurrent failed: {Egl.ErrorName(Egl.eglGetError())}");
    }

    /// <summary>Unbinds the context from this thread (if it is current here).</summary>
    public void ReleaseCurrent()
    {
        if (_disposed || Egl.eglGetCurrentContext() != Context) return;
        Egl.eglMakeCurrent(Display, 0, 0, 0);
    }

    /// <summary>eglSwapBuffers on the window surface (the context must be current).</summary>
    public void SwapBuffers()
    {
        if (Surface == 0) throw new InvalidOperationException("this context has no window surface");
        if (Egl.eglSwapBuffers(Display, Surface) == 0)
        {
            int error = Egl.eglGetError();
            if (error == Egl.CONTEXT_LOST) throw new RendererLostException("the EGL context was lost (eglSwapBuffers)");
            throw new EglException($"eglSwapBuffers failed: {Egl.ErrorName(error)}");
        }
    }

    /// <summary>The surface's size in pixels (empty when there is no surface).</summary>
    public (int Width, int Height) SurfaceSize()
    {
        if (Surface == 0) return (0, 0);
        Egl.eglQuerySurface(Display, Surface, Egl.WIDTH, out int w);
        Egl.eglQuerySurface(Display, Surface, Egl.HEIGHT, out int h);
        return (w, h);
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        if (Egl.eglGetCurrentContext() == Context) Egl.eglMakeCurrent(Display, 0, 0, 0);
        if (_ownsSurface && Surface != 0) Egl.eglDestroySurface(Display, Surface);
        if (_ownsContext) Egl.eglDestroyContext(Display, Context);
        if (_ownsDisplay) ReleaseDisplay(Display);
    }

    // eglGetPlatformDisplay returns one handle per platform and native display, and eglTerminate
    // is not counted: the display is terminated when the last context made on it goes.
    private static readonly Dictionary<nint, int> DisplayUsers = [];

    private static bool AcquireDisplay(nint display, out int major, out int minor)
    {
        lock (DisplayUsers)
        {
            if (Egl.eglInitialize(display, out major, out minor) == 0) return false;
            DisplayUsers[display] = DisplayUsers.GetValueOrDefault(display) + 1;
            return true;
        }
    }

    private static void ReleaseDisplay(nint display)
    {
        lock (DisplayUsers)
        {
            int users = DisplayUsers.GetValueOrDefault(display) - 1;
            if (users > 0) { DisplayUsers[display] = users; return; }
            DisplayUsers.Remove(display);
            Egl.eglTerminate(display);
        }
    }

    /// <summary>The binding of one <see cref="Enter"/>; disposing restores the thread's previous binding.</summary>
    public readonly struct CurrentScope(EglContext? owner, nint display, nint context, nint draw, nint read) : IDisposable
    {
        public void Dispose()
        {
            if (owner is null) return;
            if (context != 0) Egl.eglMakeCurrent(display, draw, read, context);
            else Egl.eglMakeCurrent(owner.Display, 0, 0, 0);
        }
    }
}

/// <summary>EGL could not give the renderer a display, context or surface.</summary>
public sealed class EglException(string message) : Exception(message);
