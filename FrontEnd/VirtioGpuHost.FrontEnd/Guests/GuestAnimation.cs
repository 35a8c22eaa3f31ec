using System.Diagnostics;
using System.Runtime.InteropServices;
using VirtioGpuHost.Device.Wire;

namespace VirtioGpuHost.FrontEnd.Guests;

/// <summary>
/// What a simulated guest draws: <see cref="Paint"/> fills the next frame (native 0xAARRGGBB,
/// row by row) and says which rect changed; null means "nothing to present" (a frozen guest).
/// </summary>
public interface IGuestScene
{
    /// <summary>Time between presents (zero: as fast as the device takes them).</summary>
    TimeSpan FrameInterval { get; }

    VirtioGpuRect? Paint(Span<uint> pixels, int width, int height, long frame, TimeSpan elapsed);

    /// <summary>
    /// Whether the guest wants its scanout enabled now (a camera app enables it in reverse gear
    /// and disables it after, with SET_SCANOUT resource 0). Asked before each frame.
    /// </summary>
    bool ScanoutEnabled(TimeSpan elapsed) => true;
}

/// <summary>How a <see cref="GuestAnimation"/> behaves.</summary>
public sealed record GuestAnimationOptions
{
    /// <summary>For logs and errors.</summary>
    public string Name { get; init; } = "guest";

    /// <summary>How long to keep trying while the socket is not there yet.</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Scatter the framebuffer over non-contiguous pages (as a Linux guest's are).</summary>
    public bool Scattered { get; init; } = true;
}

/// <summary>
/// A guest that draws an animation through a virtio-gpu device: the reference front-end plays
/// the VMM and the guest driver (GET_DISPLAY_INFO, a framebuffer resource of the reported
/// size on scanout 0, then TRANSFER_TO_HOST_2D + RESOURCE_FLUSH per frame), on its own thread.
/// Used by the demo and by the compositor's end-to-end tests.
/// </summary>
public sealed class GuestAnimation : IDisposable
{
    private readonly string _socket;
    private readonly IGuestScene _scene;
    private readonly GuestAnimationOptions _options;
    private readonly Thread _thread;
    private readonly CancellationTokenSource _stop = new();
    private readonly ManualResetEventSlim _started = new();
    private long _frames;
    private long _lastPresentTicks;

    private GuestAnimation(string socket, IGuestScene scene, GuestAnimationOptions options)
    {
        _socket = socket;
        _scene = scene;
        _options = options;
        _thread = new Thread(Run) { IsBackground = true, Name = $"guest {options.Name}" };
    }

    /// <summary>Connects to <paramref name="socket"/> (waiting for it to appear) and starts drawing.</summary>
    public static GuestAnimation Start(string socket, IGuestScene scene, GuestAnimationOptions? options = null)
    {
        var g = new GuestAnimation(socket, scene, options ?? new GuestAnimationOptions());
        g._thread.Start();
        return g;
    }

    /// <summary>Frames presented (each a completed TRANSFER + FLUSH).</summary>
    public long FramesPresented => Interlocked.Read(ref _frames);

    /// <summary>When the last present completed (Stopwatch ticks; 0 before the first).</summary>
    public long LastPresentTimestamp => Interlocked.Read(ref _lastPresentTicks);

    /// <summary>The display mode the device reported for scanout 0.</summary>
    public (uint Width, uint Height) Mode { get; private set; }

    /// <summary>Why the guest stopped, if it failed.</summary>
    public string? Error { get; private set; }

    /// <summary>Raised on the guest's thread after each present, with the frame number.</summary>
    public event Action<long>? Presented;

    /// <summary>Waits until the guest has shown its first frame.</summary>
    public bool WaitStarted(TimeSpan timeout) => _started.Wait(timeout) && Error is null;

