namespace VirtioGpuHost.TestKit;

/// <summary>Where things are: the repository, our built back-end, QEMU's C back-end.</summary>
public static class TestPaths
{
    public static string RepoRoot { get; } = FindRepoRoot();

    /// <summary>QEMU's C back-end from Debian's qemu-system-gui (the peer we compare against).</summary>
    public const string CBackend = "/usr/lib/qemu/vhost-user-gpu";

    /// <summary>The qemu-guest-e2e work directory (kernel, QEMU 10), set up by scripts/setup-deps.sh.</summary>
    public static string QemuE2EWorkDir => Environment.GetEnvironmentVariable("QE2E_WORKDIR") ?? Path.Combine(RepoRoot, ".cache", "qe2e");

    /// <summary>
    /// The qemu11-blob-shmem work directory (QEMU 11.1 from trixie-backports, the blob-test
    /// initramfs), set up by scripts/setup-deps.sh.
    /// </summary>
    public static string Qemu11WorkDir => Environment.GetEnvironmentVariable("QE11_WORKDIR") ?? Path.Combine(RepoRoot, ".cache", "qe11");

    /// <summary>QEMU 10.0's C back-end, unpacked from bookworm-backports by the e2e setup.</summary>
    public static string CBackend10 => Path.Combine(QemuE2EWorkDir, "qemu10", "usr", "lib", "qemu", "vhost-user-gpu");

    /// <summary>Our `virtio-gpu-host` as built next to the tests (same configuration).</summary>
    public static string OurBackend
    {
        get
        {
            string dir = AppContext.BaseDirectory;
            var here = Path.Combine(dir, "virtio-gpu-host.dll");
            if (File.Exists(here)) return here;
            foreach (var config in new[] { "Release", "Debug" })
            {
                var p = Path.Combine(RepoRoot, "GpuBackend", "VirtioGpuHost.Cli", "bin", config, "net10.0", "virtio-gpu-host.dll");
                if (File.Exists(p)) return p;
            }
            throw new FileNotFoundException("virtio-gpu-host.dll is not built");
        }
    }

    private static string FindRepoRoot()
    {
        var baked = typeof(TestPaths).Assembly.GetCustomAttributes(typeof(System.Reflection.AssemblyMetadataAttribute), false)
            .Cast<System.Reflection.AssemblyMetadataAttribute>().FirstOrDefault(a => a.Key == "RepoRoot")?.Value;
        if (baked is not null && File.Exists(Path.Combine(baked, "VirtioGpuHost.sln"))) return baked;
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "VirtioGpuHost.sln"))) dir = dir.Parent;
        return dir?.FullName ?? throw new DirectoryNotFoundException("VirtioGpuHost.sln not found above " + AppContext.BaseDirectory);
    }
}

/// <summary>A short private directory under /tmp (Unix socket paths must stay under 108 bytes).</summary>
public sealed class TempDir : IDisposable
{
    public TempDir()
    {
        Path = Directory.CreateTempSubdirectory("vgh.").FullName;
    }

    public string Path { get; }

    public string File(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose()
    {
        try { Directory.Delete(Path, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}

/// <summary>Skips a test with a clear message when the machine truly lacks something (never silently).</summary>
public static class Requires
{
    public static void File(string path, string what)
    {
        if (!System.IO.File.Exists(path)) Xunit.Assert.Skip($"{what} is not installed here ({path} missing); .ci/run installs it");
    }
}
