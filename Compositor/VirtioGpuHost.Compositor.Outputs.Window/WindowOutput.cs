using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using VirtioGpuHost.Compositor.Core.Geometry;
using VirtioGpuHost.Compositor.Outputs.Window.Native;
using VirtioGpuHost.Compositor.Rendering;
using VirtioGpuHost.Compositor.Rendering.Vulkan;

namespace VirtioGpuHost.Compositor.Outputs.Window;

/// <summary>How a window output opens.</summary>
public sealed record WindowOutputOptions
{
    /// <summary>The X display (":5"); null: the process's DISPLAY. Applies to the first window of the process.</summary>
    public string? Display { get; init; }

    /// <summary>Cover the primary monitor in its current video mode (no mode switch), cursor hidden.</summary>
    public bool Fullscreen { get; init; }

    /// <summary>The window title; null: "virtio-gpu-host: OUTPUT".</summary>
    public string? Title { get; init; }

    /// <summary>Whether the user may resize the window (the frame is letterboxed into it either way).</summary>
    public bool Resizable { get; init; } = true;

    /// <summary>Swap on vertical blank (tear-free; blocks only the window thread, never the compositor).</summary>
    public bool VSync { get; init; } = true;

    /// <summary>
    /// Present on the renderer's GPU API where it can (on): with the Vulkan renderer, a Vulkan
    /// swapchain on the window that the target is copied into on the GPU. Off, or when that is
    /// not possible: the read-back way (pixels read from the target, uploaded into an OpenGL
    /// texture of the window, drawn), which works with every renderer.
    /// </summary>
    public bool GpuPresentation { get; init; } = true;
}

/// <summary>How a window output shows its frames.</summary>
public enum WindowPresentation
{
    /// <summary>Damage read back from the target on the frame thread, uploaded into a GL texture of the window, drawn and swapped.</summary>
    ReadBackGl,

    /// <summary>The Vulkan renderer's target copied into a Vulkan swapchain image of the window on the GPU, then presented.</summary>
    VulkanSwapchain,
}

/// <summary>What the window thread did (times in milliseconds, totals since the window opened).</summary>
public sealed record WindowPresentStats(long FramesCopied, long FramesShown, long Redraws, double CopyMs, double UploadMs, double DrawSwapMs)
{
    /// <summary>Frame thread: copying a presented frame's damage into the staging buffer, per frame.</summary>
    public double AverageCopyMs => FramesCopied == 0 ? 0 : CopyMs / FramesCopied;

    /// <summary>Window thread: texture upload of the damage, per frame shown.</summary>
    public double AverageUploadMs => FramesShown == 0 ? 0 : UploadMs / FramesShown;

    /// <summary>Window thread: clear, letterboxed quad, buffer swap, per redraw (Vulkan swapchain: acquire, copy into the image, present).</summary>
    public double AverageDrawSwapMs => Redraws == 0 ? 0 : DrawSwapMs / Redraws;
}

/// <summary>
/// A kiosk output: composed frames are kept in memory exactly as a headless output keeps them
/// (<see cref="Frames"/>: snapshots, PNGs) and shown in a window through an OpenGL context of
/// the window: each frame's damage is uploaded into a texture that a quad draws, letterboxed
/// to the window (nearest-neighbour; 1:1 while the window has the output's size). With the
/// Vulkan renderer (made with <see cref="VulkanInstanceExtensions"/>) the window has no GL
/// context but a Vulkan swapchain (<see cref="VulkanPresenter"/>): the target is copied into the
/// swapchain image on the GPU, nothing is read back; a failing surface or present falls back to
/// the GL way (the window made again with a context) with a log line.
/// </summary>
/// <remarks>
/// <para>The output keeps the layout's size whatever the window does: zones, labels and the
/// safety check are defined in output pixels, so resizing a window (or a monitor of another
/// size in fullscreen) scales the picture, centred, with black bars, and never re-lays it out.</para>
/// <para>Closing the window (the window manager's close button, Alt-F4) is logged and stops
/// presenting; the compositor and this output go on (frames, snapshots, the safety check),
/// nothing is shown until the process restarts or the layout is reloaded with the output
/// changed.</para>
/// <para>Presentation runs on the GLFW thread (<see cref="GlfwLoop"/>): <see cref="Present"/>
/// copies the damage into a staging frame and returns; the window thread uploads and swaps.</para>
/// </remarks>
public sealed class WindowOutput : IOutput, IRetargetableOutput, IMirroredOutput
{
    private readonly GlfwLoop _loop;
    private readonly ILogger _log;
    private readonly WindowOutputOptions _options;
    private readonly IRenderer _renderer;
    private volatile VulkanPresenter? _presenter;
    private volatile bool _fullCopyNext;
    private readonly object _stagingLock = new();
    private readonly object _drawnLock = new();
    private readonly uint[] _staging;
    private uint[] _readBuffer = [];
    private readonly Region _pending = new();
    private volatile bool _hasPending;
    private volatile bool _refresh;
    private volatile bool _closed;
    private nint _handle;
    private uint _texture;
    private bool _hasFrame;
    private long _stagedFrame, _drawnFrame;
    private SizeI _drawnSize;
    private long _framesCopied, _framesShown, _redraws;
    private long _copyTicks, _uploadTicks, _drawTicks;
    private bool _glErrorLogged, _disposed;

