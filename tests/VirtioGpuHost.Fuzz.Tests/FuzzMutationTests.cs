using VirtioGpuHost.Fuzz.InProcess;
using VirtioGpuHost.Fuzz.Targets;

namespace VirtioGpuHost.Fuzz.Tests;

/// <summary>
/// A bounded, deterministic in-process mutation run per target (the mode that needs no AFL):
/// no crash, no hang, and no fd or mapping left behind. The execution counts are fixed (not a
/// time budget) so the test does the same work on every machine; FUZZ_EXECS_SCALE multiplies them.
/// </summary>
public sealed class FuzzMutationTests(ITestOutputHelper output)
{
    /// <summary>Executions per target (vhost-user, display-socket, wayland and cross-domain runs cost sockets and a thread each).</summary>
    public static TheoryData<string, int> Budgets() => new()
    {
        { "vhost-user", 5000 },
        { "chain-walker", 50000 },
        { "device", 10000 },
        { "display-socket", 10000 },
        { "layout", 10000 },
        { "wayland", 5000 },
        { "cross-domain", 3000 },
    };

    /// <summary>Fds that may appear during a run without being a leak (thread-pool and runtime growth).</summary>
    private const int FdSlack = 4;

    /// <summary>Mappings that may appear without being a leak (GC heap and thread stacks grow in steps).</summary>
    private const int MappingSlack = 64;

    [Theory]
    [MemberData(nameof(Budgets))]
    public void Mutated_inputs_find_nothing(string target, int execs)
    {
        if (int.TryParse(Environment.GetEnvironmentVariable("FUZZ_EXECS_SCALE"), out int scale) && scale > 0) execs *= scale;
        var t = FuzzTargets.Find(target);
        var corpus = InProcessRunner.CorpusFiles(t.Name).Select(File.ReadAllBytes).ToList();
        var result = InProcessRunner.Run(t, corpus, execs, TimeSpan.FromMinutes(10), seed: 20251101);
        output.WriteLine(result.ToString());
        foreach (var (input, error) in result.Crashes.Take(3))
            output.WriteLine($"crash input ({input.Length} bytes) {Convert.ToHexString(input.AsSpan(0, Math.Min(input.Length, 256)))}: {error}");
        Assert.True(result.Crashes.Count == 0, $"{result}; first: {result.Crashes.FirstOrDefault().Error}");
        Assert.True(result.Hangs.Count == 0, result.ToString());
        Assert.True(result.FdGrowth <= FdSlack, $"fd leak: {result}");
        Assert.True(result.MappingGrowth <= MappingSlack, $"mapping leak: {result}");
        Assert.Equal(execs, result.Executions);
    }
}
