using VirtioGpuHost.Interop;
using Microsoft.Extensions.Logging;

namespace VirtioGpuHost.Compositor;

/// <summary>
/// Drives <see cref="CompositorEngine.ComposeFrame"/> at the outputs' refresh rate on its own
/// thread (a headless output's vblank). Ticks are on a fixed grid from the start, so a slow
/// frame delays the next one but never shifts the grid; frames that could not be made in time
/// are skipped, not queued. Tests use step mode instead: no clock, ComposeFrame per step.
/// </summary>
public sealed class FrameClock : IDisposable
{
    private readonly CompositorEngine _engine;
    private readonly ILogger _log;
    private readonly Thread _thread;
    private readonly CancellationTokenSource _stop = new();
    private readonly Func<TimeSpan>? _clock;
    private long _missed;
    private long _epochTicks = -1;

    /// <param name="clock">
    /// The engine's clock, only to report <see cref="Epoch"/> on it (the ticks themselves follow
    /// CLOCK_MONOTONIC).
    /// </param>
    public FrameClock(CompositorEngine engine, ILogger logger, Func<TimeSpan>? clock = null)
    {
        _engine = engine;
        _log = logger;
        _clock = clock;
        _thread = new Thread(Run) { IsBackground = true, Name = "compositor frame clock" };
    }

    /// <summary>Ticks that came while the previous frame was still being made.</summary>
    public long MissedTicks => Interlocked.Read(ref _missed);

    /// <summary>
    /// Time of tick 0 on the clock given to the constructor (tick k is due at Epoch + k × period
    /// while the period stays): null before the thread started or without a clock. The fairness
    /// benchmark places flushes and frames on this grid.
    /// </summary>
    public TimeSpan? Epoch => Interlocked.Read(ref _epochTicks) is >= 0 and var t ? TimeSpan.FromTicks(t) : null;

    public void Start() => _thread.Start();

    /// <summary>
    /// Nice value the frame thread asks for: above every VM's connection threads, so a loaded
    /// host (other processes, a flooding VM) delays the outputs' deadlines last. Granted only with
    /// CAP_SYS_NICE (or an RLIMIT_NICE that allows it); otherwise the thread keeps the process's
    /// priority and untrusted VMs are still below it (docs/reliability.md, "Fairness and deadlines").
    /// </summary>
    public const int FrameThreadNice = -5;

    private const long NanosecondsPerTick = 100;

    /// <summary>How much of a wait is left to the precise sleep (WaitOne may end up to 1 ms early).</summary>
    private static readonly TimeSpan CoarseMargin = TimeSpan.FromMilliseconds(20);

    private void Run()
    {
        int tid = VirtioGpuHost.Interop.ThreadScheduling.CurrentThreadId;
        int errno = VirtioGpuHost.Interop.ThreadScheduling.TrySetNice(tid, FrameThreadNice);
        if (errno == 0) _log.LogInformation("frame clock: thread {Tid} at nice {Nice}", tid, FrameThreadNice);
        else _log.LogInformation("frame clock: thread {Tid} at the process's priority (nice {Nice} is not permitted: {Error})", tid, FrameThreadNice, VirtioGpuHost.Interop.Errno.Describe(errno));
        // The grid is on CLOCK_MONOTONIC and each wait ends at its tick's absolute time, never
        // before it: a frame composed early misses what a guest flushed just before the tick (the
        // fairness benchmark counted those as missed critical frames), and relative waits drift.
        // The epoch is read first: it is then at or before the grid's true start, so no frame
        // ever appears to start before its tick on the engine's clock.
        if (_clock is not null) Interlocked.Exchange(ref _epochTicks, _clock().Ticks);
        long start = MonotonicClock.NowNanoseconds();
        var next = TimeSpan.Zero;
        while (!_stop.IsCancellationRequested)
        {
            var period = _engine.FramePeriod;
            long deadline = start + next.Ticks * NanosecondsPerTick;
            // Long waits (a slow refresh rate) sleep in a cancellable wait first; the last
            // stretch is one precise absolute sleep.
            long coarse = deadline - MonotonicClock.NowNanoseconds() - CoarseMargin.Ticks * NanosecondsPerTick;
            if (coarse > 0 && _stop.Token.WaitHandle.WaitOne(TimeSpan.FromTicks(coarse / NanosecondsPerTick))) break;
            MonotonicClock.SleepUntil(deadline);
            if (_stop.IsCancellationRequested) break;
            try
            {
                _engine.ComposeFrame();
            }
            catch (ObjectDisposedException)
            {
                break;
            }
            catch (Exception e)
            {
                // A frame that fails (a renderer fault) must not stop the display: log, go on.
                _log.LogError(e, "frame failed");
            }
            next += period;
            var now = TimeSpan.FromTicks((MonotonicClock.NowNanoseconds() - start) / NanosecondsPerTick);
            if (now > next)
            {
                long skipped = (long)((now - next).Ticks / period.Ticks) + 1;
                Interlocked.Add(ref _missed, skipped);
                next += period * skipped;
            }
        }
    }

    public void Dispose()
    {
        _stop.Cancel();
        if (_thread.IsAlive) _thread.Join(TimeSpan.FromSeconds(10));
        _stop.Dispose();
    }
}
