namespace VirtioGpuHost.Fuzz.InProcess;

/// <summary>What the process holds: open fds (/proc/self/fd) and mappings (/proc/self/maps).</summary>
public readonly record struct ResourceCount(int Fds, int Mappings)
{
    public static ResourceCount Now() =>
        new(Directory.GetFiles("/proc/self/fd").Length, File.ReadLines("/proc/self/maps").Count());

    public override string ToString() => $"{Fds} fds, {Mappings} mappings";
}