    private void Run()
    {
        GpuVm? vm = null;
        try
        {
            vm = ConnectWithRetry();
            if (vm is null) return;
            var d = vm.Driver;
            var info = GpuDriver.ParseDisplayInfo(GpuDriver.Expect(d.GetDisplayInfo(), "GET_DISPLAY_INFO"));
            uint w = info[0].Rect.Width, h = info[0].Rect.Height;
            if (w == 0 || h == 0) (w, h) = (1024, 768);
            Mode = (w, h);
            var fb = FrameBuffer.Allocate(vm.Ram, w, h, VirtioGpuFormat.B8G8R8X8Unorm, _options.Scattered);
            d.SetUpFrameBuffer(1, fb, scanout: null);
            var full = new VirtioGpuRect(0, 0, w, h);
            var pixels = new uint[w * h];
            var sw = Stopwatch.StartNew();
            var next = TimeSpan.Zero;
            bool enabled = false;
            for (long frame = 0; !_stop.IsCancellationRequested; frame++)
            {
                bool want = _scene.ScanoutEnabled(sw.Elapsed);
                if (want != enabled)
                {
                    // The modeset: show the framebuffer (its content so far), or switch the scanout off.
                    GpuDriver.Expect(d.SetScanout(0, want ? 1u : 0u, want ? full : default), "SET_SCANOUT");
                    enabled = want;
                }
                var damage = enabled ? _scene.Paint(pixels, (int)w, (int)h, frame, sw.Elapsed) : null;
                if (damage is { IsEmpty: false } rect && rect.FitsIn(w, h))
                {
                    Upload(fb, pixels, (int)w, rect);
                    d.Present(1, fb, rect);
                    Interlocked.Increment(ref _frames);
                    Interlocked.Exchange(ref _lastPresentTicks, Stopwatch.GetTimestamp());
                    Presented?.Invoke(frame);
                    _started.Set();
                }
                var interval = _scene.FrameInterval;
                if (damage is null && interval == TimeSpan.Zero) interval = TimeSpan.FromMilliseconds(20); // frozen: idle
                if (interval > TimeSpan.Zero)
                {
                    next += interval;
                    var wait = next - sw.Elapsed;
                    if (wait < -interval) next = sw.Elapsed; // fell behind: do not burst to catch up
                    else if (wait > TimeSpan.Zero && _stop.Token.WaitHandle.WaitOne(wait)) break;
                }
            }
        }
        catch (Exception e) when (!_stop.IsCancellationRequested)
        {
            Error = $"{_options.Name}: {e.Message}";
        }
        catch
        {
            // Stopping: the device may already be gone.
        }
        finally
        {
            _started.Set();
            vm?.Dispose();
        }
    }

    private GpuVm? ConnectWithRetry()
    {
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                return GpuVm.Connect(_socket, new GpuVmOptions { RamSize = 64UL << 20 });
            }
            catch (IOException) when (deadline.Elapsed < _options.ConnectTimeout && !_stop.IsCancellationRequested)
            {
                if (_stop.Token.WaitHandle.WaitOne(50)) return null;
            }
        }
    }

    /// <summary>Writes the changed rect's rows into guest memory (what the guest's CPU rendering did).</summary>
    private static void Upload(FrameBuffer fb, uint[] pixels, int width, VirtioGpuRect rect)
    {
        var bytes = MemoryMarshal.AsBytes(pixels.AsSpan());
        if (rect.X == 0 && rect.Width == (uint)width)
        {
            fb.Write((ulong)rect.Y * fb.Stride, bytes.Slice((int)(rect.Y * fb.Stride), (int)(rect.Height * fb.Stride)));
            return;
        }
        for (uint y = rect.Y; y < rect.Y + rect.Height; y++)
            fb.Write((ulong)y * fb.Stride + rect.X * 4, bytes.Slice((int)(y * fb.Stride + rect.X * 4), (int)rect.Width * 4));
    }

    public void Dispose()
    {
        _stop.Cancel();
        if (_thread.IsAlive) _thread.Join(TimeSpan.FromSeconds(10));
        _stop.Dispose();
        _started.Dispose();
    }
}
