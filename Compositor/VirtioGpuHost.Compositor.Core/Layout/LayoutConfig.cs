using VirtioGpuHost.Compositor.Core.Geometry;
using VirtioGpuHost.Compositor.Core.Scene;

namespace VirtioGpuHost.Compositor.Core.Layout;

/// <summary>How trusted a VM's pixels are. Content of a lower class never covers a zone of a higher one.</summary>
public enum SafetyClass
{
    Untrusted = 0,
    Normal = 1,
    Critical = 2,
}

/// <summary>How a scanout fills its zone's content rectangle (all sampling is nearest-neighbour).</summary>
public enum ScaleMode
{
    /// <summary>Largest uniform scale that fits, centred (letterbox).</summary>
    Fit,
    /// <summary>Smallest uniform scale that covers, centred and cropped.</summary>
    Fill,
    /// <summary>Largest whole-number scale that fits (1 if even 1 does not fit: then cropped), centred.</summary>
    Integer,
    /// <summary>1:1, centred, cropped.</summary>
    None,
}

/// <summary>What a zone shows while its VM is stale or gone.</summary>
public enum FallbackKind
{
    /// <summary>The last frame, dimmed, with a "NO SIGNAL" label.</summary>
    Dim,
    /// <summary>A placeholder colour.</summary>
    Color,
    /// <summary>Another VM's scanout (of at least the zone's class).</summary>
    OtherVm,
}

public sealed record FallbackConfig(FallbackKind Kind, ColorBgra Color = default, string? Vm = null, int Scanout = 0);

/// <summary>
/// A host output (a screen). <see cref="Window"/> null: headless (frames in memory, PNG
/// snapshots); otherwise the output is also shown in a window (kiosk).
/// </summary>
public sealed record OutputConfig(string Name, int Width, int Height, int RefreshHz, ColorBgra Background, OutputWindowConfig? Window = null);

/// <summary>
/// An output shown in a window (<c>kind = "window"</c>): the compositor keeps the output's
/// size; the window scales the frame to fit (letterboxed, nearest-neighbour, 1:1 when the
/// window has the output's size). <see cref="Title"/> null: "virtio-gpu-host: NAME".
/// </summary>
public sealed record OutputWindowConfig(bool Fullscreen = false, string? Title = null, bool Resizable = true);

/// <summary>Which renderer draws the outputs (<c>[layout] renderer</c>, <c>--renderer</c>).</summary>
public enum RendererKind
{
    /// <summary>Vulkan, else OpenGL (EGL), else the CPU renderer.</summary>
    Auto,
    Vulkan,
    Gl,
    Cpu,
}

/// <summary>
/// A rectangle on an output. Zones stack by <see cref="Z"/> (higher on top). <see cref="Class"/>
/// protects it: content of a lower class is never drawn inside <see cref="Rect"/>, whatever its z.
/// The host keeps a label bar of <see cref="LayoutConfig.LabelHeight"/> at its top and a border
/// around it; guests draw only in what is left (<see cref="LayoutConfig.ContentRect"/>).
/// </summary>
public sealed record ZoneConfig(string Name, string Output, RectI Rect, int Z, SafetyClass Class);

/// <summary>A VM: its vhost-user socket, its trusted label, its class, its watchdog.</summary>
public sealed record VmConfig(
    string Name,
    string Socket,
    string Label,
    ColorBgra LabelColor,
    SafetyClass Class,
    TimeSpan FramePeriod,
    bool ContentMustChange,
    FallbackConfig Fallback,
    VmDeviceConfig? Device = null,
    VmWaylandConfig? Wayland = null,
    VmLimitsConfig? Limits = null)
{
    /// <summary>The VM's virtio-gpu device features (defaults when the config names none).</summary>
    public VmDeviceConfig DeviceOrDefault => Device ?? VmDeviceConfig.Default;
}

/// <summary>
/// What the VM's virtio-gpu device offers beyond 2D. <see cref="Blob"/>: RESOURCE_BLOB,
/// CONTEXT_INIT, RESOURCE_UUID and the cross-domain capset (QEMU's vhost-user-gpu-pci filters
/// them out, so they are harmless there). <see cref="HostVisibleMiB"/>: the host-visible shared
/// memory region blobs are mapped into (vhost-user SHMEM, a power of two; 0 = none).
/// <see cref="VirglCompat"/>: also offer the VIRGL bit, which Linux 6.x requires before it
/// allows HOST3D blobs and context init; no virgl command is implemented (they get errors).
/// </summary>
public sealed record VmDeviceConfig(bool Blob, int HostVisibleMiB, bool VirglCompat)
{
    public static VmDeviceConfig Default { get; } = new(true, 64, false);
}

