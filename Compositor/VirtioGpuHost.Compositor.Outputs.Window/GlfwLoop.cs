using System.Collections.Concurrent;
using VirtioGpuHost.Compositor.Outputs.Window.Native;

namespace VirtioGpuHost.Compositor.Outputs.Window;

/// <summary>
/// The one thread that talks to GLFW (its state is per process and not thread-safe): it
/// initializes GLFW, creates and destroys the windows, processes their events and draws them.
/// Started by the first window and stopped (glfwTerminate) with the last one, so a later window
/// may open on another X display. The compositor's frame thread only copies frames into a
/// window's staging buffer and wakes this thread; it never waits for the X server.
/// </summary>
internal sealed class GlfwLoop
{
    private static readonly object s_gate = new();
    private static GlfwLoop? s_current;

    private readonly ConcurrentQueue<Action> _jobs = new();
    private readonly List<WindowOutput> _windows = new();
    private readonly Thread _thread;
    private readonly ManualResetEventSlim _started = new();
    private volatile bool _stop;
    private volatile bool _running;
    private string? _initError;
    private int _refs;

    private GlfwLoop(string? display)
    {
        Display = display;
        _thread = new Thread(() => Run(display)) { IsBackground = true, Name = "window output (glfw)" };
    }

    /// <summary>The X display asked for (null: the process's DISPLAY).</summary>
    public string? Display { get; }

    /// <summary>
    /// The running loop (started on first use) for a window on <paramref name="display"/>;
    /// null with the reason when GLFW cannot start (no X display, no libglfw.so.3) or another
    /// display is in use by open windows.
    /// </summary>
    public static GlfwLoop? Acquire(string? display, out string? error)
    {
        lock (s_gate)
        {
            if (s_current is { } running)
            {
                if (running.Display != display)
                {
                    error = $"the window output already uses display {running.Display ?? "$DISPLAY"}; one process shows its windows on one X display";
                    return null;
                }
                running._refs++;
                error = null;
                return running;
            }
            var loop = new GlfwLoop(display);
            loop._thread.Start();
            loop._started.Wait();
            if (loop._initError is { } e)
            {
                loop._thread.Join();
                error = e;
                return null;
            }
            loop._refs = 1;
            s_current = loop;
            error = null;
            return loop;
        }
    }

    /// <summary>One window fewer; the last one stops the thread and terminates GLFW.</summary>
    public void Release()
    {
        lock (s_gate)
        {
            if (--_refs > 0) return;
            s_current = null;
            _stop = true;
            Wake();
            if (Thread.CurrentThread != _thread) _thread.Join(TimeSpan.FromSeconds(10));
        }
    }

    /// <summary>Runs <paramref name="job"/> on the loop thread and waits for it.</summary>
    public T Invoke<T>(Func<T> job)
    {
        if (Thread.CurrentThread == _thread) return job();
        var done = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        _jobs.Enqueue(() =>
        {
            try
            {
                done.SetResult(job());
            }
            catch (Exception e)
            {
                done.SetException(e);
            }
        });
        Wake();
        return done.Task.GetAwaiter().GetResult();
    }

    public void Invoke(Action job) => Invoke(() =>
    {
        job();
        return 0;
    });

    /// <summary>Wakes the loop out of its event wait (any thread).</summary>
    public void Wake()
    {
        if (_running) GlfwNative.PostEmptyEvent();
    }

    public void Add(WindowOutput window) => _windows.Add(window);

    public void Remove(WindowOutput window) => _windows.Remove(window);

    private void Run(string? display)
    {
        try
        {
            if (!GlfwNative.Init(display, out var error))
            {
                _initError = $"cannot open a window on X display {display ?? Environment.GetEnvironmentVariable("DISPLAY") ?? "(DISPLAY not set)"}: {error}";
                return;
            }
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            _initError = $"libglfw.so.3 cannot be loaded (Debian package libglfw3): {e.Message}";
            return;
        }
        finally
        {
            _running = _initError is null;
            _started.Set();
        }
        GlfwNative.RefreshRequested = w =>
        {
            foreach (var window in _windows) window.OnRefreshRequested(w);
        };
        try
        {
            while (true)
            {
                while (_jobs.TryDequeue(out var job)) job();
                if (_stop && _jobs.IsEmpty) break;
                foreach (var window in _windows.ToList()) window.Service();
                bool busy = _windows.Any(w => w.HasWork);
                if (busy) GlfwNative.PollEvents(); else GlfwNative.WaitEventsTimeout(0.1);
            }
        }
        finally
        {
            _running = false;
            foreach (var window in _windows.ToList()) window.CloseOnLoop("the window output stopped");
            GlfwNative.RefreshRequested = null;
            GlfwNative.Terminate();
        }
    }
}
