namespace VirtioGpuHost.Compositor.Core.Layout;

public enum LayoutSeverity
{
    /// <summary>The file is rejected.</summary>
    Error,
    /// <summary>The file loads, but something is probably not what was meant.</summary>
    Warning,
}

/// <summary>
/// One finding about a layout file: where (file, 1-based line; 0 when the file could not be
/// read at all), what (<see cref="Subject"/> such as <c>zone "ivi"</c>, and the
/// <see cref="Field"/> such as <c>rect</c>), and why. <see cref="ToString"/> gives the
/// compiler-style line <c>layout.toml:14: zone "ivi": rect width must be &gt; 0</c>.
/// </summary>
public sealed record LayoutDiagnostic(LayoutSeverity Severity, string File, int Line, string Subject, string Field, string Message)
{
    public bool IsError => Severity == LayoutSeverity.Error;

    public override string ToString()
    {
        string where = Line > 0 ? $"{File}:{Line}: " : $"{File}: ";
        string level = Severity == LayoutSeverity.Warning ? "warning: " : "";
        string subject = Subject.Length > 0 ? Subject + ": " : "";
        return where + level + subject + Message;
    }
}

/// <summary>
/// What <see cref="LayoutLoader"/> made of a file: the layout when there was no error (warnings
/// may remain), otherwise null, and every diagnostic in file order.
/// </summary>
public sealed record LayoutLoadResult(LayoutConfig? Layout, IReadOnlyList<LayoutDiagnostic> Diagnostics)
{
    public bool Success => Layout is not null;
    public IEnumerable<LayoutDiagnostic> Errors => Diagnostics.Where(d => d.Severity == LayoutSeverity.Error);
    public IEnumerable<LayoutDiagnostic> Warnings => Diagnostics.Where(d => d.Severity == LayoutSeverity.Warning);

    /// <summary>All diagnostics, one per line (for logs and the CLI).</summary>
    public override string ToString() => string.Join(Environment.NewLine, Diagnostics);
}
