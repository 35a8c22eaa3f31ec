using System.Diagnostics;

namespace VirtioGpuHost.UnitTests.VhostUser;

/// <summary>
/// Counts this process's open fds and memfd mappings (the in-process back-end runs here), for
/// leak checks. Fd counts are process-wide, so tests that use them run in
/// <see cref="ProcessWideCollection"/>, alone.
/// </summary>
internal static class ProcessResources
{
    /// <summary>
    /// Open fds of the kinds a vhost-user connection creates or receives (sockets, eventfds,
    /// memfds, pipes); files the runtime opens as it loads assemblies are not counted.
    /// </summary>
    public static int OpenFds() => Fds().Count();

    private static IEnumerable<string> Fds()
    {
        foreach (var f in Directory.GetFiles("/proc/self/fd"))
        {
            string? target;
            try { target = new FileInfo(f).LinkTarget; }
            catch (IOException) { continue; }
            if (target is null) continue;
            if (target.StartsWith("socket:", StringComparison.Ordinal) || target.StartsWith("anon_inode:", StringComparison.Ordinal) ||
                target.StartsWith("pipe:", StringComparison.Ordinal) || target.StartsWith("/memfd:", StringComparison.Ordinal))
                yield return $"{Path.GetFileName(f)}→{target}";
        }
    }

    /// <summary>Lines of /proc/self/maps that map a memfd whose name contains <paramref name="name"/>.</summary>
    public static int MemfdMappings(string name) =>
        File.ReadAllLines("/proc/self/maps").Count(l => l.Contains("/memfd:", StringComparison.Ordinal) && l.Contains(name, StringComparison.Ordinal));

    /// <summary>Polls <paramref name="condition"/> until it holds or the timeout passes; returns its last value.</summary>
    public static bool WaitUntil(Func<bool> condition, TimeSpan timeout)
    {
        var sw = Stopwatch.StartNew();
        while (!condition())
        {
            if (sw.Elapsed > timeout) return condition();
            Thread.Sleep(10);
        }
        return true;
    }

    /// <summary>Waits until the fd count is back to <paramref name="baseline"/> (or below) and asserts it.</summary>
    public static void AssertFdsBackTo(int baseline, string what)
    {
        int now = 0;
        bool ok = WaitUntil(() => (now = OpenFds()) <= baseline, TimeSpan.FromSeconds(10));
        Assert.True(ok, $"{what}: {now} fds open, {baseline} before ({string.Join(", ", Fds())})");
    }
}

/// <summary>Tests that count process-wide fds or mappings: they run alone, after the parallel ones.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ProcessWideCollection
{
    public const string Name = "process-wide fd and mapping counts";
}
