namespace VirtioGpuHost.Compositor.Rendering.Cpu;

/// <summary>What the last submitted pass on a target did (for tests, logs and benchmarks).</summary>
/// <param name="Calls">Draw calls recorded (calls that could not draw anything are not counted).</param>
/// <param name="CallsDrawn">Calls with at least one visible pixel after clipping and culling.</param>
/// <param name="PixelsDrawn">Target pixels written, summed over calls.</param>
/// <param name="PixelsCulled">Pixels inside damage and clip that later opaque calls hid, so were never drawn.</param>
/// <param name="Bands">Horizontal bands executed.</param>
/// <param name="Parallel">Whether the bands were shared among threads.</param>
public readonly record struct RenderStats(int Calls, int CallsDrawn, long PixelsDrawn, long PixelsCulled, int Bands, bool Parallel);
