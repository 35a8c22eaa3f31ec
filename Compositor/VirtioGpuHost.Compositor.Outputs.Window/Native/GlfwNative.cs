using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;

namespace VirtioGpuHost.Compositor.Outputs.Window.Native;

/// <summary>
/// The only native calls of the window output: Debian's libglfw3 (libglfw.so.3, the X11
/// build), the legacy OpenGL 1.x entry points libGL.so.1 exports (they dispatch to the context
/// current on the calling thread), and libc's setenv for the X display GLFW opens. Every call
/// here must be made on the GLFW loop thread, except <see cref="PostEmptyEvent"/>.
/// </summary>
internal static unsafe partial class GlfwNative
{
    private const string Glfw = "libglfw.so.3";
    private const string Gl = "libGL.so.1";
    private const string LibC = "libc";

    // ---- GLFW constants (glfw3.h) ----
    public const int Focused = 0x00020001, Resizable = 0x00020003, Visible = 0x00020004, Decorated = 0x00020005, AutoIconify = 0x00020006;
    public const int RedBits = 0x00021001, GreenBits = 0x00021002, BlueBits = 0x00021003, RefreshRate = 0x0002100F, DoubleBuffer = 0x00021010;
    public const int ClientApi = 0x00022001, OpenGlApi = 0x00030001, NoApi = 0;
    public const int CursorMode = 0x00033001, CursorHidden = 0x00034002;

    [StructLayout(LayoutKind.Sequential)]
    public struct VideoMode
    {
        public int Width, Height, RedBits, GreenBits, BlueBits, RefreshRate;
    }

    [LibraryImport(Glfw, EntryPoint = "glfwInit")] private static partial int glfwInit();
    [LibraryImport(Glfw, EntryPoint = "glfwTerminate")] public static partial void Terminate();
    [LibraryImport(Glfw, EntryPoint = "glfwGetError")] private static partial int glfwGetError(byte** description);
    [LibraryImport(Glfw, EntryPoint = "glfwDefaultWindowHints")] public static partial void DefaultWindowHints();
    [LibraryImport(Glfw, EntryPoint = "glfwWindowHint")] public static partial void WindowHint(int hint, int value);
    [LibraryImport(Glfw, EntryPoint = "glfwCreateWindow")] private static partial nint glfwCreateWindow(int width, int height, byte* title, nint monitor, nint share);
    [LibraryImport(Glfw, EntryPoint = "glfwDestroyWindow")] public static partial void DestroyWindow(nint window);
    [LibraryImport(Glfw, EntryPoint = "glfwWindowShouldClose")] private static partial int glfwWindowShouldClose(nint window);
    [LibraryImport(Glfw, EntryPoint = "glfwWaitEventsTimeout")] public static partial void WaitEventsTimeout(double seconds);
    [LibraryImport(Glfw, EntryPoint = "glfwPollEvents")] public static partial void PollEvents();
    [LibraryImport(Glfw, EntryPoint = "glfwPostEmptyEvent")] public static partial void PostEmptyEvent();
    [LibraryImport(Glfw, EntryPoint = "glfwMakeContextCurrent")] public static partial void MakeContextCurrent(nint window);
    [LibraryImport(Glfw, EntryPoint = "glfwSwapBuffers")] public static partial void SwapBuffers(nint window);
    [LibraryImport(Glfw, EntryPoint = "glfwSwapInterval")] public static partial void SwapInterval(int interval);
    [LibraryImport(Glfw, EntryPoint = "glfwGetFramebufferSize")] private static partial void glfwGetFramebufferSize(nint window, int* width, int* height);
    [LibraryImport(Glfw, EntryPoint = "glfwGetWindowPos")] private static partial void glfwGetWindowPos(nint window, int* x, int* y);
    [LibraryImport(Glfw, EntryPoint = "glfwSetWindowSize")] public static partial void SetWindowSize(nint window, int width, int height);
    [LibraryImport(Glfw, EntryPoint = "glfwSetInputMode")] public static partial void SetInputMode(nint window, int mode, int value);
    [LibraryImport(Glfw, EntryPoint = "glfwGetPrimaryMonitor")] public static partial nint GetPrimaryMonitor();
    [LibraryImport(Glfw, EntryPoint = "glfwGetVideoMode")] private static partial VideoMode* glfwGetVideoMode(nint monitor);
    [LibraryImport(Glfw, EntryPoint = "glfwSetWindowRefreshCallback")] private static partial nint glfwSetWindowRefreshCallback(nint window, delegate* unmanaged[Cdecl]<nint, void> callback);

