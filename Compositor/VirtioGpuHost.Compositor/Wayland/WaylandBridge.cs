using VirtioGpuHost.Compositor.Core.Scene;
using VirtioGpuHost.Compositor.Wayland;
using VirtioGpuHost.Device.Wire;

namespace VirtioGpuHost.Compositor;

/// <summary>
/// Joins the built-in Wayland server to the scene: every mapped toplevel becomes a window surface
/// of its owner VM in <see cref="SurfaceStore"/> (key (vm, 0, window id)), and every composed frame
/// releases the clients' frame callbacks, so Wayland clients are paced by the output clock as
/// guest scanouts are by their flushes.
/// </summary>
public sealed class WaylandBridge : IDisposable
{
    private readonly WaylandServer _server;
    private readonly SurfaceStore _store;
    private readonly CompositorEngine _engine;

    public WaylandBridge(WaylandServer server, SurfaceStore store, CompositorEngine engine)
    {
        _server = server;
        _store = store;
        _engine = engine;
        _server.WindowChanged += OnWindowChanged;
        _server.WindowUnmapped += OnWindowUnmapped;
        _engine.FrameComposed += OnFrameComposed;
    }

    public static SurfaceKey KeyOf(WaylandWindow window) => new(window.Owner, 0, window.Id);

    private void OnWindowChanged(WaylandWindow w)
    {
        if (w.Width <= 0 || w.Height <= 0) return;
        var rect = new VirtioGpuRect(0, 0, (uint)w.Width, (uint)w.Height);
        // A commit since the last report is a frame; its damage (window coordinates) is repainted.
        long commits = w.Commits;
        VirtioGpuRect? damage = null;
        lock (_lastCommits)
        {
            if (!_lastCommits.TryGetValue(w.Id, out long seen) || seen != commits)
            {
                _lastCommits[w.Id] = commits;
                damage = w.LastDamage.IsEmpty ? rect : w.LastDamage;
            }
        }
        _store.WindowUpdated(KeyOf(w), w.Pixels, rect, VirtioGpuFormat.B8G8R8A8Unorm, damage, w.AppId, w.Title, w.Responsive);
    }

    private readonly Dictionary<long, long> _lastCommits = new();

    private void OnWindowUnmapped(WaylandWindow w)
    {
        lock (_lastCommits) _lastCommits.Remove(w.Id);
        _store.WindowGone(KeyOf(w));
    }

    private void OnFrameComposed(FrameReport report) => _server.FramePresented(report.At);

    public void Dispose()
    {
        _server.WindowChanged -= OnWindowChanged;
        _server.WindowUnmapped -= OnWindowUnmapped;
        _engine.FrameComposed -= OnFrameComposed;
    }
}
