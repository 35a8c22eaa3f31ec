namespace VirtioGpuHost.Compositor.Rendering;

/// <summary>
/// The renderer can no longer draw: its device or context is gone (VK_ERROR_DEVICE_LOST, a
/// lost EGL context, a GPU reset). Every target and texture it made is unusable. The
/// compositor engine catches it during a frame, moves to the next renderer of its chain
/// (eventually the CPU renderer), recreates targets and textures there and repaints.
/// </summary>
public class RendererLostException : Exception
{
    public RendererLostException()
        : base("the renderer's device or context was lost")
    {
    }

    public RendererLostException(string message)
        : base(message)
    {
    }

    public RendererLostException(string message, Exception? innerException)
        : base(message, innerException)
    {
    }
}
