using System.Reflection;

namespace VirtioGpuHost.Fuzz;

/// <summary>The repository root, recorded at build time (tests/Directory.Build.props) or found from the working directory.</summary>
public static class RepoRoot
{
    public static string Path { get; } = Find();

    private static string Find()
    {
        var recorded = typeof(RepoRoot).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().FirstOrDefault(a => a.Key == "RepoRoot")?.Value;
        if (recorded is not null && Directory.Exists(System.IO.Path.Combine(recorded, "tests", "VirtioGpuHost.Fuzz"))) return recorded;
        for (var d = new DirectoryInfo(Environment.CurrentDirectory); d is not null; d = d.Parent)
            if (File.Exists(System.IO.Path.Combine(d.FullName, "VirtioGpuHost.sln"))) return d.FullName;
        throw new DirectoryNotFoundException("cannot find the repository root (VirtioGpuHost.sln)");
    }

    /// <summary>tests/VirtioGpuHost.Fuzz in the repository.</summary>
    public static string FuzzProject => System.IO.Path.Combine(Path, "tests", "VirtioGpuHost.Fuzz");
}
