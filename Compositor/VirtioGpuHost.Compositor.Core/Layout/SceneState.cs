using VirtioGpuHost.Compositor.Core.Scene;

namespace VirtioGpuHost.Compositor.Core.Layout;

/// <summary>Watchdog verdict for a VM.</summary>
public enum VmHealth
{
    /// <summary>Not connected, or connected but no frame yet.</summary>
    NoSignal,
    /// <summary>Frames arrive within the configured period.</summary>
    Live,
    /// <summary>No (changing) frame for longer than the configured period.</summary>
    Stale,
}

/// <summary>One scanout as the layout needs to know it: its size (0x0 when disabled).</summary>
public readonly record struct SurfaceInfo(int Width, int Height)
{
    public bool IsEnabled => Width > 0 && Height > 0;
}

/// <summary>The dynamic state the layout solver works from: VM health and scanout sizes.</summary>
public sealed record SceneState(
    IReadOnlyDictionary<string, VmHealth> Health,
    IReadOnlyDictionary<SurfaceKey, SurfaceInfo> Surfaces)
{
    public static SceneState Empty { get; } = new(new Dictionary<string, VmHealth>(), new Dictionary<SurfaceKey, SurfaceInfo>());

    public VmHealth HealthOf(string vm) => Health.TryGetValue(vm, out var h) ? h : VmHealth.NoSignal;

    public SurfaceInfo SurfaceOf(SurfaceKey key) => Surfaces.TryGetValue(key, out var s) ? s : default;
}
