using VirtioGpuHost.Fuzz;
using VirtioGpuHost.Fuzz.InProcess;
using VirtioGpuHost.Fuzz.Targets;

// VirtioGpuHost.Fuzz: the fuzz targets of docs/reliability.md.
//   list                                  the targets
//   afl TARGET                            run under afl-fuzz (SharpFuzz persistent mode; input on stdin)
//   run TARGET FILE|DIR...                replay inputs; exit 1 if any of them fails
//   mutate TARGET [--execs N] [--seconds S] [--seed N] [--crash-dir DIR]
//                                         in-process mutation run from corpus/ + regressions/
//   write-seeds [DIR]                     (re)write the generated seed corpus (default: corpus/ in the repository)
return args.Length == 0 ? Usage() : args[0] switch
{
    "list" => List(),
    "afl" when args.Length == 2 => Afl(FuzzTargets.Find(args[1])),
    "run" when args.Length >= 3 => Replay(FuzzTargets.Find(args[1]), args[2..]),
    "mutate" when args.Length >= 2 => Mutate(FuzzTargets.Find(args[1]), args[2..]),
    "write-seeds" => WriteSeeds(args.Length > 1 ? args[1] : Path.Combine(RepoRoot.FuzzProject, "corpus")),
    _ => Usage(),
};

static int Usage()
{
    Console.Error.WriteLine("usage: VirtioGpuHost.Fuzz list | afl TARGET | run TARGET FILE|DIR... | mutate TARGET [--execs N] [--seconds S] [--seed N] [--crash-dir DIR] | write-seeds [DIR]");
    return 2;
}

static int List()
{
    foreach (var t in FuzzTargets.All) Console.WriteLine($"{t.Name,-16} {t.Description}");
    return 0;
}

static int Afl(IFuzzTarget target)
{
    // Persistent mode: one process runs every input; an escaping exception is reported to
    // afl-fuzz as a crash, an input that does not return within afl-fuzz -t as a hang.
    var buffer = new byte[target.MaxInputLength];
    SharpFuzz.Fuzzer.Run(stream =>
    {
        int n = 0, got;
        while (n < buffer.Length && (got = stream.Read(buffer, n, buffer.Length - n)) > 0) n += got;
        target.Run(buffer.AsSpan(0, n));
    });
    return 0;
}

static int Replay(IFuzzTarget target, string[] paths)
{
    var files = paths.SelectMany(p => Directory.Exists(p) ? Directory.GetFiles(p).Order(StringComparer.Ordinal) : (IEnumerable<string>)[p]).ToList();
    int failed = 0;
    foreach (var f in files)
    {
        try
        {
            var bytes = File.ReadAllBytes(f);
            target.Run(bytes.AsSpan(0, Math.Min(bytes.Length, target.MaxInputLength)));
            Console.WriteLine($"ok    {f}");
        }
        catch (Exception e)
        {
            failed++;
            Console.WriteLine($"FAIL  {f}: {e}");
        }
    }
    Console.WriteLine($"{target.Name}: {files.Count} inputs, {failed} failed");
    return failed == 0 ? 0 : 1;
}

static int Mutate(IFuzzTarget target, string[] options)
{
    long execs = long.MaxValue;
    double seconds = 60;
    int seed = 1;
    string? crashDir = null;
    for (int i = 0; i + 1 < options.Length; i += 2)
    {
        switch (options[i])
        {
            case "--execs": execs = long.Parse(options[i + 1], System.Globalization.CultureInfo.InvariantCulture); break;
            case "--seconds": seconds = double.Parse(options[i + 1], System.Globalization.CultureInfo.InvariantCulture); break;
            case "--seed": seed = int.Parse(options[i + 1], System.Globalization.CultureInfo.InvariantCulture); break;
            case "--crash-dir": crashDir = options[i + 1]; break;
            default: return Usage();
        }
    }
    var corpus = InProcessRunner.CorpusFiles(target.Name).Select(File.ReadAllBytes).ToList();
    var result = InProcessRunner.Run(target, corpus, execs, TimeSpan.FromSeconds(seconds), seed);
    Console.WriteLine(result);
    foreach (var (input, error) in result.Crashes.Take(5)) Console.WriteLine($"crash ({input.Length} bytes): {error}");
    if (crashDir is not null)
    {
        Directory.CreateDirectory(crashDir);
        foreach (var (input, _) in result.Crashes) File.WriteAllBytes(Path.Combine(crashDir, $"crash-{Convert.ToHexString(System.Security.Cryptography.SHA1.HashData(input))[..16].ToLowerInvariant()}"), input);
        foreach (var input in result.Hangs) File.WriteAllBytes(Path.Combine(crashDir, $"hang-{Convert.ToHexString(System.Security.Cryptography.SHA1.HashData(input))[..16].ToLowerInvariant()}"), input);
    }
    return result.Crashes.Count == 0 && result.Hangs.Count == 0 ? 0 : 1;
}

static int WriteSeeds(string dir)
{
    foreach (var t in FuzzTargets.All)
    {
        var d = Path.Combine(dir, t.Name);
        Directory.CreateDirectory(d);
        foreach (var (name, data) in t.Seeds())
        {
            File.WriteAllBytes(Path.Combine(d, name), data);
            Console.WriteLine($"{t.Name}/{name}: {data.Length} bytes");
        }
    }
    return 0;
}
