using VirtioGpuHost.Compositor.Rendering;

namespace VirtioGpuHost.Compositor.Outputs;

/// <summary>
/// An output that can move its render target to another renderer in place (after the
/// renderer lost its device), keeping what it is (a window stays open, a headless output
/// keeps its last frame and its subscribers). The compositor repaints it whole afterwards.
/// Outputs without it are disposed and made again on the new renderer.
/// </summary>
public interface IRetargetableOutput
{
    /// <summary>Makes a new <see cref="IOutput.Target"/> on <paramref name="renderer"/> and drops the old one (which may throw nothing).</summary>
    void Retarget(IRenderer renderer);
}

/// <summary>An output that also keeps its presented frames in memory, as a headless output does (a window).</summary>
public interface IMirroredOutput
{
    HeadlessOutput Frames { get; }
}

public static class OutputFrames
{
    /// <summary>The in-memory frames of <paramref name="output"/> (snapshots, PNGs, viewers); null when it keeps none.</summary>
    public static HeadlessOutput? Of(IOutput output) => output as HeadlessOutput ?? (output as IMirroredOutput)?.Frames;
}
