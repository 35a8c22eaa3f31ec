using VirtioGpuHost.Fuzz;
using VirtioGpuHost.Fuzz.InProcess;
using VirtioGpuHost.Fuzz.Targets;

namespace VirtioGpuHost.Fuzz.Tests;

/// <summary>Every committed input (seed corpus and regressions found by fuzzing) runs cleanly.</summary>
public sealed class FuzzReplayTests
{
    public static TheoryData<string, string> Inputs()
    {
        var data = new TheoryData<string, string>();
        foreach (var t in FuzzTargets.All)
            foreach (var f in InProcessRunner.CorpusFiles(t.Name))
                data.Add(t.Name, Path.GetRelativePath(RepoRoot.FuzzProject, f));
        return data;
    }

    [Theory]
    [MemberData(nameof(Inputs))]
    public void Input_runs_without_a_finding(string target, string file)
    {
        var t = FuzzTargets.Find(target);
        var bytes = File.ReadAllBytes(Path.Combine(RepoRoot.FuzzProject, file));
        t.Run(bytes.AsSpan(0, Math.Min(bytes.Length, t.MaxInputLength)));
    }

    [Fact]
    public void Every_target_has_a_seed_corpus()
    {
        foreach (var t in FuzzTargets.All)
            Assert.True(InProcessRunner.CorpusFiles(t.Name).Count > 0, $"no corpus for {t.Name}: run `VirtioGpuHost.Fuzz write-seeds`");
    }

    /// <summary>The committed seeds are what the generator writes now (the wire structs did not drift).</summary>
    [Fact]
    public void Committed_seeds_match_the_generator()
    {
        foreach (var t in FuzzTargets.All)
            foreach (var (name, data) in t.Seeds())
            {
                var path = Path.Combine(RepoRoot.FuzzProject, "corpus", t.Name, name);
                Assert.True(File.Exists(path), $"{path} is missing: run `VirtioGpuHost.Fuzz write-seeds`");
                Assert.True(data.AsSpan().SequenceEqual(File.ReadAllBytes(path)), $"{path} differs from the generator: run `VirtioGpuHost.Fuzz write-seeds`");
            }
    }

    /// <summary>The harness itself can fail: a broken invariant escapes Run (so a green replay means something).</summary>
    [Fact]
    public void A_broken_invariant_is_reported()
    {
        var e = Record.Exception(() => new ThrowingTarget().Run([1]));
        Assert.IsType<FuzzInvariantException>(e);
        var result = InProcessRunner.Run(new ThrowingTarget(), [[0], [1]], maxExecutions: 10, maxTime: TimeSpan.FromSeconds(10), seed: 1, warmup: 0);
        Assert.NotEmpty(result.Crashes);
    }

    private sealed class ThrowingTarget : IFuzzTarget
    {
        public string Name => "throwing";
        public string Description => "throws on a 1";
        public int MaxInputLength => 16;
        public void Run(ReadOnlySpan<byte> input)
        {
            if (input.Length > 0 && input[0] == 1) throw new FuzzInvariantException("a 1");
        }
        public IEnumerable<(string Name, byte[] Data)> Seeds() => [];
    }
}

/// <summary>The seeds are not just accepted but reach the code they are for.</summary>
public sealed class FuzzSeedDepthTests
{
    [Fact]
    public void Chain_walker_seeds_pop_their_chains()
    {
        var t = new ChainWalkerTarget();
        foreach (var (name, data) in t.Seeds())
        {
            long before = ChainWalkerTarget.ChainsCompleted;
            t.Run(data);
            Assert.True(ChainWalkerTarget.ChainsCompleted - before == 2, $"seed {name} completed {ChainWalkerTarget.ChainsCompleted - before} chains, expected 2");
        }
    }
}
