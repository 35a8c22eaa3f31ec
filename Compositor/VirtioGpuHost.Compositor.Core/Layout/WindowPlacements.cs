using VirtioGpuHost.Compositor.Core.Scene;

namespace VirtioGpuHost.Compositor.Core.Layout;

/// <summary>A mapped Wayland window as placements match it.</summary>
public readonly record struct WindowInfo(SurfaceKey Key, string? AppId, string? Title);

/// <summary>
/// Resolves window placements (<see cref="PlacementConfig.Match"/>) to concrete windows for one
/// frame: each shows the newest mapped window of its own VM that matches (window ids grow, so
/// newest = highest id), or nothing (Window = -1, a surface that is never enabled, so the zone
/// shows its VM's fallback). A window can only ever be placed by a placement of the VM that owns
/// it: a client cannot choose its zone, and never one of a higher class than its VM's.
/// </summary>
public static class WindowPlacements
{
    public const long NoWindow = -1;

    /// <summary>Whether <paramref name="layout"/> has a window placement (no allocation: called every frame).</summary>
    public static bool Any(LayoutConfig layout)
    {
        for (int i = 0; i < layout.Placements.Count; i++)
            if (layout.Placements[i].Match is not null) return true;
        return false;
    }

    /// <summary>
    /// <paramref name="layout"/> with every window placement resolved against
    /// <paramref name="windows"/>; <paramref name="layout"/> itself when it has none, or when
    /// <paramref name="previous"/> (the last result) already resolved the same way.
    /// </summary>
    public static LayoutConfig Resolve(LayoutConfig layout, IReadOnlyCollection<WindowInfo> windows, LayoutConfig? previous = null)
    {
        if (!Any(layout)) return layout;
        var placements = new PlacementConfig[layout.Placements.Count];
        for (int i = 0; i < placements.Length; i++)
        {
            var p = layout.Placements[i];
            if (p.Match is null) { placements[i] = p; continue; }
            long best = NoWindow;
            foreach (var w in windows)
                if (w.Key.IsWindow && w.Key.Vm == p.Vm && w.Key.Window > best && p.Match.Matches(w.AppId, w.Title)) best = w.Key.Window;
            placements[i] = p with { Window = best };
        }
        // The same base layout resolved the same way: keep the object (plans compare cheaply).
        if (previous is not null && previous with { Placements = layout.Placements } == layout && previous.Placements.SequenceEqual(placements))
            return previous;
        return layout with { Placements = placements };
    }
}
