using System.Collections.Concurrent;
using System.Diagnostics;
using VirtioGpuHost.Interop;

namespace VirtioGpuHost.VhostUser.Transport;

/// <summary>
/// A single-threaded poll(2) reactor: one per connection, so a VM's work never waits on
/// another's. Fd watchers, posted actions, timers, and a SynchronizationContext so that
/// `await` inside device code resumes on the loop thread (no locks in the device model).
/// </summary>
public sealed class EventLoop : IDisposable
{
    private readonly List<Watcher> _watchers = new();
    private readonly ConcurrentQueue<Action> _posted = new();
    private readonly PriorityQueue<Timer, long> _timers = new();
    private readonly FdHandle _wake = EventFd.Create();
    private volatile bool _stopping;
    private Thread? _thread;

    public EventLoop() { Context = new LoopSynchronizationContext(this); }

    public SynchronizationContext Context { get; }

    public bool IsLoopThread => Thread.CurrentThread == _thread;

    /// <summary>
    /// Calls <paramref name="onReady"/> on the loop thread whenever <paramref name="fd"/> has
    /// one of the events <paramref name="wanted"/> returns (asked before every poll; None
    /// pauses the watch). Dispose the result to stop watching.
    /// </summary>
    public IDisposable Watch(FdHandle fd, Func<PollEvents> wanted, Action<PollEvents> onReady)
    {
        var w = new Watcher(this, fd, wanted, onReady);
        _watchers.Add(w);
        return w;
    }

    /// <summary>Runs <paramref name="action"/> on the loop thread soon (thread-safe).</summary>
    public void Post(Action action)
    {
        _posted.Enqueue(action);
        EventFd.Signal(_wake);
    }

    /// <summary>Runs <paramref name="action"/> on the loop thread after <paramref name="delay"/>; dispose to cancel.</summary>
    public IDisposable Schedule(TimeSpan delay, Action action)
    {
        var t = new Timer(action);
        long due = Stopwatch.GetTimestamp() + (long)(delay.TotalSeconds * Stopwatch.Frequency);
        if (IsLoopThread) _timers.Enqueue(t, due);
        else Post(() => _timers.Enqueue(t, due));
        return t;
    }

    /// <summary>Asks the loop to return from <see cref="Run"/> (thread-safe).</summary>
    public void Stop()
    {
        _stopping = true;
        EventFd.Signal(_wake);
    }

    /// <summary>Runs until <see cref="Stop"/>. Exceptions from callbacks end the loop and propagate.</summary>
    public void Run()
    {
        _thread = Thread.CurrentThread;
        var previous = SynchronizationContext.Current;
        SynchronizationContext.SetSynchronizationContext(Context);
        try
        {
            var entries = new List<PollEntry>();
            var active = new List<Watcher>();
            while (!_stopping)
            {
                RunPosted();
                RunDueTimers();
                if (_stopping) break;

                entries.Clear();
                active.Clear();
                entries.Add(new PollEntry(_wake, PollEvents.In));
                foreach (var w in _watchers)
                {
                    if (w.Disposed) continue;
                    var want = w.Wanted();
                    if (want == PollEvents.None || w.Fd.IsClosed) continue;
                    entries.Add(new PollEntry(w.Fd, want));
                    active.Add(w);
                }
                _watchers.RemoveAll(w => w.Disposed);
                if (!_posted.IsEmpty) continue;

                var span = System.Runtime.InteropServices.CollectionsMarshal.AsSpan(entries);
                Poller.PollMicroseconds(span, NextTimeoutUs());
                if (span[0].Readable) EventFd.Drain(_wake);
                for (int i = 1; i < span.Length; i++)
                {
                    var ready = span[i].Ready;
                    var w = active[i - 1];
                    if (ready != PollEvents.None && !w.Disposed) w.OnReady(ready);
                    if (_stopping) break;
                }
            }
        }
        finally
        {
            SynchronizationContext.SetSynchronizationContext(previous);
        }
    }

    private void RunPosted()
    {
        int n = _posted.Count; // actions posted while running wait for the next turn
        while (n-- > 0 && _posted.TryDequeue(out var a)) a();
    }

    private void RunDueTimers()
    {
        long now = Stopwatch.GetTimestamp();
        while (_timers.TryPeek(out var t, out long due) && due <= now)
        {
            _timers.Dequeue();
            if (!t.Cancelled) t.Action();
        }
    }

    private long NextTimeoutUs()
    {
        while (_timers.TryPeek(out var t, out long due))
        {
            if (t.Cancelled) { _timers.Dequeue(); continue; }
            long ticks = due - Stopwatch.GetTimestamp();
            if (ticks <= 0) return 0;
            return ticks * 1_000_000 / Stopwatch.Frequency + 1;
        }
        return -1;
    }

    public void Dispose() => _wake.Dispose();

    private sealed class Watcher(EventLoop loop, FdHandle fd, Func<PollEvents> wanted, Action<PollEvents> onReady) : IDisposable
    {
        public FdHandle Fd { get; } = fd;
        public Func<PollEvents> Wanted { get; } = wanted;
        public Action<PollEvents> OnReady { get; } = onReady;
        public bool Disposed { get; private set; }
        public void Dispose()
        {
            Disposed = true;
            _ = loop;
        }
    }

    private sealed class Timer(Action action) : IDisposable
    {
        public Action Action { get; } = action;
        public bool Cancelled { get; private set; }
        public void Dispose() => Cancelled = true;
    }

    private sealed class LoopSynchronizationContext(EventLoop loop) : SynchronizationContext
    {
        public override void Post(SendOrPostCallback d, object? state) => loop.Post(() => d(state));

        public override void Send(SendOrPostCallback d, object? state)
        {
            if (loop.IsLoopThread) { d(state); return; }
            using var done = new ManualResetEventSlim();
            Exception? error = null;
            loop.Post(() =>
            {
                try { d(state); }
                catch (Exception e) { error = e; }
                finally { done.Set(); }
            });
            done.Wait();
            if (error != null) throw error;
        }

        public override SynchronizationContext CreateCopy() => this;
    }
}
