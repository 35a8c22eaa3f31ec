using System.Text.Json;
using System.Text.Json.Serialization;

namespace VirtioGpuHost.Compositor.Control;

// The control API's JSON documents (camelCase). `virtio-gpu-host ctl` deserializes the same
// records, so the server and the client never drift apart. Reference: docs/control.md.

/// <summary>One VM: its configuration, connection, watchdog, rates and device counters.</summary>
public sealed record VmDto(
    string Name,
    string Label,
    string Class,
    string Socket,
    bool Connected,
    string Health,
    bool Stale,
    double Fps,
    double LatencyMs,
    long Frames,
    long Commands,
    long GuestErrors,
    int Resources,
    ulong HostMemoryBytes,
    ulong BytesCopied,
    double BytesCopiedPerFrame,
    int MappedBlobs,
    int Connections,
    IReadOnlyList<double> FpsHistory,
    IReadOnlyList<double> LatencyHistory);

/// <summary>One guest scanout as the compositor last heard of it.</summary>
public sealed record SurfaceDto(string Vm, int Scanout, bool Enabled, int Width, int Height, string Format, long Frames, double LastFrameAgoMs, IReadOnlyList<string> Zones);

/// <summary>A rectangle [x, y, width, height] on an output.</summary>
public sealed record RectDto(int X, int Y, int Width, int Height);

/// <summary>One zone: its configuration and what the last frame showed in it.</summary>
public sealed record ZoneDto(
    string Name,
    string Output,
    RectDto Rect,
    RectDto Content,
    int Z,
    string Class,
    bool Shown,
    string? Vm,
    int? Scanout,
    bool Preempting,
    string Health,
    bool Fallback,
    string? Label,
    string? ShowingSurface,
    PreemptionDto? Preemption);

public sealed record OutputDto(string Name, int Width, int Height, int RefreshHz, long FramesPresented, bool Capturable);

public sealed record PlacementDto(string Vm, int Scanout, string Zone, string Scale, int Priority, bool Preempts, bool FromApi);

public sealed record LayoutVmDto(string Name, string Socket, string Label, string LabelColor, string Class, int FramePeriodMs, bool ContentMustChange, string Fallback);

/// <summary>The active layout (the file's or the API's, plus the API's preemptions).</summary>
public sealed record LayoutDto(
    int LabelHeight,
    int BorderWidth,
    IReadOnlyList<OutputDto> Outputs,
    IReadOnlyList<ZoneDto> Zones,
    IReadOnlyList<LayoutVmDto> Vms,
    IReadOnlyList<PlacementDto> Placements,
    IReadOnlyList<PreemptionDto> Preemptions,
    string Source);

/// <summary>A runtime preemption: <see cref="Vm"/>'s scanout takes <see cref="Zone"/> while it is live.</summary>
public sealed record PreemptionDto(string Zone, string Vm, int Scanout, int Priority, bool Active);

/// <summary>A finding of the layout loader (the same text `serve --check` prints).</summary>
public sealed record DiagnosticDto(string Severity, int Line, string Subject, string Field, string Message, string Text);

/// <summary>The answer to a layout apply or validate.</summary>
public sealed record LayoutResultDto(bool Ok, bool Applied, IReadOnlyList<DiagnosticDto> Diagnostics, string? Summary);

/// <summary>Every error: a status and a message that says what was wrong.</summary>
public sealed record ErrorDto(int Status, string Error, IReadOnlyList<DiagnosticDto>? Diagnostics = null);

/// <summary>The compositor as a whole.</summary>
public sealed record StatusDto(long Frames, double Fps, double AvgComposeMs, long SafetyFailures, double UptimeSeconds, int ViewerClients, string Listen);

/// <summary>A preempt request: POST /api/zones/{zone}/preempt.</summary>
public sealed record PreemptRequest(string? Vm, int? Scanout);

public static class ControlJson
{
    public static JsonSerializerOptions Options { get; } = new(JsonSerializerDefaults.Web)
    {
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
    };
}
