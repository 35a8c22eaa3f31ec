using System.Diagnostics;
using VirtioGpuHost.Fuzz.Targets;

namespace VirtioGpuHost.Fuzz.InProcess;

/// <summary>What one in-process run found.</summary>
public sealed record InProcessResult(string Target, long Executions, TimeSpan Elapsed, IReadOnlyList<(byte[] Input, Exception Error)> Crashes,
    IReadOnlyList<byte[]> Hangs, ResourceCount Before, ResourceCount After, TimeSpan SlowestInput)
{
    /// <summary>fds the runs left open beyond the baseline (leaks).</summary>
    public int FdGrowth => After.Fds - Before.Fds;
    public int MappingGrowth => After.Mappings - Before.Mappings;

    public override string ToString() =>
        $"{Target}: {Executions} execs in {Elapsed.TotalSeconds:F1} s, {Crashes.Count} crashes, {Hangs.Count} hangs, " +
        $"fds {Before.Fds}->{After.Fds}, mappings {Before.Mappings}->{After.Mappings}, slowest input {SlowestInput.TotalMilliseconds:F0} ms";
}

/// <summary>
/// The in-process mode (no AFL): mutates corpus entries with <see cref="Mutator"/> and runs them
/// through a target for a bounded number of executions or time, records every exception as a
/// crash (and the input that caused it), and counts fds and mappings around the whole run (after
/// a warm-up that lets the runtime settle) to catch leaks.
/// </summary>
public static class InProcessRunner
{
    /// <summary>Inputs that take longer than this are counted as hangs (they still ran to the end).</summary>
    public static TimeSpan HangThreshold { get; set; } = TimeSpan.FromSeconds(2);

    public static InProcessResult Run(IFuzzTarget target, IReadOnlyList<byte[]> corpus, long maxExecutions, TimeSpan maxTime, int seed, int warmup = 50)
    {
        if (corpus.Count == 0) corpus = [[]];
        var mutator = new Mutator(seed);
        var crashes = new List<(byte[], Exception)>();
        var hangs = new List<byte[]>();
        var slowest = TimeSpan.Zero;

        // Warm-up: every corpus entry once, then a few mutations (JIT, thread pool, lazy statics).
        for (int i = 0; i < warmup; i++) Execute(target, i < corpus.Count ? corpus[i] : mutator.Mutate(corpus[i % corpus.Count], corpus, target.MaxInputLength), crashes, hangs, ref slowest);
        var before = ResourceCount.Now();

        var clock = Stopwatch.StartNew();
        long n = 0;
        while (n < maxExecutions && clock.Elapsed < maxTime)
        {
            var input = n < corpus.Count ? corpus[(int)n] : mutator.Mutate(corpus[(int)(n % corpus.Count)], corpus, target.MaxInputLength);
            Execute(target, input, crashes, hangs, ref slowest);
            n++;
        }
        clock.Stop();
        var after = ResourceCount.Now();
        return new InProcessResult(target.Name, n, clock.Elapsed, crashes, hangs, before, after, slowest);
    }

    private static void Execute(IFuzzTarget target, byte[] input, List<(byte[], Exception)> crashes, List<byte[]> hangs, ref TimeSpan slowest)
    {
        long start = Stopwatch.GetTimestamp();
        bool hung = false;
        try
        {
            target.Run(input);
        }
        catch (FuzzHangException)
        {
            hung = true; // the target's own deadline stopped it
        }
        catch (Exception e)
        {
            crashes.Add((input, e));
        }
        var took = Stopwatch.GetElapsedTime(start);
        if (took > slowest) slowest = took;
        if (hung || took > HangThreshold) hangs.Add(input);
    }

    /// <summary>Every file of corpus/TARGET and regressions/TARGET (the replay set).</summary>
    public static IReadOnlyList<string> CorpusFiles(string target, bool regressionsOnly = false)
    {
        var dirs = regressionsOnly ? new[] { "regressions" } : new[] { "corpus", "regressions" };
        return dirs.Select(d => Path.Combine(RepoRoot.FuzzProject, d, target))
            .Where(Directory.Exists)
            .SelectMany(d => Directory.GetFiles(d))
            .Where(f => !Path.GetFileName(f).StartsWith('.') && !f.EndsWith(".md", StringComparison.Ordinal))
            .Order(StringComparer.Ordinal)
            .ToList();
    }
}
