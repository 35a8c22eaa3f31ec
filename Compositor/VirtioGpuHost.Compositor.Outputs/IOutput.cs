using VirtioGpuHost.Compositor.Core.Geometry;
using VirtioGpuHost.Compositor.Rendering;

namespace VirtioGpuHost.Compositor.Outputs;

/// <summary>A host output: the compositor renders into <see cref="Target"/> and then presents.</summary>
public interface IOutput : IDisposable
{
    string Name { get; }
    SizeI Size { get; }
    int RefreshHz { get; }
    IRenderTarget Target { get; }

    /// <summary>The frame in <see cref="Target"/> is complete; <paramref name="damage"/> changed since the last one.</summary>
    void Present(long frame, Region damage);

    /// <summary>Frames presented so far.</summary>
    long FramesPresented { get; }
}