    [LibraryImport(Glfw, EntryPoint = "glfwGetRequiredInstanceExtensions")] private static partial byte** glfwGetRequiredInstanceExtensions(uint* count);
    [LibraryImport(Glfw, EntryPoint = "glfwCreateWindowSurface")] private static partial int glfwCreateWindowSurface(nint instance, nint window, nint allocator, ulong* surface);

    /// <summary>The Vulkan instance extensions GLFW needs for window surfaces; null when GLFW found no Vulkan loader.</summary>
    public static string[]? RequiredInstanceExtensions()
    {
        uint count;
        byte** names = glfwGetRequiredInstanceExtensions(&count);
        if (names is null) return null;
        var result = new string[count];
        for (int i = 0; i < count; i++) result[i] = Marshal.PtrToStringUTF8((nint)names[i]) ?? "";
        return result;
    }

    /// <summary>glfwCreateWindowSurface for a window made with ClientApi = NoApi: the VkResult and the VkSurfaceKHR.</summary>
    public static (int Result, ulong Surface) CreateWindowSurface(nint instance, nint window)
    {
        ulong surface = 0;
        int r = glfwCreateWindowSurface(instance, window, 0, &surface);
        return (r, surface);
    }

    /// <summary>glfwInit with <paramref name="display"/> as DISPLAY for the call only (null: the process's DISPLAY).</summary>
    public static bool Init(string? display, out string? error)
    {
        string? previous = display is null ? null : GetEnv("DISPLAY");
        if (display is not null) SetEnv("DISPLAY", display);
        try
        {
            if (glfwInit() != 0)
            {
                error = null;
                return true;
            }
            error = LastError() ?? "glfwInit failed";
            return false;
        }
        finally
        {
            // The X connection is open now (or failed); the rest of the process keeps its DISPLAY.
            if (display is not null)
            {
                if (previous is null) UnsetEnv("DISPLAY"); else SetEnv("DISPLAY", previous);
            }
        }
    }

    /// <summary>GLFW's last error ("0x10008: X11: Failed to open display :5"), or null when none.</summary>
    public static string? LastError()
    {
        byte* description;
        int code = glfwGetError(&description);
        if (code == 0) return null;
        return $"0x{code:x}: {Marshal.PtrToStringUTF8((nint)description)}";
    }

    public static nint CreateWindow(int width, int height, string title, nint monitor)
    {
        byte[] utf8 = Encoding.UTF8.GetBytes(title + "\0");
        fixed (byte* p = utf8) return glfwCreateWindow(width, height, p, monitor, 0);
    }

    public static bool WindowShouldClose(nint window) => glfwWindowShouldClose(window) != 0;

    public static (int Width, int Height) FramebufferSize(nint window)
    {
        int w, h;
        glfwGetFramebufferSize(window, &w, &h);
        return (w, h);
    }

    public static (int X, int Y) WindowPos(nint window)
    {
        int x, y;
        glfwGetWindowPos(window, &x, &y);
        return (x, y);
    }

    public static VideoMode? PrimaryVideoMode()
    {
        nint monitor = GetPrimaryMonitor();
        if (monitor == 0) return null;
        var mode = glfwGetVideoMode(monitor);
        return mode is null ? null : *mode;
    }

    /// <summary>Raised (on the loop thread, inside event processing) when a window's contents must be drawn again (exposed).</summary>
    public static Action<nint>? RefreshRequested { get; set; }

    public static void WatchRefresh(nint window) => glfwSetWindowRefreshCallback(window, &OnRefresh);

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static void OnRefresh(nint window) => RefreshRequested?.Invoke(window);

    // ---- OpenGL 1.x (libGL.so.1 exports them; they act on the current context) ----
    public const int Texture2D = 0x0DE1, Rgba8 = 0x8058, Bgra = 0x80E1, UnsignedByte = 0x1401;
    public const int TextureMinFilter = 0x2801, TextureMagFilter = 0x2800, Nearest = 0x2600;
    public const int TextureWrapS = 0x2802, TextureWrapT = 0x2803, ClampToEdge = 0x812F;
    public const int UnpackRowLength = 0x0CF2, UnpackSkipRows = 0x0CF3, UnpackSkipPixels = 0x0CF4, UnpackAlignment = 0x0CF5;
    public const int ColorBufferBit = 0x4000, Quads = 0x0007, Blend = 0x0BE2, Version = 0x1F02, Renderer = 0x1F01;
    public const int TextureEnv = 0x2300, TextureEnvMode = 0x2200, Replace = 0x1E01;