    private WindowOutput(HeadlessOutput frames, IRenderer renderer, GlfwLoop loop, WindowOutputOptions options, ILogger log)
    {
        Frames = frames;
        _renderer = renderer;
        _loop = loop;
        _options = options;
        _log = log;
        _staging = new uint[frames.Size.Width * frames.Size.Height];
    }

    /// <summary>
    /// Opens a window for an output of <paramref name="size"/>; null (and why) when there is no
    /// X display or libglfw3, or the window or its GL context cannot be made.
    /// </summary>
    public static WindowOutput? TryCreate(IRenderer renderer, string name, SizeI size, int refreshHz, WindowOutputOptions? options, ILogger? log, out string? error)
    {
        options ??= new WindowOutputOptions();
        log ??= NullLogger.Instance;
        var loop = GlfwLoop.Acquire(options.Display, out error);
        if (loop is null) return null;
        var frames = new HeadlessOutput(renderer, name, size, refreshHz);
        var output = new WindowOutput(frames, renderer, loop, options, log);
        try
        {
            error = loop.Invoke(output.OpenOnLoop);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            error = $"{e.GetType().Name}: {e.Message}";
        }
        if (error is null) return output;
        frames.Dispose();
        loop.Release();
        return null;
    }

    /// <summary>The frames as a headless output keeps them (snapshots, PNGs, the Presented event).</summary>
    public HeadlessOutput Frames { get; }

    public string Name => Frames.Name;
    public SizeI Size => Frames.Size;
    public int RefreshHz => Frames.RefreshHz;
    public IRenderTarget Target => Frames.Target;
    public long FramesPresented => Frames.FramesPresented;

    /// <summary>The window was closed (by the user, or it failed); frames are no longer shown.</summary>
    public bool IsClosed => _closed;

    /// <summary>Raised once, on the window thread, when the window closes; the argument says why.</summary>
    public event Action<WindowOutput, string>? Closed;

    /// <summary>The GL renderer and version of the window's context, or the Vulkan device presenting (for the log).</summary>
    public string GlInfo { get; private set; } = "";

    /// <summary>How the window shows frames now (a failing Vulkan swapchain falls back to <see cref="WindowPresentation.ReadBackGl"/>).</summary>
    public WindowPresentation Presentation { get; private set; }

    /// <summary>Why the window does not present through the renderer's GPU API (empty when it does, or never tried).</summary>
    public string PresentationNote { get; private set; } = "";

    /// <summary>
    /// The Vulkan instance extensions a Vulkan renderer needs to present in these windows
    /// (<c>VulkanRendererOptions.InstanceExtensions</c>): VK_KHR_surface and every surface
    /// extension GLFW 3.3 may ask for on Linux (glfwGetRequiredInstanceExtensions: xcb or xlib
    /// on X11, wayland); the renderer enables those its loader has, and the window checks
    /// GLFW's actual list against them when it opens.
    /// </summary>
    public static IReadOnlyList<string> VulkanInstanceExtensions { get; } = ["VK_KHR_surface", "VK_KHR_xcb_surface", "VK_KHR_xlib_surface", "VK_KHR_wayland_surface"];

    public WindowPresentStats Stats
    {
        get
        {
            static double Ms(ref long ticks) => TimeSpan.FromTicks(Interlocked.Read(ref ticks)).TotalMilliseconds;
            return new WindowPresentStats(Interlocked.Read(ref _framesCopied), Interlocked.Read(ref _framesShown), Interlocked.Read(ref _redraws),
                Ms(ref _copyTicks), Ms(ref _uploadTicks), Ms(ref _drawTicks));
        }
    }

