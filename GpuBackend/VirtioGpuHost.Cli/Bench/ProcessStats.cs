namespace VirtioGpuHost.Cli.Bench;

/// <summary>CPU time and memory of another process, from /proc (nanosecond CPU time via schedstat).</summary>
internal static class ProcessStats
{
    /// <summary>CPU time of all threads of <paramref name="pid"/> so far (sum of /proc/PID/task/*/schedstat run times).</summary>
    public static TimeSpan CpuTime(int pid)
    {
        long ns = 0;
        foreach (var task in Directory.GetDirectories($"/proc/{pid}/task"))
        {
            try
            {
                var text = File.ReadAllText(Path.Combine(task, "schedstat"));
                ns += long.Parse(text.Split(' ')[0]);
            }
            catch (IOException) { } // thread exited meanwhile
        }
        return TimeSpan.FromTicks(ns / 100);
    }

    /// <summary>
    /// CPU time of <paramref name="pid"/> so far including threads that have exited (utime + stime
    /// of /proc/PID/stat, in clock ticks of 10 ms): for processes whose threads come and go, where
    /// <see cref="CpuTime"/> (live threads only) could even go backwards.
    /// </summary>
    public static TimeSpan CpuTimeWithExitedThreads(int pid)
    {
        var text = File.ReadAllText($"/proc/{pid}/stat");
        var fields = text[(text.LastIndexOf(')') + 2)..].Split(' '); // after "pid (comm) "
        long ticks = long.Parse(fields[11]) + long.Parse(fields[12]); // utime, stime (fields 14, 15)
        return TimeSpan.FromMilliseconds(ticks * 10);
    }

    /// <summary>VmRSS and VmHWM in KiB.</summary>
    public static (long RssKb, long HwmKb) Memory(int pid)
    {
        long rss = 0, hwm = 0;
        foreach (var line in File.ReadLines($"/proc/{pid}/status"))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal)) rss = ParseKb(line);
            else if (line.StartsWith("VmHWM:", StringComparison.Ordinal)) hwm = ParseKb(line);
        }
        return (rss, hwm);
    }

    private static long ParseKb(string line) => long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]);
}
