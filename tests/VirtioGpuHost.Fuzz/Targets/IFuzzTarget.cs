namespace VirtioGpuHost.Fuzz.Targets;

/// <summary>
/// One fuzz target: runs one input through the real code path of one parser, in-process.
/// <see cref="Run"/> returns normally for every input the product handles (accepted or refused
/// with the protocol's error); any exception that escapes it is a finding (crash), and so is
/// an input that does not return within the AFL timeout (hang).
/// </summary>
public interface IFuzzTarget
{
    /// <summary>The name used on the command line, in corpus/NAME and regressions/NAME.</summary>
    string Name { get; }

    /// <summary>One line: what the bytes are and which code they reach.</summary>
    string Description { get; }

    /// <summary>Inputs longer than this are cut (keeps each run short; AFL's -G uses it too).</summary>
    int MaxInputLength { get; }

    /// <summary>Runs one input. Throws only for a finding (a product exception or a broken invariant).</summary>
    void Run(ReadOnlySpan<byte> input);

    /// <summary>Small valid inputs built from the real wire structs (written by <c>write-seeds</c>).</summary>
    IEnumerable<(string Name, byte[] Data)> Seeds();
}

/// <summary>A target's own check failed (the product returned normally but broke a documented rule).</summary>
public sealed class FuzzInvariantException(string message) : Exception(message);

/// <summary>A run did not finish within the target's own deadline (in-process mode; AFL uses its -t).</summary>
public sealed class FuzzHangException(string message) : Exception(message);