    /// <summary>The last frame number the window drew, and at which framebuffer size.</summary>
    public (long Frame, SizeI Size) Drawn
    {
        get { lock (_drawnLock) return (_drawnFrame, _drawnSize); }
    }

    /// <summary>Waits until the window has drawn a frame that satisfies <paramref name="condition"/>.</summary>
    public bool WaitForDrawn(Func<long, SizeI, bool> condition, TimeSpan timeout)
    {
        var deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        lock (_drawnLock)
        {
            while (!condition(_drawnFrame, _drawnSize))
            {
                long left = deadline - Stopwatch.GetTimestamp();
                if (left <= 0 || _closed) return condition(_drawnFrame, _drawnSize);
                Monitor.Wait(_drawnLock, TimeSpan.FromSeconds(Math.Min(0.1, (double)left / Stopwatch.Frequency)));
            }
            return true;
        }
    }

    /// <summary>Where the window's content is on the screen, and its size in pixels (queried on the window thread).</summary>
    public RectI ScreenRect => _loop.Invoke(() =>
    {
        if (_handle == 0) return default;
        var (x, y) = GlfwNative.WindowPos(_handle);
        var (w, h) = GlfwNative.FramebufferSize(_handle);
        return new RectI(x, y, w, h);
    });

    /// <summary>Asks for a new window size (the window manager may refuse); the frame is letterboxed into it.</summary>
    public void Resize(int width, int height) => _loop.Invoke(() =>
    {
        if (_handle != 0) GlfwNative.SetWindowSize(_handle, width, height);
    });

    public void Present(long frame, Region damage)
    {
        Frames.Present(frame, damage);
        if (_closed) return;
        long started = Stopwatch.GetTimestamp();
        if (_presenter is not null)
        {
            // Vulkan swapchain: nothing to copy here, the window thread copies the target on the GPU.
            lock (_stagingLock)
            {
                _stagedFrame = frame;
                _hasPending = true;
            }
            Interlocked.Add(ref _copyTicks, Stopwatch.GetElapsedTime(started).Ticks);
            Interlocked.Increment(ref _framesCopied);
            _loop.Wake();
            return;
        }
        if (_fullCopyNext)
        {
            // Just switched from the Vulkan swapchain: the staging frame is stale everywhere.
            _fullCopyNext = false;
            damage = new Region(Size.ToRect());
        }
        lock (_stagingLock)
        {
            var target = Frames.Target;
            int stride = Size.Width;
            foreach (var r in damage.Rects)
            {
                var clipped = r.Intersect(Size.ToRect());
                if (clipped.IsEmpty) continue;
                int n = clipped.Width * clipped.Height;
                if (_readBuffer.Length < n) _readBuffer = new uint[n];
                var tmp = _readBuffer.AsSpan(0, n);
                target.ReadPixels(clipped, tmp);
                for (int y = 0; y < clipped.Height; y++)
                    tmp.Slice(y * clipped.Width, clipped.Width).CopyTo(_staging.AsSpan((clipped.Y + y) * stride + clipped.X, clipped.Width));
                _pending.Add(clipped);
            }
            _stagedFrame = frame;
            _hasPending = !_pending.IsEmpty;
        }
        Interlocked.Add(ref _copyTicks, Stopwatch.GetElapsedTime(started).Ticks);
        Interlocked.Increment(ref _framesCopied);
        _loop.Wake();
    }

    public void Retarget(IRenderer renderer)
    {
        // The swapchain lives on the old renderer's device: gone before its target is.
        if (_presenter is not null && !_closed)
            _loop.Invoke(() =>
            {
                if (_presenter is not null) FallBackToReadBack($"the renderer changed to {renderer.Capabilities.Name}", failed: false);
            });
        Frames.Retarget(renderer);
    }

    // ---- on the window thread ----

    internal bool HasWork => _handle != 0 && (_hasPending || _refresh);

    internal void OnRefreshRequested(nint window)
    {
        if (window == _handle) _refresh = true;
    }

    /// <summary>
    /// Creates the window: with a Vulkan swapchain for the Vulkan renderer where it can, else
    /// with a GL context and texture (the read-back way); null on success, else why not.
    /// </summary>
    private string? OpenOnLoop()
    {
        if (_options.GpuPresentation && _renderer is VulkanRenderer vulkan)
        {
            string? why = OpenVulkanOnLoop(vulkan);
            if (why is null) return null;
            PresentationNote = why;
            _log.LogWarning("output \"{Output}\": no Vulkan swapchain presentation ({Why}); presenting the read-back way through OpenGL", Name, why);
        }
        return OpenGlOnLoop();
    }

