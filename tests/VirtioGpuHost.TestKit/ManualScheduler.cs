using VirtioGpuHost.Device.Queues;

namespace VirtioGpuHost.TestKit;

/// <summary>A scheduler for in-process tests: posted actions and timers run only when the test says so.</summary>
public sealed class ManualScheduler : IGpuScheduler
{
    private readonly Queue<Action> _posted = new();
    private readonly List<(TimeSpan Due, Action Action, Timer Handle)> _timers = new();
    private readonly object _lock = new();

    public TimeSpan Now { get; private set; }

    public void Post(Action action)
    {
        lock (_lock) _posted.Enqueue(action);
    }

    public IDisposable Schedule(TimeSpan delay, Action action)
    {
        var t = new Timer();
        lock (_lock) _timers.Add((Now + delay, action, t));
        return t;
    }

    /// <summary>Runs posted actions (and what they post) until none is left; returns how many ran.</summary>
    public int RunPending()
    {
        int n = 0;
        while (true)
        {
            Action? a;
            lock (_lock) if (!_posted.TryDequeue(out a)) return n;
            a();
            n++;
        }
    }

    /// <summary>Moves virtual time forward, firing due timers, then runs posted actions.</summary>
    public void Advance(TimeSpan by)
    {
        Now += by;
        List<(TimeSpan Due, Action Action, Timer Handle)> due;
        lock (_lock)
        {
            due = _timers.Where(t => t.Due <= Now).ToList();
            _timers.RemoveAll(t => t.Due <= Now);
        }
        foreach (var t in due) if (!t.Handle.Cancelled) t.Action();
        RunPending();
    }

    private sealed class Timer : IDisposable
    {
        public bool Cancelled { get; private set; }
        public void Dispose() => Cancelled = true;
    }
}
