using System.Globalization;
using System.Runtime.InteropServices;

namespace VirtioGpuHost.Interop;

/// <summary>
/// Per-thread CPU scheduling priority on Linux: every thread is its own task with its own nice
/// value (setpriority(PRIO_PROCESS, tid) changes only that thread; threads it starts inherit it).
/// Raising a nice value (less CPU under contention) needs no privilege; lowering it below the
/// current value needs CAP_SYS_NICE or RLIMIT_NICE, and fails with EACCES/EPERM otherwise.
/// </summary>
public static partial class ThreadScheduling
{
    public const int MinNice = -20, MaxNice = 19;
    private const int PrioProcess = 0;

    /// <summary>The calling thread's kernel thread id (gettid).</summary>
    public static int CurrentThreadId => GetTid();

    /// <summary>The nice value of thread <paramref name="tid"/> of this process (the calling thread: <see cref="CurrentThreadId"/>).</summary>
    public static int GetNice(int tid)
    {
        // getpriority may return -1 as a value: only errno tells a failure (the marshaller clears it first).
        int value = GetPriority(PrioProcess, (uint)tid);
        int errno = Marshal.GetLastSystemError();
        if (value == -1 && errno != 0) throw new SyscallException("getpriority", errno);
        return value;
    }

    /// <summary>
    /// Sets thread <paramref name="tid"/>'s nice value (clamped to -20..19). Returns 0 on success,
    /// else the errno (EACCES or EPERM: lowering it is not permitted; ESRCH: no such thread).
    /// </summary>
    public static int TrySetNice(int tid, int nice)
    {
        nice = Math.Clamp(nice, MinNice, MaxNice);
        return SetPriority(PrioProcess, (uint)tid, nice) == 0 ? 0 : Marshal.GetLastSystemError();
    }

    /// <summary>
    /// Thread <paramref name="tid"/>'s nice value as /proc/self/task/TID/stat reports it (field 19),
    /// independently of getpriority (tests check what the kernel holds).
    /// </summary>
    public static int ReadNiceFromProc(int tid)
    {
        string stat = File.ReadAllText($"/proc/self/task/{tid}/stat");
        // The command name (field 2) is in parentheses and may contain spaces: count after its last ')'.
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        return int.Parse(fields[19 - 3], CultureInfo.InvariantCulture); // fields[0] is field 3 (state)
    }

    [LibraryImport("libc", EntryPoint = "gettid")]
    private static partial int GetTid();

    [LibraryImport("libc", EntryPoint = "getpriority", SetLastError = true)]
    private static partial int GetPriority(int which, uint who);

    [LibraryImport("libc", EntryPoint = "setpriority", SetLastError = true)]
    private static partial int SetPriority(int which, uint who, int prio);
}
