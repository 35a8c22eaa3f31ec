using VirtioGpuHost.Compositor.Core.Layout;
using VirtioGpuHost.Device.Queues;

namespace VirtioGpuHost.Compositor;

/// <summary>
/// The fairness policy of one VM's connections, from its safety class (docs/reliability.md,
/// "Fairness and deadlines"): an untrusted VM's connection threads run at a positive nice value,
/// so that under CPU contention whatever it floods its rings with waits for the frame thread and
/// the other VMs' connections (all at the process's own priority), instead of taking their
/// turns. Raising a nice value needs no privilege.
/// </summary>
public sealed record VmScheduling(SafetyClass Class, int Nice, CommandBudgetLimits? Budget)
{
    /// <summary>Nice value of an untrusted VM's connection threads (CFS weight 110 against 1024 at nice 0).</summary>
    public const int UntrustedNice = 10;

    /// <summary>
    /// An untrusted connection's control-queue work per 10 ms slice: 128 commands (12,800/s) and
    /// 4 MiB copied from guest memory (400 MiB/s: a full 1920x1080 frame about 50 times a second).
    /// </summary>
    public static readonly CommandBudgetLimits UntrustedBudget = new(128, 4UL << 20, TimeSpan.FromMilliseconds(10));

    /// <summary>The policy of a VM of class <paramref name="safetyClass"/>; <paramref name="enabled"/> false: none (every thread as started, no budget).</summary>
    /// <summary>
    /// Nice value asked for a critical VM's connection threads: with the frame thread
    /// (<see cref="FrameClock.FrameThreadNice"/>) above everything else, so the cluster's flushes
    /// reach the frame in time on a loaded host. Granted only with CAP_SYS_NICE; otherwise they
    /// keep the process's priority (logged once per connection).
    /// </summary>
    public const int CriticalNice = -5;

    public static VmScheduling For(SafetyClass safetyClass, bool enabled = true) =>
        !enabled ? new(safetyClass, 0, null)
        : safetyClass == SafetyClass.Untrusted ? new(safetyClass, UntrustedNice, UntrustedBudget)
        : safetyClass == SafetyClass.Critical ? new(safetyClass, CriticalNice, null)
        : new(safetyClass, 0, null);

    public override string ToString() => Nice == 0 && Budget is null
        ? $"class {Class.ToString().ToLowerInvariant()}: connection threads at the process's priority, no command budget"
        : Nice < 0
            ? $"class {Class.ToString().ToLowerInvariant()}: connection threads at nice {Nice} where permitted (CAP_SYS_NICE), command budget {Budget?.ToString() ?? "none"}"
            : $"class {Class.ToString().ToLowerInvariant()}: connection threads at nice +{Nice}, command budget {Budget?.ToString() ?? "none"} per connection";
}