    private string? OpenVulkanOnLoop(VulkanRenderer vulkan)
    {
        string[]? required = GlfwNative.RequiredInstanceExtensions();
        if (required is null) return $"GLFW reports no Vulkan support (glfwGetRequiredInstanceExtensions: {GlfwNative.LastError() ?? "no loader"})";
        var missing = required.Except(vulkan.EnabledInstanceExtensions).ToList();
        if (missing.Count > 0)
            return $"the renderer's Vulkan instance lacks {string.Join(", ", missing)} (create it with VulkanRendererOptions.InstanceExtensions = WindowOutput.VulkanInstanceExtensions)";
        if (!vulkan.CanPresent) return "the renderer's device has no VK_KHR_swapchain";
        string? error = CreateWindowOnLoop(vulkanSurface: true, out var size, out var title);
        if (error is not null) return error;
        var presenter = VulkanPresenter.TryCreate(vulkan, instance => GlfwNative.CreateWindowSurface(instance, _handle), _options.VSync, out error);
        if (presenter is null)
        {
            GlfwNative.DestroyWindow(_handle);
            _handle = 0;
            return error;
        }
        _presenter = presenter;
        Presentation = WindowPresentation.VulkanSwapchain;
        GlInfo = $"Vulkan swapchain on {vulkan.DeviceName}";
        FinishOpen(size, title);
        return null;
    }

    private string? OpenGlOnLoop()
    {
        string? error = CreateWindowOnLoop(vulkanSurface: false, out var size, out var title);
        if (error is not null) return error;
        GlfwNative.MakeContextCurrent(_handle);
        GlfwNative.SwapInterval(_options.VSync ? 1 : 0);
        GlInfo = $"{GlfwNative.GetString(GlfwNative.Renderer)}, OpenGL {GlfwNative.GetString(GlfwNative.Version)}";
        _texture = GlfwNative.GenTexture();
        GlfwNative.BindTexture(GlfwNative.Texture2D, _texture);
        GlfwNative.TexParameter(GlfwNative.Texture2D, GlfwNative.TextureMinFilter, GlfwNative.Nearest);
        GlfwNative.TexParameter(GlfwNative.Texture2D, GlfwNative.TextureMagFilter, GlfwNative.Nearest);
        GlfwNative.TexParameter(GlfwNative.Texture2D, GlfwNative.TextureWrapS, GlfwNative.ClampToEdge);
        GlfwNative.TexParameter(GlfwNative.Texture2D, GlfwNative.TextureWrapT, GlfwNative.ClampToEdge);
        GlfwNative.TexEnv(GlfwNative.TextureEnv, GlfwNative.TextureEnvMode, GlfwNative.Replace);
        GlfwNative.TexImage(Size.Width, Size.Height);
        GlfwNative.Disable(GlfwNative.Blend);
        if (GlfwNative.GetError() is var err and not 0) return $"OpenGL error 0x{err:x} while setting up the window's texture ({GlInfo})";
        Presentation = WindowPresentation.ReadBackGl;
        FinishOpen(size, title);
        return null;
    }

    private void FinishOpen(SizeI size, string title)
    {
        if (_options.Fullscreen) GlfwNative.SetInputMode(_handle, GlfwNative.CursorMode, GlfwNative.CursorHidden);
        GlfwNative.WatchRefresh(_handle);
        _refresh = true;
        _loop.Remove(this);
        _loop.Add(this);
        _log.LogInformation("output \"{Output}\": window \"{Title}\" {Mode} {Width}x{Height} for a {OutW}x{OutH} frame ({Gl})",
            Name, title, _options.Fullscreen ? "fullscreen" : "windowed", size.Width, size.Height, Size.Width, Size.Height, GlInfo);
    }

