namespace VirtioGpuHost.Fuzz.Targets;

/// <summary>
/// Every fuzz target. To add one: write a class implementing <see cref="IFuzzTarget"/> whose Run feeds the bytes through
/// the real parser, add it to <see cref="All"/>, run <c>write-seeds</c> to create its corpus
/// folder; scripts/fuzz.sh, the replay tests and the mutation tests then pick it up by name.
/// </summary>
public static class FuzzTargets
{
    public static IReadOnlyList<IFuzzTarget> All { get; } =
    [
        new VhostUserTarget(),
        new ChainWalkerTarget(),
        new DeviceCommandTarget(),
        new DisplaySocketTarget(),
        new LayoutTarget(),
        new WaylandTarget(),
        new CrossDomainTarget(),
    ];

    public static IFuzzTarget Find(string name) =>
        All.FirstOrDefault(t => t.Name == name) ??
        throw new ArgumentException($"no fuzz target '{name}' (targets: {string.Join(", ", All.Select(t => t.Name))})");
}
