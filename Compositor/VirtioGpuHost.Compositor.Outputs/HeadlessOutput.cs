using VirtioGpuHost.Compositor.Core.Geometry;
using VirtioGpuHost.Compositor.Rendering;

namespace VirtioGpuHost.Compositor.Outputs;

/// <summary>
/// An output without a screen: frames stay in memory; a snapshot (pixels or PNG) can be taken
/// at any time and always shows one whole presented frame, never one being rendered.
/// </summary>
public sealed class HeadlessOutput : IOutput, IRetargetableOutput
{
    private readonly object _lock = new();
    private uint[] _presented;
    private uint[] _readBuffer = [];

    public HeadlessOutput(IRenderer renderer, string name, SizeI size, int refreshHz)
    {
        Name = name;
        Size = size;
        RefreshHz = refreshHz;
        Target = renderer.CreateTarget(size);
        _presented = new uint[size.Width * size.Height];
    }

    public string Name { get; }
    public SizeI Size { get; }
    public int RefreshHz { get; }
    public IRenderTarget Target { get; private set; }
    public long FramesPresented { get; private set; }

    /// <summary>Raised after each present (on the compositor's thread).</summary>
    public event Action<HeadlessOutput, long>? Presented;

    public void Present(long frame, Region damage)
    {
        lock (_lock)
        {
            // Only what changed is copied out of the render target.
            foreach (var r in damage.Rects)
            {
                var clipped = r.Intersect(Size.ToRect());
                if (clipped.IsEmpty) continue;
                // One buffer kept for the damage reads: a new array per rect per frame would be a
                // large-object allocation at 60 Hz, and those trigger blocking gen2 collections that
                // stall every thread, the frame thread included (bench fairness found them).
                int n = clipped.Width * clipped.Height;
                if (_readBuffer.Length < n) _readBuffer = new uint[n];
                var tmp = _readBuffer.AsSpan(0, n);
                Target.ReadPixels(clipped, tmp);
                for (int y = 0; y < clipped.Height; y++)
                    tmp.Slice(y * clipped.Width, clipped.Width).CopyTo(_presented.AsSpan((clipped.Y + y) * Size.Width + clipped.X, clipped.Width));
            }
            FramesPresented++;
        }
        Presented?.Invoke(this, frame);
    }

    /// <summary>A copy of the last presented frame (0xAARRGGBB, row by row).</summary>
    public uint[] Snapshot()
    {
        lock (_lock) return (uint[])_presented.Clone();
    }

    /// <summary>
    /// The last presented frame as a PNG file, replaced atomically (a viewer polling the file
    /// never reads half of one).
    /// </summary>
    public void SavePng(string path)
    {
        var pixels = Snapshot();
        string tmp = path + ".tmp";
        PngFile.Write(tmp, Size, pixels);
        File.Move(tmp, path, overwrite: true);
    }

    /// <summary>A new target on <paramref name="renderer"/> (its device was lost); the last presented frame stays until the next one.</summary>
    public void Retarget(IRenderer renderer)
    {
        var target = renderer.CreateTarget(Size);
        IRenderTarget old;
        lock (_lock)
        {
            old = Target;
            Target = target;
        }
        try
        {
            old.Dispose();
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // The old renderer's device is gone; releasing its target may fail, and no longer matters.
        }
    }

    public void Dispose() => Target.Dispose();
}
