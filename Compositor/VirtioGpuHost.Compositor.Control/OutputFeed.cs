using System.Diagnostics;
using SkiaSharp;
using VirtioGpuHost.Compositor.Outputs;

namespace VirtioGpuHost.Compositor.Control;

/// <summary>One captured output frame; each encoding is made once, on first demand, and shared by every client.</summary>
public sealed class CapturedFrame
{
    private readonly Lazy<byte[]> _jpeg, _png;

    public CapturedFrame(long seq, long compositorFrame, int width, int height, uint[] pixels, long capturedTimestamp)
    {
        Seq = seq;
        CompositorFrame = compositorFrame;
        Width = width;
        Height = height;
        Pixels = pixels;
        CapturedTimestamp = capturedTimestamp;
        _jpeg = new Lazy<byte[]>(() => Encode(SKEncodedImageFormat.Jpeg, 85));
        _png = new Lazy<byte[]>(() => Encode(SKEncodedImageFormat.Png, 100));
    }

    public long Seq { get; }
    public long CompositorFrame { get; }
    public int Width { get; }
    public int Height { get; }
    public uint[] Pixels { get; }

    /// <summary>When the frame was taken from the output (<see cref="Stopwatch"/> timestamp).</summary>
    public long CapturedTimestamp { get; }

    public byte[] Jpeg => _jpeg.Value;
    public byte[] Png => _png.Value;

    private unsafe byte[] Encode(SKEncodedImageFormat format, int quality)
    {
        var info = new SKImageInfo(Width, Height, SKColorType.Bgra8888, SKAlphaType.Opaque);
        fixed (uint* p = Pixels)
        {
            using var pixmap = new SKPixmap(info, (nint)p, Width * 4);
            using var data = pixmap.Encode(format, quality) ?? throw new InvalidOperationException($"{format} encoding failed");
            return data.ToArray();
        }
    }
}

/// <summary>
/// The frames of one output for viewers: captured from the headless output only while someone
/// asks, at most at the output's refresh rate, and only when the output presented something new.
/// A client always gets the newest frame after the one it has (long poll): a slow client skips
/// frames instead of queueing them, so at most one frame per client is ever in flight.
/// </summary>
public sealed class OutputFeed(string name, IOutput? output, int refreshHz) : IDisposable
{
    private readonly object _lock = new();
    private readonly TimeSpan _minInterval = TimeSpan.FromSeconds(1.0 / Math.Max(1, refreshHz));
    private readonly IOutput? _output = output;
    private TaskCompletionSource _next = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private long _presented = 1; // presents seen (1: whatever the output holds now counts as new)
    private long _lastCompositorFrame;
    private CapturedFrame? _latest;
    private long _seq;
    private int _clients;

    public string Name { get; } = name;

    /// <summary>Requests waiting for or receiving frames now.</summary>
    public int Clients => Volatile.Read(ref _clients);

    /// <summary>Frames captured so far (each at most once per present).</summary>
    public long Captured => Interlocked.Read(ref _seq);

    /// <summary>Whether this feed still reads the output the engine has under its name (a reload may replace it).</summary>
    public bool IsCurrent(IOutput? current) => ReferenceEquals(current, _output);

    /// <summary>Whether the output's pixels can be read (a headless output).</summary>
    public bool Capturable => _output is HeadlessOutput;

    /// <summary>The output presented a frame (frame thread): wake the waiting clients.</summary>
    public void Presented(long frame)
    {
        TaskCompletionSource wake;
        lock (_lock)
        {
            _presented++;
            _lastCompositorFrame = frame;
            wake = _next;
            _next = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }
        wake.TrySetResult();
    }

    /// <summary>The output's frame now, captured fresh (a screenshot).</summary>
    public CapturedFrame CaptureNow()
    {
        lock (_lock) return Capture();
    }

    /// <summary>
    /// The newest frame with a sequence number above <paramref name="after"/>: at once when there
    /// is one, else when the output presents the next (rate-limited to its refresh), else the
    /// newest one after <paramref name="timeout"/>.
    /// </summary>
    public async Task<CapturedFrame> NextAsync(long after, TimeSpan timeout, CancellationToken cancel)
    {
        Interlocked.Increment(ref _clients);
        try
        {
            var deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
            while (true)
            {
                Task wait;
                TimeSpan delay = TimeSpan.Zero;
                lock (_lock)
                {
                    bool fresh = _latest is null || _presented > _capturedAtPresent;
                    if (fresh)
                    {
                        var since = _latest is null ? TimeSpan.MaxValue : Stopwatch.GetElapsedTime(_latest.CapturedTimestamp);
                        if (since >= _minInterval) Capture();
                        else delay = _minInterval - since;
                    }
                    if (_latest!.Seq > after) return _latest;
                    if (Stopwatch.GetTimestamp() >= deadline) return _latest;
                    wait = delay > TimeSpan.Zero ? Task.Delay(delay, cancel) : _next.Task;
                }
                var left = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), deadline);
                if (left <= TimeSpan.Zero) left = TimeSpan.FromMilliseconds(1);
                await wait.WaitAsync(left, cancel).ContinueWith(_ => { }, TaskScheduler.Default).ConfigureAwait(false);
                cancel.ThrowIfCancellationRequested();
            }
        }
        finally
        {
            Interlocked.Decrement(ref _clients);
        }
    }

    private long _capturedAtPresent;

    private CapturedFrame Capture()
    {
        if (_output is not HeadlessOutput headless)
            throw new ControlException(409, $"output \"{Name}\" cannot be captured: only headless outputs keep their frames in memory");
        _capturedAtPresent = _presented;
        var pixels = headless.Snapshot();
        _latest = new CapturedFrame(Interlocked.Increment(ref _seq), _lastCompositorFrame, headless.Size.Width, headless.Size.Height, pixels, Stopwatch.GetTimestamp());
        return _latest;
    }

    public void Dispose()
    {
        lock (_lock) _next.TrySetResult();
    }
}