    private string? CreateWindowOnLoop(bool vulkanSurface, out SizeI size, out string title)
    {
        title = _options.Title ?? $"virtio-gpu-host: {Name}";
        GlfwNative.DefaultWindowHints();
        GlfwNative.WindowHint(GlfwNative.ClientApi, vulkanSurface ? GlfwNative.NoApi : GlfwNative.OpenGlApi);
        GlfwNative.WindowHint(GlfwNative.Resizable, _options.Resizable ? 1 : 0);
        GlfwNative.WindowHint(GlfwNative.Visible, 1);
        GlfwNative.WindowHint(GlfwNative.DoubleBuffer, 1);
        GlfwNative.WindowHint(GlfwNative.AutoIconify, 0); // a kiosk stays up when focus moves
        var mode = GlfwNative.PrimaryVideoMode();
        nint monitor = 0;
        size = Size;
        if (_options.Fullscreen)
        {
            if (mode is not { } m) return "fullscreen: no monitor found";
            monitor = GlfwNative.GetPrimaryMonitor();
            GlfwNative.WindowHint(GlfwNative.RedBits, m.RedBits);
            GlfwNative.WindowHint(GlfwNative.GreenBits, m.GreenBits);
            GlfwNative.WindowHint(GlfwNative.BlueBits, m.BlueBits);
            GlfwNative.WindowHint(GlfwNative.RefreshRate, m.RefreshRate);
            size = new SizeI(m.Width, m.Height);
        }
        else if (mode is { } m && (size.Width > m.Width || size.Height > m.Height))
        {
            // Larger than the screen: open it scaled down to fit (the frame keeps its size).
            var fit = Letterbox.Fit(size, new SizeI(m.Width, m.Height));
            size = new SizeI(fit.Width, fit.Height);
        }
        _handle = GlfwNative.CreateWindow(size.Width, size.Height, title, monitor);
        if (_handle == 0) return $"cannot create the window: {GlfwNative.LastError() ?? "unknown GLFW error"}";
        return null;
    }

    /// <summary>
    /// Leaves the Vulkan swapchain for the read-back way: GLFW cannot give a window made for
    /// Vulkan a GL context, so the window is made again (same size) with one.
    /// </summary>
    private void FallBackToReadBack(string why, bool failed)
    {
        if (failed)
            _log.LogWarning("output \"{Output}\": Vulkan swapchain presentation failed ({Why}); presenting the read-back way through OpenGL from now on", Name, why);
        else
            _log.LogInformation("output \"{Output}\": {Why}; presenting the read-back way through OpenGL from now on", Name, why);
        PresentationNote = why;
        var presenter = _presenter;
        _presenter = null;
        presenter?.Dispose();
        _fullCopyNext = true;
        if (_handle != 0) GlfwNative.DestroyWindow(_handle);
        _handle = 0;
        string? error = OpenGlOnLoop();
        if (error is not null)
        {
            if (_handle != 0) GlfwNative.DestroyWindow(_handle);
            _handle = 0;
            MarkClosed($"the window could not be made again for OpenGL ({error})", log: true);
            return;
        }
        try
        {
            // Show the current frame now; the frame thread copies all of the next one.
            lock (_stagingLock)
            {
                Frames.Target.ReadPixels(_staging);
                _pending.Add(Size.ToRect());
                _hasPending = true;
            }
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            _log.LogDebug("output \"{Output}\": no frame to show after the fallback yet: {Error}", Name, e.Message);
        }
    }

    /// <summary>The Vulkan swapchain way: the target copied into the acquired image on the GPU, presented.</summary>
    private void ServiceVulkan(VulkanPresenter presenter, SizeI fb)
    {
        bool redraw = _refresh || fb != _drawnSize || _hasPending;
        _refresh = false;
        if (!redraw) return;
        long frame;
        bool fresh;
        lock (_stagingLock)
        {
            frame = _stagedFrame;
            fresh = _hasPending;
            _hasPending = false;
        }
        long t0 = Stopwatch.GetTimestamp();
        string? error = presenter.Present(Frames.Target, fb, extent => Letterbox.Fit(Size, extent), out bool presented);
        if (error is not null)
        {
            FallBackToReadBack(error, failed: true);
            return;
        }
        if (!presented) return; // minimised: nothing to present into
        if (fresh) Interlocked.Increment(ref _framesShown);
        Interlocked.Increment(ref _redraws);
        Interlocked.Add(ref _drawTicks, Stopwatch.GetElapsedTime(t0).Ticks);
        lock (_drawnLock)
        {
            _drawnFrame = frame;
            _drawnSize = fb;
            Monitor.PulseAll(_drawnLock);
        }
    }