    [LibraryImport(Gl, EntryPoint = "glViewport")] public static partial void Viewport(int x, int y, int width, int height);
    [LibraryImport(Gl, EntryPoint = "glClearColor")] public static partial void ClearColor(float r, float g, float b, float a);
    [LibraryImport(Gl, EntryPoint = "glClear")] public static partial void Clear(int mask);
    [LibraryImport(Gl, EntryPoint = "glEnable")] public static partial void Enable(int cap);
    [LibraryImport(Gl, EntryPoint = "glDisable")] public static partial void Disable(int cap);
    [LibraryImport(Gl, EntryPoint = "glGenTextures")] private static partial void glGenTextures(int n, uint* textures);
    [LibraryImport(Gl, EntryPoint = "glDeleteTextures")] private static partial void glDeleteTextures(int n, uint* textures);
    [LibraryImport(Gl, EntryPoint = "glBindTexture")] public static partial void BindTexture(int target, uint texture);
    [LibraryImport(Gl, EntryPoint = "glTexParameteri")] public static partial void TexParameter(int target, int name, int value);
    [LibraryImport(Gl, EntryPoint = "glTexEnvi")] public static partial void TexEnv(int target, int name, int value);
    [LibraryImport(Gl, EntryPoint = "glPixelStorei")] public static partial void PixelStore(int name, int value);
    [LibraryImport(Gl, EntryPoint = "glTexImage2D")] private static partial void glTexImage2D(int target, int level, int internalFormat, int width, int height, int border, int format, int type, void* pixels);
    [LibraryImport(Gl, EntryPoint = "glTexSubImage2D")] private static partial void glTexSubImage2D(int target, int level, int x, int y, int width, int height, int format, int type, void* pixels);
    [LibraryImport(Gl, EntryPoint = "glBegin")] public static partial void Begin(int mode);
    [LibraryImport(Gl, EntryPoint = "glEnd")] public static partial void End();
    [LibraryImport(Gl, EntryPoint = "glTexCoord2f")] public static partial void TexCoord(float s, float t);
    [LibraryImport(Gl, EntryPoint = "glVertex2f")] public static partial void Vertex(float x, float y);
    [LibraryImport(Gl, EntryPoint = "glGetError")] public static partial int GetError();
    [LibraryImport(Gl, EntryPoint = "glGetString")] private static partial byte* glGetString(int name);

    public static string GetString(int name) => Marshal.PtrToStringUTF8((nint)glGetString(name)) ?? "";

    public static uint GenTexture()
    {
        uint t;
        glGenTextures(1, &t);
        return t;
    }

    public static void DeleteTexture(uint texture) => glDeleteTextures(1, &texture);

    /// <summary>Allocates the bound texture as <paramref name="width"/>x<paramref name="height"/> RGBA8 (contents undefined).</summary>
    public static void TexImage(int width, int height) =>
        glTexImage2D(Texture2D, 0, Rgba8, width, height, 0, Bgra, UnsignedByte, null);

    /// <summary>
    /// Uploads <paramref name="rect"/> of a frame whose rows are <paramref name="frameWidth"/>
    /// pixels (0xAARRGGBB, i.e. B, G, R, A bytes) into the bound texture at the same place.
    /// </summary>
    public static void TexSubImage(ReadOnlySpan<uint> frame, int frameWidth, int x, int y, int width, int height)
    {
        PixelStore(UnpackAlignment, 4);
        PixelStore(UnpackRowLength, frameWidth);
        PixelStore(UnpackSkipPixels, x);
        PixelStore(UnpackSkipRows, y);
        fixed (uint* p = frame) glTexSubImage2D(Texture2D, 0, x, y, width, height, Bgra, UnsignedByte, p);
        PixelStore(UnpackRowLength, 0);
        PixelStore(UnpackSkipPixels, 0);
        PixelStore(UnpackSkipRows, 0);
    }

    // ---- libc ----
    [LibraryImport(LibC, EntryPoint = "setenv", StringMarshalling = StringMarshalling.Utf8)] private static partial int setenv(string name, string value, int overwrite);
    [LibraryImport(LibC, EntryPoint = "unsetenv", StringMarshalling = StringMarshalling.Utf8)] private static partial int unsetenv(string name);
    [LibraryImport(LibC, EntryPoint = "getenv", StringMarshalling = StringMarshalling.Utf8)] private static partial nint getenv(string name);

    private static string? GetEnv(string name) => getenv(name) is var p and not 0 ? Marshal.PtrToStringUTF8(p) : null;
    private static void SetEnv(string name, string value) => setenv(name, value, 1);
    private static void UnsetEnv(string name) => unsetenv(name);
}
