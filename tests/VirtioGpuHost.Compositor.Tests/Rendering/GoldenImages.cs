using VirtioGpuHost.Compositor.Core.Geometry;
using VirtioGpuHost.Compositor.Rendering;
using VirtioGpuHost.Compositor.Rendering.Png;

namespace VirtioGpuHost.Compositor.Tests.Rendering;

/// <summary>
/// Pixel-exact comparison with golden PNGs. On a mismatch the actual image and a diff image
/// (differing pixels red, by how much they differ; matching ones faded) are written to the
/// failure folder and the failure says where. UPDATE_GOLDENS=1 rewrites the goldens instead.
/// </summary>
internal sealed class GoldenImages(string goldenDirectory, string failureDirectory, bool update)
{
    /// <summary>tests/VirtioGpuHost.Compositor.Tests/Golden, failures in artifacts/golden-failures (GOLDEN_FAILURES_DIR overrides).</summary>
    public static GoldenImages Default { get; } = new(
        Path.Combine(RenderTestKit.RepoRoot, "tests", "VirtioGpuHost.Compositor.Tests", "Golden"),
        Environment.GetEnvironmentVariable("GOLDEN_FAILURES_DIR") is { Length: > 0 } d ? d : Path.Combine(RenderTestKit.RepoRoot, "artifacts", "golden-failures"),
        Environment.GetEnvironmentVariable("UPDATE_GOLDENS") == "1");

    public void AssertMatches(string name, IRenderTarget target) => AssertMatches(name, RenderTestKit.Read(target), target.Size);

    /// <summary>
    /// Compares with the golden; <paramref name="tolerance"/>: the largest difference allowed per
    /// channel (0: exact); <paramref name="variant"/> (a renderer's name) is added to the names
    /// of failure images and never updates the golden.
    /// </summary>
    public void AssertMatches(string name, uint[] actual, SizeI size, int tolerance = 0, string? variant = null)
    {
        string golden = Path.Combine(goldenDirectory, name + ".png");
        if (update && variant is null)
        {
            RenderTargetPng.Save(actual, size, golden);
            return;
        }
        if (!File.Exists(golden))
            Assert.Fail($"golden image {golden} is missing; run the tests with UPDATE_GOLDENS=1 to create it");
        var expected = RenderTargetPng.Load(golden);
        int differing = 0;
        (int X, int Y, uint Expected, uint Actual)? first = null;
        if (expected.Size == size)
            for (int i = 0; i < actual.Length; i++)
                if (actual[i] != expected.Pixels[i] && MaxChannelDifference(actual[i], expected.Pixels[i]) > tolerance)
                {
                    differing++;
                    first ??= (i % size.Width, i / size.Width, expected.Pixels[i], actual[i]);
                }
        if (expected.Size == size && differing == 0) return;

        string failureName = variant is null ? name : $"{name}.{variant}";
        string actualPath = Path.Combine(failureDirectory, failureName + ".actual.png");
        string diffPath = Path.Combine(failureDirectory, failureName + ".diff.png");
        RenderTargetPng.Save(actual, size, actualPath);
        if (expected.Size == size) RenderTargetPng.Save(Diff(expected.Pixels, actual), size, diffPath);
        Assert.Fail(expected.Size != size
            ? $"{name}: size {size} differs from the golden's {expected.Size}; actual image: {actualPath} (UPDATE_GOLDENS=1 accepts it)"
            : $"{failureName}: {differing} of {actual.Length} pixels differ by more than {tolerance}/255 from {golden}, first at ({first!.Value.X}, {first.Value.Y}): " +
              $"expected {first.Value.Expected:X8}, actual {first.Value.Actual:X8}; actual image: {actualPath}, diff: {diffPath} (UPDATE_GOLDENS=1 accepts it)");
    }

    private static int MaxChannelDifference(uint a, uint b)
    {
        int max = 0;
        for (int shift = 0; shift < 32; shift += 8)
            max = Math.Max(max, Math.Abs((int)((a >> shift) & 0xFF) - (int)((b >> shift) & 0xFF)));
        return max;
    }

    private static uint[] Diff(uint[] expected, uint[] actual)
    {
        var diff = new uint[actual.Length];
        for (int i = 0; i < diff.Length; i++)
        {
            uint e = expected[i], a = actual[i];
            int max = 0;
            for (int shift = 0; shift < 32; shift += 8)
                max = Math.Max(max, Math.Abs((int)((e >> shift) & 0xFF) - (int)((a >> shift) & 0xFF)));
            if (max == 0)
            {
                uint grey = (((e >> 16) & 0xFF) + ((e >> 8) & 0xFF) + (e & 0xFF)) / 12 + 32;
                diff[i] = 0xFF000000u | grey << 16 | grey << 8 | grey;
            }
            else
            {
                diff[i] = 0xFF000000u | (uint)Math.Min(255, 128 + max * 4) << 16;
            }
        }
        return diff;
    }
}