/// <summary>
/// Per-VM quotas ([[vm]] keys <c>max_resources</c>, <c>max_host_memory_mib</c>,
/// <c>max_blob_mappings</c>, <c>max_contexts</c>, <c>max_wayland_clients</c>). A null field keeps the
/// device's (or the Wayland server's) default. Exceeding one gets the protocol's error
/// (virtio-gpu: ERR_OUT_OF_MEMORY); the VM and the host go on.
/// </summary>
public sealed record VmLimitsConfig(
    int? MaxResources = null,
    int? MaxHostMemoryMiB = null,
    int? MaxBlobMappings = null,
    int? MaxContexts = null,
    int? MaxWaylandClients = null)
{
    public const int MaxResourcesLimit = 1 << 20, MaxHostMemoryMiBLimit = 1 << 20, MaxBlobMappingsLimit = 1 << 16,
        MaxContextsLimit = 4096, MaxWaylandClientsLimit = 4096;
}

/// <summary>
/// The VM's Wayland clients. <see cref="Socket"/>: a socket of the built-in Wayland server whose
/// clients belong to this VM (its label, class and watchdog), null for none.
/// <see cref="CrossDomainTarget"/>: where the VM's cross-domain Wayland channels (capset 5) go:
/// null = the built-in server (the windows are this VM's), else an external compositor's socket
/// path (as crosvm's --wayland-sock: the windows are that compositor's business).
/// </summary>
public sealed record VmWaylandConfig(string? Socket, string? CrossDomainTarget);

/// <summary>
/// Which Wayland window a placement shows: the newest mapped toplevel of its VM whose app_id and
/// title match (null = any; '*' matches any run of characters, '?' one character).
/// </summary>
public sealed record WindowMatch(string? AppId, string? Title)
{
    public bool Matches(string? appId, string? title) =>
        (AppId is null || Glob(AppId, appId ?? "")) && (Title is null || Glob(Title, title ?? ""));

    public override string ToString() =>
        string.Join(", ", new[] { AppId is null ? null : $"app_id \"{AppId}\"", Title is null ? null : $"title \"{Title}\"" }.Where(s => s is not null));

    /// <summary>Glob match with '*' and '?' (iterative, linear in practice; no regex from config text).</summary>
    public static bool Glob(string pattern, string text)
    {
        int p = 0, t = 0, star = -1, mark = 0;
        while (t < text.Length)
        {
            if (p < pattern.Length && (pattern[p] == '?' || pattern[p] == text[t])) { p++; t++; }
            else if (p < pattern.Length && pattern[p] == '*') { star = p++; mark = t; }
            else if (star >= 0) { p = star + 1; t = ++mark; }
            else return false;
        }
        while (p < pattern.Length && pattern[p] == '*') p++;
        return p == pattern.Length;
    }
}

/// <summary>
/// A VM scanout shown in a zone. A zone shows its highest-priority active placement:
/// ordinary ones are always active; a <see cref="Preempts"/> placement (a warning, a rear
/// camera) is active only while its VM shows a live frame on that scanout, and the zone
/// returns to the preempted one when it ends.
/// With <see cref="Match"/>, the placement shows one of the VM's Wayland windows instead of a
/// scanout; <see cref="Window"/> is the window it resolved to for the current frame (0 = not
/// resolved, -1 = no window matches; see <see cref="WindowPlacements"/>).
/// </summary>
public sealed record PlacementConfig(string Vm, int Scanout, string Zone, ScaleMode Scale, int Priority, bool Preempts,
    WindowMatch? Match = null, long Window = 0)
{
    /// <summary>The surface this placement shows (for a window placement, as resolved).</summary>
    public SurfaceKey Surface => new(Vm, Scanout, Window);
}

/// <summary>A whole validated layout. Immutable: a reload builds a new one and swaps it in.</summary>
public sealed record LayoutConfig(
    IReadOnlyList<OutputConfig> Outputs,
    IReadOnlyList<ZoneConfig> Zones,
    IReadOnlyList<VmConfig> Vms,
    IReadOnlyList<PlacementConfig> Placements,
    int LabelHeight = 28,
    int BorderWidth = 2,
    RendererKind Renderer = RendererKind.Auto)
{
    /// <summary>Where guests may draw inside a zone: below the label bar, inside the border.</summary>
    public RectI ContentRect(ZoneConfig zone) =>
        zone.Rect.Inset(BorderWidth, LabelHeight + BorderWidth, BorderWidth, BorderWidth);

    /// <summary>The label bar at the top of a zone.</summary>
    public RectI LabelRect(ZoneConfig zone) => new(zone.Rect.X, zone.Rect.Y, zone.Rect.Width, Math.Min(LabelHeight, zone.Rect.Height));

    public VmConfig? Vm(string name) => Vms.FirstOrDefault(v => v.Name == name);
    public ZoneConfig? Zone(string name) => Zones.FirstOrDefault(z => z.Name == name);
    public OutputConfig? Output(string name) => Outputs.FirstOrDefault(o => o.Name == name);
}
