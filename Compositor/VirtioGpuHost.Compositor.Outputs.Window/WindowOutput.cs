using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using VirtioGpuHost.Compositor.Core.Geometry;
using VirtioGpuHost.Compositor.Outputs.Window.Native;
using VirtioGpuHost.Compositor.Rendering;

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
}

/// <summary>What the window thread did (times in milliseconds, totals since the window opened).</summary>
public sealed record WindowPresentStats(long FramesCopied, long FramesShown, long Redraws, double CopyMs, double UploadMs, double DrawSwapMs)
{
    /// <summary>Frame thread: copying a presented frame's damage into the staging buffer, per frame.</summary>
    public double AverageCopyMs => FramesCopied == 0 ? 0 : CopyMs / FramesCopied;

    /// <summary>Window thread: texture upload of the damage, per frame shown.</summary>
    public double AverageUploadMs => FramesShown == 0 ? 0 : UploadMs / FramesShown;

    /// <summary>Window thread: clear, letterboxed quad, buffer swap, per redraw.</summary>
    public double AverageDrawSwapMs => Redraws == 0 ? 0 : DrawSwapMs / Redraws;
}

/// <summary>
/// A kiosk output: composed frames are kept in memory exactly as a headless output keeps them
/// (<see cref="Frames"/>: snapshots, PNGs) and shown in a window through an OpenGL context of
/// the window: each frame's damage is uploaded into a texture that a quad draws, letterboxed
/// to the window (nearest-neighbour; 1:1 while the window has the output's size).
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

    private WindowOutput(HeadlessOutput frames, GlfwLoop loop, WindowOutputOptions options, ILogger log)
    {
        Frames = frames;
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
        var output = new WindowOutput(frames, loop, options, log);
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

    /// <summary>The GL renderer and version of the window's context (for the log).</summary>
    public string GlInfo { get; private set; } = "";

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

    public void Retarget(IRenderer renderer) => Frames.Retarget(renderer);

    // ---- on the window thread ----

    internal bool HasWork => _handle != 0 && (_hasPending || _refresh);

    internal void OnRefreshRequested(nint window)
    {
        if (window == _handle) _refresh = true;
    }

    /// <summary>Creates the window and its GL texture; null on success, else why not.</summary>
    private string? OpenOnLoop()
    {
        GlfwNative.DefaultWindowHints();
        GlfwNative.WindowHint(GlfwNative.ClientApi, GlfwNative.OpenGlApi);
        GlfwNative.WindowHint(GlfwNative.Resizable, _options.Resizable ? 1 : 0);
        GlfwNative.WindowHint(GlfwNative.Visible, 1);
        GlfwNative.WindowHint(GlfwNative.DoubleBuffer, 1);
        GlfwNative.WindowHint(GlfwNative.AutoIconify, 0); // a kiosk stays up when focus moves
        var mode = GlfwNative.PrimaryVideoMode();
        nint monitor = 0;
        var size = Size;
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
        string title = _options.Title ?? $"virtio-gpu-host: {Name}";
        _handle = GlfwNative.CreateWindow(size.Width, size.Height, title, monitor);
        if (_handle == 0) return $"cannot create the window: {GlfwNative.LastError() ?? "unknown GLFW error"}";
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
        if (_options.Fullscreen) GlfwNative.SetInputMode(_handle, GlfwNative.CursorMode, GlfwNative.CursorHidden);
        GlfwNative.WatchRefresh(_handle);
        _refresh = true;
        _loop.Add(this);
        _log.LogInformation("output \"{Output}\": window \"{Title}\" {Mode} {Width}x{Height} for a {OutW}x{OutH} frame ({Gl})",
            Name, title, _options.Fullscreen ? "fullscreen" : "windowed", size.Width, size.Height, Size.Width, Size.Height, GlInfo);
        return null;
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
        GlfwNative.MakeContextCurrent(_handle);
        if (_texture != 0) GlfwNative.DeleteTexture(_texture);
        _texture = 0;
        GlfwNative.MakeContextCurrent(0);
        GlfwNative.DestroyWindow(_handle);
        _handle = 0;
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
