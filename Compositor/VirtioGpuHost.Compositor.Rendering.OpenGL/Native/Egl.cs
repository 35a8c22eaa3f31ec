using System.Runtime.InteropServices;

namespace VirtioGpuHost.Compositor.Rendering.OpenGL.Native;

/// <summary>
/// The EGL entry points the GL renderer (and a window output) needs, P/Invoked from libEGL.so.1
/// (Debian: libegl1, the glvnd loader, with libegl-mesa0 as the vendor). Silk.NET.EGL is not on
/// the package mirror; this is the only native binding of the OpenGL project. Attribute lists are
/// int arrays ending with <see cref="NONE"/>. Handles are plain nints (0 = EGL_NO_*).
/// </summary>
public static partial class Egl
{
    public const string Library = "libEGL.so.1";

    [LibraryImport(Library, StringMarshalling = StringMarshalling.Utf8)] public static partial nint eglGetProcAddress(string name);
    [LibraryImport(Library)] public static partial nint eglQueryString(nint display, int name);
    [LibraryImport(Library)] public static partial nint eglGetPlatformDisplay(int platform, nint nativeDisplay, [In] nint[]? attributes);
    [LibraryImport(Library)] public static partial int eglInitialize(nint display, out int major, out int minor);
    [LibraryImport(Library)] public static partial int eglTerminate(nint display);
    [LibraryImport(Library)] public static partial int eglBindAPI(int api);
    [LibraryImport(Library)] public static partial int eglChooseConfig(nint display, [In] int[] attributes, [Out] nint[] configs, int size, out int count);
    [LibraryImport(Library)] public static partial nint eglCreateContext(nint display, nint config, nint shareContext, [In] int[] attributes);
    [LibraryImport(Library)] public static partial int eglDestroyContext(nint display, nint context);
    [LibraryImport(Library)] public static partial nint eglCreatePbufferSurface(nint display, nint config, [In] int[] attributes);
    [LibraryImport(Library)] public static partial nint eglCreatePlatformWindowSurface(nint display, nint config, nint nativeWindow, [In] nint[]? attributes);
    [LibraryImport(Library)] public static partial int eglDestroySurface(nint display, nint surface);
    [LibraryImport(Library)] public static partial int eglQuerySurface(nint display, nint surface, int attribute, out int value);
    [LibraryImport(Library)] public static partial int eglMakeCurrent(nint display, nint draw, nint read, nint context);
    [LibraryImport(Library)] public static partial nint eglGetCurrentContext();
    [LibraryImport(Library)] public static partial nint eglGetCurrentDisplay();
    [LibraryImport(Library)] public static partial nint eglGetCurrentSurface(int readDraw);
    [LibraryImport(Library)] public static partial int eglSwapBuffers(nint display, nint surface);
    [LibraryImport(Library)] public static partial int eglSwapInterval(nint display, int interval);
    [LibraryImport(Library)] public static partial int eglGetError();
    [LibraryImport(Library)] public static partial int eglReleaseThread();

    /// <summary>eglQueryString as a managed string (null when EGL returns NULL).</summary>
    public static string? QueryString(nint display, int name) => Marshal.PtrToStringUTF8(eglQueryString(display, name));

    /// <summary>Whether libEGL.so.1 can be loaded at all (no exception when it is missing).</summary>
    public static bool IsLibraryPresent(out string reason)
    {
        if (NativeLibrary.TryLoad(Library, typeof(Egl).Assembly, null, out var handle))
        {
            NativeLibrary.Free(handle);
            reason = "";
            return true;
        }
        reason = $"{Library} cannot be loaded (install libegl1 libegl-mesa0 libgl1-mesa-dri)";
        return false;
    }

    public static string ErrorName(int code) => code switch
    {
        SUCCESS => "EGL_SUCCESS",
        0x3001 => "EGL_NOT_INITIALIZED",
        0x3002 => "EGL_BAD_ACCESS",
        0x3003 => "EGL_BAD_ALLOC",
        0x3004 => "EGL_BAD_ATTRIBUTE",
        0x3005 => "EGL_BAD_CONFIG",
        0x3006 => "EGL_BAD_CONTEXT",
        0x3007 => "EGL_BAD_CURRENT_SURFACE",
        0x3008 => "EGL_BAD_DISPLAY",
        0x3009 => "EGL_BAD_MATCH",
        0x300A => "EGL_BAD_NATIVE_PIXMAP",
        0x300B => "EGL_BAD_NATIVE_WINDOW",
        0x300C => "EGL_BAD_PARAMETER",
        0x300D => "EGL_BAD_SURFACE",
        CONTEXT_LOST => "EGL_CONTEXT_LOST",
        _ => $"EGL error 0x{code:x}",
    };

    public const int SUCCESS = 0x3000, CONTEXT_LOST = 0x300E;
    public const int NONE = 0x3038, TRUE = 1, FALSE = 0;
    public const int VENDOR = 0x3053, VERSION = 0x3054, EXTENSIONS = 0x3055, CLIENT_APIS = 0x308D;
    public const int OPENGL_API = 0x30A2, OPENGL_ES_API = 0x30A0;
    public const int PLATFORM_SURFACELESS_MESA = 0x31DD, PLATFORM_X11_KHR = 0x31D5, PLATFORM_WAYLAND_KHR = 0x31D8, PLATFORM_GBM_KHR = 0x31D7;
    public const int SURFACE_TYPE = 0x3033, PBUFFER_BIT = 0x0001, WINDOW_BIT = 0x0004;
    public const int RENDERABLE_TYPE = 0x3040, OPENGL_BIT = 0x0008, OPENGL_ES3_BIT = 0x0040;
    public const int RED_SIZE = 0x3024, GREEN_SIZE = 0x3023, BLUE_SIZE = 0x3022, ALPHA_SIZE = 0x3021;
    public const int WIDTH = 0x3057, HEIGHT = 0x3056, DRAW = 0x3059, READ = 0x305A;
    public const int CONTEXT_MAJOR_VERSION = 0x3098, CONTEXT_MINOR_VERSION = 0x30FB;
    public const int CONTEXT_OPENGL_PROFILE_MASK = 0x30FD, CONTEXT_OPENGL_CORE_PROFILE_BIT = 0x1;
    public const int CONTEXT_OPENGL_ROBUST_ACCESS = 0x31B2;
    public const int CONTEXT_OPENGL_RESET_NOTIFICATION_STRATEGY = 0x31BD, LOSE_CONTEXT_ON_RESET = 0x31BF, NO_RESET_NOTIFICATION = 0x31BE;
}
