using System.Runtime.InteropServices;

namespace VirtioGpuHost.IntegrationTests;

/// <summary>
/// The window tests' only native calls (libX11, as a second client of the test's Xvfb): a
/// screenshot of the root window (XGetImage) and the window manager's close request
/// (WM_DELETE_WINDOW), sent the way a window manager sends it.
/// </summary>
internal static partial class X11Native
{
    private const string X11 = "libX11.so.6";
    private const int ZPixmap = 2, ClientMessage = 33;
    private static readonly nuint AllPlanes = nuint.MaxValue;

    [LibraryImport(X11, StringMarshalling = StringMarshalling.Utf8)] private static partial nint XOpenDisplay(string name);
    [LibraryImport(X11)] private static partial int XCloseDisplay(nint display);
    [LibraryImport(X11)] private static partial nuint XDefaultRootWindow(nint display);
    [LibraryImport(X11)] private static partial nint XGetImage(nint display, nuint drawable, int x, int y, uint width, uint height, nuint planeMask, int format);
    [LibraryImport(X11)] private static partial nuint XGetPixel(nint image, int x, int y);
    [LibraryImport(X11)] private static partial int XDestroyImage(nint image);
    [LibraryImport(X11, StringMarshalling = StringMarshalling.Utf8)] private static partial nuint XInternAtom(nint display, string name, int onlyIfExists);
    [LibraryImport(X11)] private static partial int XSendEvent(nint display, nuint window, int propagate, long eventMask, ref XClientMessageEvent e);
    [LibraryImport(X11)] private static partial int XFlush(nint display);
    [LibraryImport(X11)] private static partial int XQueryTree(nint display, nuint window, out nuint root, out nuint parent, out nint children, out uint count);
    [LibraryImport(X11)] private static partial int XFree(nint data);

    [StructLayout(LayoutKind.Sequential, Size = 192)]
    private struct XClientMessageEvent
    {
        public int Type;
        public nuint Serial;
        public int SendEvent;
        public nint Display;
        public nuint Window;
        public nuint MessageType;
        public int Format;
        public long Data0, Data1, Data2, Data3, Data4;
    }

    /// <summary>The root window's pixels in <paramref name="rect"/> as 0x00RRGGBB, row by row.</summary>
    public static uint[] Screenshot(string display, int x, int y, int width, int height)
    {
        nint dpy = XOpenDisplay(display);
        if (dpy == 0) throw new InvalidOperationException($"XOpenDisplay({display}) failed");
        try
        {
            nint image = XGetImage(dpy, XDefaultRootWindow(dpy), x, y, (uint)width, (uint)height, AllPlanes, ZPixmap);
            if (image == 0) throw new InvalidOperationException("XGetImage failed");
            try
            {
                var pixels = new uint[width * height];
                for (int row = 0; row < height; row++)
                    for (int col = 0; col < width; col++)
                        pixels[row * width + col] = (uint)XGetPixel(image, col, row) & 0xFFFFFF;
                return pixels;
            }
            finally
            {
                XDestroyImage(image);
            }
        }
        finally
        {
            XCloseDisplay(dpy);
        }
    }

    /// <summary>Asks every top-level window to close (WM_PROTOCOLS / WM_DELETE_WINDOW), as a window manager's close button does.</summary>
    public static int CloseTopLevelWindows(string display)
    {
        nint dpy = XOpenDisplay(display);
        if (dpy == 0) throw new InvalidOperationException($"XOpenDisplay({display}) failed");
        try
        {
            var root = XDefaultRootWindow(dpy);
            XQueryTree(dpy, root, out _, out _, out nint children, out uint count);
            var windows = new nuint[count];
            for (int i = 0; i < count; i++) windows[i] = (nuint)Marshal.ReadIntPtr(children, i * IntPtr.Size);
            if (children != 0) XFree(children);
            var protocols = XInternAtom(dpy, "WM_PROTOCOLS", 0);
            var delete = XInternAtom(dpy, "WM_DELETE_WINDOW", 0);
            foreach (var w in windows)
            {
                var e = new XClientMessageEvent { Type = ClientMessage, SendEvent = 1, Display = dpy, Window = w, MessageType = protocols, Format = 32, Data0 = (long)delete };
                XSendEvent(dpy, w, 0, 0, ref e);
            }
            XFlush(dpy);
            return windows.Length;
        }
        finally
        {
            XCloseDisplay(dpy);
        }
    }
}