    /// <summary>Closes the window when it was asked to close, uploads new damage, redraws when needed.</summary>
    internal void Service()
    {
        if (_handle == 0) return;
        if (GlfwNative.WindowShouldClose(_handle))
        {
            CloseOnLoop("the window was closed");
            return;
        }
        if (_presenter is { } presenter)
        {
            var (vw, vh) = GlfwNative.FramebufferSize(_handle);
            ServiceVulkan(presenter, new SizeI(vw, vh));
            return;
        }
        GlfwNative.MakeContextCurrent(_handle);
        var (fbw, fbh) = GlfwNative.FramebufferSize(_handle);
        var fb = new SizeI(fbw, fbh);
        bool redraw = _refresh || fb != _drawnSize;
        _refresh = false;
        long frame;
        if (_hasPending)
        {
            long started = Stopwatch.GetTimestamp();
            lock (_stagingLock)
            {
                GlfwNative.BindTexture(GlfwNative.Texture2D, _texture);
                foreach (var r in _pending.Rects)
                    GlfwNative.TexSubImage(_staging, Size.Width, r.X, r.Y, r.Width, r.Height);
                _pending.Clear();
                _hasPending = false;
                frame = _stagedFrame;
            }
            _hasFrame = true;
            redraw = true;
            Interlocked.Increment(ref _framesShown);
            Interlocked.Add(ref _uploadTicks, Stopwatch.GetElapsedTime(started).Ticks);
        }
        else
        {
            frame = _drawnFrame;
        }
        if (!redraw || fbw <= 0 || fbh <= 0) return; // minimized: nothing to draw into

        long t0 = Stopwatch.GetTimestamp();
        GlfwNative.Viewport(0, 0, fbw, fbh);
        GlfwNative.ClearColor(0, 0, 0, 1);
        GlfwNative.Clear(GlfwNative.ColorBufferBit);
        if (_hasFrame)
        {
            var dest = Letterbox.Fit(Size, fb);
            GlfwNative.Viewport(dest.X, fbh - dest.Y - dest.Height, dest.Width, dest.Height);
            GlfwNative.Enable(GlfwNative.Texture2D);
            GlfwNative.BindTexture(GlfwNative.Texture2D, _texture);
            GlfwNative.Begin(GlfwNative.Quads);
            GlfwNative.TexCoord(0, 0); GlfwNative.Vertex(-1, 1);
            GlfwNative.TexCoord(1, 0); GlfwNative.Vertex(1, 1);
            GlfwNative.TexCoord(1, 1); GlfwNative.Vertex(1, -1);
            GlfwNative.TexCoord(0, 1); GlfwNative.Vertex(-1, -1);
            GlfwNative.End();
        }
        GlfwNative.SwapBuffers(_handle);
        if (GlfwNative.GetError() is var err and not 0 && !_glErrorLogged)
        {
            _glErrorLogged = true;
            _log.LogError("output \"{Output}\": OpenGL error 0x{Error:x} while presenting ({Gl}); logged once", Name, err, GlInfo);
        }
        Interlocked.Increment(ref _redraws);
        Interlocked.Add(ref _drawTicks, Stopwatch.GetElapsedTime(t0).Ticks);
        lock (_drawnLock)
        {
            _drawnFrame = frame;
            _drawnSize = fb;
            Monitor.PulseAll(_drawnLock);
        }
    }

    /// <summary>Destroys the window (once); the output goes on without it.</summary>
    internal void CloseOnLoop(string why, bool log = true)
    {
        if (_handle == 0) return;
        if (_presenter is { } presenter)
        {
            // The swapchain and surface before the window they present to.
            _presenter = null;
            presenter.Dispose();
        }
        else
        {
            GlfwNative.MakeContextCurrent(_handle);
            if (_texture != 0) GlfwNative.DeleteTexture(_texture);
            _texture = 0;
            GlfwNative.MakeContextCurrent(0);
        }
        GlfwNative.DestroyWindow(_handle);
        _handle = 0;
        MarkClosed(why, log);
    }

    private void MarkClosed(string why, bool log)
    {
        _closed = true;
        _loop.Remove(this);
        lock (_drawnLock) Monitor.PulseAll(_drawnLock);
        if (log)
            _log.LogWarning("output \"{Output}\": {Why}; it is no longer shown (the compositor goes on: frames, snapshots and the safety check continue)", Name, why);
        try
        {
            Closed?.Invoke(this, why);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            _log.LogError("output \"{Output}\": a Closed handler failed: {Error}", Name, e.Message);
        }
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        try
        {
            _loop.Invoke(() => CloseOnLoop("disposed", log: false));
        }
        finally
        {
            _loop.Release();
            Frames.Dispose();
        }
    }
}
