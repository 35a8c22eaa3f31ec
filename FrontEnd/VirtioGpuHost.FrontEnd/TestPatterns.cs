namespace VirtioGpuHost.FrontEnd;

/// <summary>
/// The deterministic pictures of the qemu-guest-e2e recipe (fbbars.c / check-screen.py),
/// as native 0xAARRGGBB: the same pixels a real guest draws, so our front-end and a real
/// guest can be checked with the same expectations.
/// </summary>
public static class TestPatterns
{
    /// <summary>white, yellow, cyan, green, magenta, red, blue, black.</summary>
    public static readonly uint[] Bars = [0xffffff, 0xffff00, 0x00ffff, 0x00ff00, 0xff00ff, 0xff0000, 0x0000ff, 0x000000];

    public static uint BarsAt(uint x, uint y, uint width, uint head) => 0xFF000000 | Bars[(x * 8 / width + head) % 8];

    public static uint GradientAt(uint x, uint y, uint width, uint height, uint head)
    {
        uint r = width > 1 ? x * 255 / (width - 1) : 0;
        uint g = height > 1 ? y * 255 / (height - 1) : 0;
        uint b = (128 + 64 * head) & 255;
        return 0xFF000000 | r << 16 | g << 8 | b;
    }

    public static Func<uint, uint, uint> Get(string name, uint width, uint height, uint head) => name switch
    {
        "bars" => (x, y) => BarsAt(x, y, width, head),
        "gradient" => (x, y) => GradientAt(x, y, width, height, head),
        _ => throw new ArgumentException($"unknown pattern '{name}' (bars, gradient)"),
    };
}
