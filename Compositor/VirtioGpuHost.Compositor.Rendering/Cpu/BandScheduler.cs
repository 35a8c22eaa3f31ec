using System.Runtime.ExceptionServices;

namespace VirtioGpuHost.Compositor.Rendering.Cpu;

/// <summary>Work split into numbered bands that may run on any thread, in any order.</summary>
internal interface IBandWork
{
    void RunBand(int band);
}

/// <summary>
/// A few dedicated worker threads that share a frame's bands with the calling thread: each
/// takes the next band number until none are left. The caller never waits for a worker that
/// has not started a band (a worker woken late, or kept off its core by another process, just
/// finds nothing left), only for bands in progress. One frame at a time: a caller that finds
/// the workers busy runs its frame alone. No allocation per frame.
/// </summary>
internal sealed class BandScheduler : IDisposable
{
    private const int Closed = int.MaxValue / 2;

    private readonly Thread[] _workers;
    private readonly SemaphoreSlim _wake = new(0);
    private readonly Lock _gate = new();
    private IBandWork? _work;
    private int _next = Closed, _count, _inFlight;
    private Exception? _error;
    private volatile bool _stopping;

    public BandScheduler(int workers)
    {
        _workers = new Thread[workers];
        for (int i = 0; i < workers; i++)
        {
            _workers[i] = new Thread(WorkerLoop) { IsBackground = true, Name = $"cpu-render-{i + 1}" };
            _workers[i].Start();
        }
    }

    /// <summary>Runs bands [0, <paramref name="bandCount"/>) on all threads; false (nothing run) when another frame holds the workers.</summary>
    public bool TryRun(IBandWork work, int bandCount)
    {
        if (!_gate.TryEnter()) return false;
        try
        {
            _error = null;
            _work = work;
            _count = bandCount;
            Volatile.Write(ref _next, 0); // opens the job (after work and count are visible)
            _wake.Release(_workers.Length);
            Drain();
            // Every band is taken; wait only for those still running on a worker.
            var spin = new SpinWait();
            while (Volatile.Read(ref _inFlight) != 0) spin.SpinOnce(sleep1Threshold: -1);
            // Closed before the next job changes the count, so a late increment never lands in it.
            Volatile.Write(ref _next, Closed);
            _work = null;
            if (_error is { } e) ExceptionDispatchInfo.Throw(e);
            return true;
        }
        finally
        {
            _gate.Exit();
        }
    }

    /// <summary>Takes and runs bands until none are left. A late worker finds the job closed and takes nothing.</summary>
    private void Drain()
    {
        while (true)
        {
            Interlocked.Increment(ref _inFlight);
            int band = Interlocked.Increment(ref _next) - 1;
            if (band >= _count)
            {
                Interlocked.Decrement(ref _inFlight);
                return;
            }
            try
            {
                Volatile.Read(ref _work)!.RunBand(band);
            }
            catch (Exception e)
            {
                Interlocked.CompareExchange(ref _error, e, null);
                Volatile.Write(ref _next, Closed);
            }
            finally
            {
                Interlocked.Decrement(ref _inFlight);
            }
        }
    }

    private void WorkerLoop()
    {
        while (true)
        {
            _wake.Wait();
            if (_stopping) return;
            Drain();
        }
    }

    public void Dispose()
    {
        lock (_gate)
        {
            _stopping = true;
            _wake.Release(_workers.Length);
        }
        foreach (var t in _workers) t.Join();
        _wake.Dispose();
    }
}
