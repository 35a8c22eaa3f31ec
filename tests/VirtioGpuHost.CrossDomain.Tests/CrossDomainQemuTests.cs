using System.Buffers.Binary;
using System.Diagnostics;
using System.IO.Compression;
using System.Text;
using System.Text.RegularExpressions;
using VirtioGpuHost.Device;
using VirtioGpuHost.Device.Capsets;
using VirtioGpuHost.TestKit;

namespace VirtioGpuHost.CrossDomain.Tests;

/// <summary>
/// Cross-domain with a real kernel driver: QEMU 11.1 (TCG) + a Linux 6.1 guest
/// (tests/e2e/qemu11-blob-shmem) against our back-end in this process, which offers capset 5
/// with <see cref="CrossDomainContext"/> connected to weston 10 headless. Inside the guest the
/// static program xdomain-wayland (xdomain-wayland.c, started by the recipe's init with
/// blob.prog) uses only the virtio_gpu DRM uAPI: CONTEXT_INIT (capset 5, 2 rings, poll mask
/// 1 &lt;&lt; 1), GUEST ring blobs, INIT, POLL fenced on ring 1 with the driver's fence event, SEND
/// of hand-encoded Wayland requests, RECEIVEs parsed into wl_registry.global and
/// wl_callback.done; then the wl_shm path: GET_IMAGE_REQUIREMENTS, a HOST3D blob mapped through
/// the host-visible BAR, a picture drawn into it, wl_shm.create_pool with the blob as
/// identifier type 1, an xdg toplevel committed. The test takes a weston screenshot while the
/// guest holds the surface and finds the guest's picture in it, pixel-exact.
/// </summary>
/// <remarks>
/// The guest boots once and powers off (QEMU 11.1.3 must never be reset with a blob mapped; see
/// the recipe's README). Bounded: the guest gives up after 45 s, run.sh after 70 s, the whole
/// test after 90 s.
/// </remarks>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class CrossDomainQemuTests(ITestOutputHelper output)
{
    private static string Recipe => Path.Combine(TestPaths.RepoRoot, "tests", "e2e", "qemu11-blob-shmem");
    private static string WorkDir => TestPaths.Qemu11WorkDir;
    private static string ArtifactsDir => Path.Combine(TestPaths.RepoRoot, "artifacts", "e2e", "qemu11-xdomain");
    private const ulong HostVisibleSize = 64UL << 20;
    private const string Weston = "/usr/bin/weston", Screenshooter = "/usr/bin/weston-screenshooter";

    /// <summary>xdomain-wayland's picture (-s): 96 x 64 XRGB, R = x*2+8, G = y*3+16, B = 0xA5.</summary>
    internal const int PicW = 96, PicH = 64;
    internal static uint PicPixel(int x, int y) => (uint)(x * 2 + 8) << 16 | (uint)(y * 3 + 16) << 8 | 0xA5;  // X = 0xFF in the guest's buffer

    private static void RequireSetup()
    {
        var missing = new[] { "qemu11.env", "kernel.env", "initramfs-blob.cpio.gz" }
            .Where(f => !File.Exists(Path.Combine(WorkDir, f))).ToList();
        if (missing.Count > 0)
            Assert.Skip($"the qemu11-blob-shmem work directory {WorkDir} is not set up ({string.Join(", ", missing)} missing): " +
                "scripts/setup-deps.sh prepares it (QEMU 11.1 from trixie-backports, needs network once; see .cache/qe11-setup.log)");
        if (!InitramfsHas(Path.Combine(WorkDir, "initramfs-blob.cpio.gz"), "bin/xdomain-wayland"))
            Assert.Skip($"{WorkDir}/initramfs-blob.cpio.gz predates xdomain-wayland: rebuild it with scripts/setup-deps.sh " +
                $"(or {Recipe}/build-initramfs.sh {WorkDir}; needs gcc, libc6-dev, busybox-static)");
        foreach (var p in new[] { Weston, Screenshooter })
            if (!File.Exists(p)) Assert.Skip($"{p} is not installed (Debian package weston); this test uses weston 10 headless as the host compositor");
    }

    /// <summary>Whether the gzip'd newc cpio has an entry named <paramref name="name"/>.</summary>
    private static bool InitramfsHas(string path, string name)
    {
        using var gz = new GZipStream(File.OpenRead(path), CompressionMode.Decompress);
        using var ms = new MemoryStream();
        gz.CopyTo(ms);
        byte[] b = ms.ToArray();
        int pos = 0;
        while (pos + 110 <= b.Length && Encoding.ASCII.GetString(b, pos, 6) == "070701")
        {
            int Hex(int field) => Convert.ToInt32(Encoding.ASCII.GetString(b, pos + 6 + 8 * field, 8), 16);
            int fileSize = Hex(6), nameSize = Hex(11);
            if (nameSize <= 0 || fileSize < 0 || pos + 110 + nameSize > b.Length) return false;
            string n = Encoding.ASCII.GetString(b, pos + 110, nameSize - 1);
            if (n == name || n == "./" + name) return true;
            if (n == "TRAILER!!!") return false;
            pos = (pos + 110 + nameSize + 3 & ~3) + fileSize + 3 & ~3;
        }
        return false;
    }

    [Fact]
    public void LinuxGuestDriver_WaylandOverCapset5_RegistryAndShmPictureReachWeston()
    {
        RequireSetup();
        var total = Stopwatch.StartNew();
        Directory.CreateDirectory(ArtifactsDir);
        var runDir = Path.Combine(ArtifactsDir, "run");
        if (Directory.Exists(runDir)) Directory.Delete(runDir, recursive: true); // the console watch below must not see an old run's lines
        foreach (var f in Directory.GetFiles(ArtifactsDir, "*.png")) File.Delete(f);

        using var westonDir = new TempDir();
        File.SetUnixFileMode(westonDir.Path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        // desktop-shell without animations (a new window zooms in from alpha 0 otherwise, and
        // nothing repaints it once our client stops committing); pixman renders (the headless
        // default, the noop renderer, cannot take screenshots); --debug allows the screenshooter.
        string westonIni = westonDir.File("weston.ini");
        File.WriteAllText(westonIni, "[shell]\nanimation=none\nstartup-animation=none\nclose-animation=none\nfocus-animation=none\n");
        using var weston = Child.Start(Weston, ["--backend=headless-backend.so", "--use-pixman", "--socket=wl-xdq", "--idle-time=0",
                $"--config={westonIni}", "--shell=desktop-shell.so", "--debug", "--width=640", "--height=480"],
            new() { ["XDG_RUNTIME_DIR"] = westonDir.Path, ["WAYLAND_DEBUG"] = "server" }, westonDir.Path); // its protocol log goes to weston.log
        string westonSocket = westonDir.File("wl-xdq");
        if (!SpinWait.SpinUntil(() => File.Exists(westonSocket) || weston.HasExited, 20000) || weston.HasExited)
            Assert.Fail($"weston did not create {westonSocket}:\n{weston.Output}");

        var contexts = new List<CrossDomainContext>();
        using var backend = new InProcessBackend(new GpuDeviceOptions
        {
            Blob = true,
            VirglCompat = true, // the 6.1 driver allows HOST3D blobs and CONTEXT_INIT only with VIRGL
            Capsets = [new CrossDomainCapset(host =>
            {
                var c = new CrossDomainContext(host, new CrossDomainOptions { WaylandSocketPath = westonSocket });
                lock (contexts) contexts.Add(c);
                return c;
            })],
        });
        backend.Server.HostVisibleSize = HostVisibleSize;

        // run.sh boots the guest; meanwhile watch its console for the picture being shown and
        // take weston's screenshot while the guest holds the surface (-w 6).
        (int Code, string Output)? guest = null;
        var runEnv = new Dictionary<string, string>
        {
            ["BACKEND_CMD"] = $"ln -s '{backend.SocketPath}' \"$GPU_SOCK\" && exec sleep 600",
            ["GUEST_PROG"] = "xdomain-wayland",
            ["GUEST_PASS"] = "XDOMAIN PASS",
            ["BLOB_ARGS"] = "-s -w 6 -t 45",
            ["HOST_CRC"] = "skip",
            ["TIMEOUT"] = "70",
        };
        var run = new Thread(() => guest = RunGuest(runDir, runEnv)) { IsBackground = true, Name = "run.sh" };
        run.Start();
        string serialLog = Path.Combine(runDir, "serial.log");
        string? shot = null, shotError = null, memfds = null;
        (int X, int Y)? at = null;
        int shotW = 0, shotH = 0, shots = 0;
        while (run.IsAlive && total.Elapsed < TimeSpan.FromSeconds(85))
        {
            if (ReadShared(serialLog).Contains("E2E: XDOMAIN SHOWN", StringComparison.Ordinal))
            {
                // The guest keeps its surface for 6 s: screenshots until one shows the picture.
                var shownAt = total.Elapsed;
                memfds = DescribeMemfds(weston.Id);
                while (at is null && total.Elapsed - shownAt < TimeSpan.FromSeconds(4.5) && run.IsAlive)
                {
                    shots++;
                    (shot, shotError) = TakeScreenshot(westonDir.Path, westonSocket, shots);
                    if (shot is null) break;
                    var (w, h, rgb) = DecodePng(File.ReadAllBytes(shot));
                    (shotW, shotH, at) = (w, h, FindPicture(w, h, rgb));
                    if (at is null) Thread.Sleep(300);
                }
                break;
            }
            Thread.Sleep(50);
        }
        bool finished = run.Join(TimeSpan.FromSeconds(Math.Max(1, 88 - total.Elapsed.TotalSeconds)));
        var (code, stdout) = finished && guest is { } g ? g : (-1, "run.sh still running at the test's 90 s bound");

        string serial = ReadShared(Path.Combine(runDir, "serial-e2e.txt"));
        string result = ReadShared(Path.Combine(runDir, "result.txt"));
        string backendLog = Path.Combine(ArtifactsDir, "backend.log");
        File.WriteAllLines(backendLog, backend.Logs.Lines.Select(l => $"{l.Level}: {l.Message}"));
        File.WriteAllText(Path.Combine(ArtifactsDir, "weston.log"), weston.Output);
        var guestLines = serial.Split('\n').Where(l => l.Contains("XDOMAIN") || l.Contains("wl_") || l.Contains("capset") ||
                                                     l.Contains("CONTEXT_INIT") || l.Contains("rings:") || l.Contains("HOST3D") ||
                                                     l.Contains("image requirements") || l.Contains("RESULT") || l.Contains("xdg_"));
        output.WriteLine(string.Join("\n", guestLines));
        output.WriteLine(stdout);
        output.WriteLine(result);
        output.WriteLine($"test wall time {total.Elapsed.TotalSeconds:F1} s");
        string where = $"artifacts: {runDir}/serial.log, serial-e2e.txt, result.txt, qemu.log; our back-end's log {backendLog}; weston's {ArtifactsDir}/weston.log";
        string warnings = string.Join("\n", backend.Logs.Warnings.Take(30));

        // The guest's verdict, and what it saw.
        Assert.True(code == 0, $"run.sh exit {code} (0 pass, 1 the guest program failed, 3 back-end gone, 4 QEMU exited early, 5 timeout); {where}\n" +
                               $"{stdout}\n{result}\nguest:\n{string.Join("\n", guestLines)}\nour warnings:\n{warnings}");
        Assert.Contains("guest=xdomain-wayland XDOMAIN PASS", result);
        Assert.Contains("E2E: context_init=1 supported_capset_ids=0x20", serial);
        Assert.Contains("E2E: capset 5: version=1 supported_channels=0x2", serial);
        Assert.Contains("E2E: CONTEXT_INIT capset=5 num_rings=2 poll_rings_mask=0x2 ok", serial);
        foreach (var iface in new[] { "wl_compositor", "wl_shm", "xdg_wm_base", "wl_output" })
            Assert.Matches($@"E2E: wl_registry\.global name=\d+ interface={iface} version=\d+", serial);
        Assert.Matches(@"E2E: wl_callback\.done \(wl_display\.sync\) serial=\d+ after \d+ globals", serial);
        Assert.Matches(@"E2E: image requirements 96x64 XR24: stride=384 offset=0 size=24576 blob_id=\d+", serial);
        Assert.Matches(@"E2E: wl_callback\.done \(wl_surface\.frame\)", serial);
        Assert.DoesNotContain("XDOMAIN FAIL", serial);

        // Our back-end's side: one cross-domain context, which carried the SENDs and RECEIVEs.
        CrossDomainContext ctx;
        lock (contexts)
        {
            Assert.True(contexts.Count == 1, $"{contexts.Count} cross-domain contexts were created, want 1; {where}");
            ctx = contexts[0];
        }
        Assert.True(ctx.Initialized, "the context never got INIT");
        Assert.True(ctx.Sends >= 3, $"the context carried {ctx.Sends} SENDs (get_registry+sync, the shm requests, ack+attach+commit)");
        Assert.True(ctx.Receives >= 3, $"the context delivered {ctx.Receives} RECEIVEs");
        // The real driver's command stream (CTX_ATTACH, CREATE_BLOB, MAP_BLOB, fenced and
        // unfenced SUBMIT_3Ds) drew no guest-error line from the device or the context.
        long guestErrors = backend.LastDevice.Gpu.Errors.Count;
        Assert.True(guestErrors == 0, $"the device counted {guestErrors} guest errors:\n{warnings}\n{where}");

        // What weston showed: the guest's picture, pixel-exact.
        Assert.True(shot is not null, $"no screenshot of weston: {shotError ?? "the guest never printed 'XDOMAIN SHOWN'"}; {where}");
        File.Copy(shot!, Path.Combine(ArtifactsDir, "weston-screenshot.png"), overwrite: true);
        output.WriteLine($"screenshot {shots} of weston ({shotW}x{shotH}): the guest's {PicW}x{PicH} picture {(at is { } p ? $"at ({p.X},{p.Y})" : "NOT found")}");
        Assert.True(at is not null, $"weston's screenshot ({ArtifactsDir}/weston-screenshot.png, {shotW}x{shotH}, {shots} taken) does not contain the guest's " +
                                    $"{PicW}x{PicH} picture; weston's memfd mappings then:\n{memfds}\n{where}");
        Assert.True(total.Elapsed < TimeSpan.FromSeconds(90), $"the test took {total.Elapsed.TotalSeconds:F1} s");
    }

    /// <summary>
    /// The same guest program against a back-end whose Wayland socket does not exist: INIT
    /// cannot open the channel, and the guest must report a clear failure at once (its POLL
    /// comes back with nothing on the channel ring) instead of hanging: the probe can fail.
    /// </summary>
    [Fact]
    public void LinuxGuestDriver_NoHostCompositor_GuestFailsClearly()
    {
        RequireSetup();
        var runDir = Path.Combine(ArtifactsDir, "no-compositor");
        if (Directory.Exists(runDir)) Directory.Delete(runDir, recursive: true);
        using var dir = new TempDir();
        using var backend = new InProcessBackend(new GpuDeviceOptions
        {
            Blob = true,
            VirglCompat = true,
            Capsets = [new CrossDomainCapset(host => new CrossDomainContext(host, new CrossDomainOptions { WaylandSocketPath = dir.File("no-such-wayland") }))],
        });
        backend.Server.HostVisibleSize = HostVisibleSize;
        var (code, stdout) = RunGuest(runDir, new Dictionary<string, string>
        {
            ["BACKEND_CMD"] = $"ln -s '{backend.SocketPath}' \"$GPU_SOCK\" && exec sleep 600",
            ["GUEST_PROG"] = "xdomain-wayland",
            ["GUEST_PASS"] = "XDOMAIN PASS",
            ["BLOB_ARGS"] = "-t 40",
            ["HOST_CRC"] = "skip",
            ["TIMEOUT"] = "70",
        });
        string result = ReadShared(Path.Combine(runDir, "result.txt"));
        string serial = ReadShared(Path.Combine(runDir, "serial-e2e.txt"));
        output.WriteLine(stdout);
        output.WriteLine(result);
        Assert.True(code == 1, $"run.sh exit {code}, want 1 (the guest program failed):\n{stdout}\n{result}\n{serial}");
        Assert.Contains("E2E: CONTEXT_INIT capset=5 num_rings=2 poll_rings_mask=0x2 ok", serial);
        Assert.Matches(@"guest=xdomain-wayland XDOMAIN FAIL channel ring holds command 0, want RECEIVE \(5\)", result);
        Assert.DoesNotContain("XDOMAIN PASS", serial);
        output.WriteLine(string.Join("\n", backend.Logs.Warnings));
        Assert.Contains(backend.Logs.Warnings, w => w.Contains("INIT: opening the Wayland channel failed", StringComparison.Ordinal));
    }

    /// <summary>
    /// Diagnostics for a missing picture: the memfds <paramref name="pid"/> maps (needs access to
    /// /proc/PID/map_files) and how many of the picture's pixels each holds at offset 0.
    /// </summary>
    private static string DescribeMemfds(int pid)
    {
        var sb = new StringBuilder();
        string[] maps;
        try { maps = Directory.GetFiles($"/proc/{pid}/map_files"); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return $"(cannot list /proc/{pid}/map_files: {e.Message})"; }
        foreach (var f in maps)
        {
            string? target;
            try { target = new FileInfo(f).LinkTarget; } catch (Exception e) when (e is IOException or UnauthorizedAccessException) { continue; }
            if (target is null || !target.StartsWith("/memfd:", StringComparison.Ordinal)) continue;
            try
            {
                var bytes = File.ReadAllBytes(f);
                int hits = 0;
                if (bytes.Length >= PicH * PicW * 4)
                    for (int y = 0; y < PicH; y++) for (int x = 0; x < PicW; x++)
                        if ((BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan((y * PicW + x) * 4)) & 0xFFFFFF) == PicPixel(x, y)) hits++;
                sb.AppendLine($"pid {pid} {f} -> {target}: {bytes.Length} bytes, {hits} picture pixels, first word {(bytes.Length >= 4 ? BinaryPrimitives.ReadUInt32LittleEndian(bytes) : 0):x8}");
            }
            catch (Exception e) { sb.AppendLine($"pid {pid} {f} -> {target}: {e.Message}"); }
        }
        return sb.ToString();
    }

    /// <summary>Runs weston-screenshooter against weston (needs --debug and the pixman renderer); the PNG path or why not.</summary>
    private static (string? Path, string? Error) TakeScreenshot(string dir, string socket, int n)
    {
        var shots = Path.Combine(dir, $"shots{n}");
        Directory.CreateDirectory(shots);
        using var p = Child.Start(Screenshooter, [], new()
        {
            ["XDG_RUNTIME_DIR"] = Path.GetDirectoryName(socket)!,
            ["WAYLAND_DISPLAY"] = Path.GetFileName(socket),
        }, shots);
        if (!p.WaitForExit(TimeSpan.FromSeconds(15))) return (null, $"weston-screenshooter did not finish within 15 s:\n{p.Output}");
        var png = Directory.GetFiles(shots, "*.png").FirstOrDefault();
        return png is null ? (null, $"weston-screenshooter wrote no PNG (exit {p.ExitCode}):\n{p.Output}") : (png, null);
    }

    /// <summary>Where the guest's picture lies in the screenshot (every pixel equal), or null.</summary>
    internal static (int X, int Y)? FindPicture(int w, int h, uint[] rgb)
    {
        uint first = PicPixel(0, 0);
        for (int y0 = 0; y0 + PicH <= h; y0++)
            for (int x0 = 0; x0 + PicW <= w; x0++)
            {
                if (rgb[y0 * w + x0] != first) continue;
                bool all = true;
                for (int y = 0; y < PicH && all; y++)
                    for (int x = 0; x < PicW; x++)
                        if (rgb[(y0 + y) * w + x0 + x] != PicPixel(x, y)) { all = false; break; }
                if (all) return (x0, y0);
            }
        return null;
    }

    /// <summary>
    /// A minimal PNG decoder for weston-screenshooter's files (cairo: 8-bit RGB or RGBA, not
    /// interlaced): pixels as 0xRRGGBB. Anything else is refused.
    /// </summary>
    internal static (int W, int H, uint[] Rgb) DecodePng(byte[] png)
    {
        ReadOnlySpan<byte> sig = [0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A];
        if (png.Length < 8 || !png.AsSpan(0, 8).SequenceEqual(sig)) throw new InvalidDataException("not a PNG");
        int pos = 8, w = 0, h = 0, bpp = 0;
        using var idat = new MemoryStream();
        while (pos + 12 <= png.Length)
        {
            int len = BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(pos));
            string type = Encoding.ASCII.GetString(png, pos + 4, 4);
            if (len < 0 || pos + 12 + (long)len > png.Length) throw new InvalidDataException($"PNG chunk {type} of {len} bytes overruns the file");
            var data = png.AsSpan(pos + 8, len);
            if (type == "IHDR")
            {
                w = BinaryPrimitives.ReadInt32BigEndian(data);
                h = BinaryPrimitives.ReadInt32BigEndian(data[4..]);
                byte depth = data[8], color = data[9], interlace = data[12];
                if (depth != 8 || (color != 2 && color != 6) || interlace != 0 || w is <= 0 or > 8192 || h is <= 0 or > 8192)
                    throw new InvalidDataException($"PNG {w}x{h} depth {depth} color type {color} interlace {interlace} is not supported here");
                bpp = color == 2 ? 3 : 4;
            }
            else if (type == "IDAT") idat.Write(data);
            else if (type == "IEND") break;
            pos += 12 + len;
        }
        if (bpp == 0) throw new InvalidDataException("PNG without IHDR");
        idat.Position = 0;
        using var z = new ZLibStream(idat, CompressionMode.Decompress);
        int stride = w * bpp;
        var raw = new byte[(stride + 1) * h];
        z.ReadExactly(raw);
        var rgb = new uint[w * h];
        var prev = new byte[stride];
        var cur = new byte[stride];
        for (int y = 0; y < h; y++)
        {
            byte filter = raw[y * (stride + 1)];
            raw.AsSpan(y * (stride + 1) + 1, stride).CopyTo(cur);
            for (int i = 0; i < stride; i++)
            {
                int a = i >= bpp ? cur[i - bpp] : 0, b = prev[i], c = i >= bpp ? prev[i - bpp] : 0;
                cur[i] += filter switch
                {
                    0 => 0,
                    1 => (byte)a,
                    2 => (byte)b,
                    3 => (byte)((a + b) / 2),
                    4 => (byte)Paeth(a, b, c),
                    _ => throw new InvalidDataException($"PNG filter {filter}"),
                };
            }
            for (int x = 0; x < w; x++)
                rgb[y * w + x] = (uint)cur[x * bpp] << 16 | (uint)cur[x * bpp + 1] << 8 | cur[x * bpp + 2];
            (prev, cur) = (cur, prev);
        }
        return (w, h, rgb);

        static int Paeth(int a, int b, int c)
        {
            int p = a + b - c, pa = Math.Abs(p - a), pb = Math.Abs(p - b), pc = Math.Abs(p - c);
            return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
        }
    }

    /// <summary>Runs the vendored run.sh (one boot) into <paramref name="dir"/>; its exit code and output.</summary>
    private static (int Code, string Output) RunGuest(string dir, IReadOnlyDictionary<string, string> env)
    {
        Directory.CreateDirectory(dir);
        var psi = new ProcessStartInfo(Path.Combine(Recipe, "run.sh")) { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(WorkDir);
        psi.ArgumentList.Add(dir);
        psi.Environment["PROXY"] = "0";
        foreach (var (k, v) in env) psi.Environment[k] = v;
        using var p = Process.Start(psi)!;
        var so = p.StandardOutput.ReadToEndAsync();
        var se = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(TimeSpan.FromSeconds(85)))
        {
            p.Kill(entireProcessTree: true);
            p.WaitForExit();
            return (-1, $"run.sh did not finish within 85 s\n{so.Result}{se.Result}");
        }
        return (p.ExitCode, so.Result + se.Result);
    }

    private static string ReadShared(string path)
    {
        try
        {
            using var s = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            using var r = new StreamReader(s);
            return r.ReadToEnd().Replace("\r", "");
        }
        catch (IOException) { return ""; }
    }

    /// <summary>A child with its stdout + stderr collected; killed on dispose.</summary>
    private sealed class Child : IDisposable
    {
        private readonly Process _p;
        private readonly StringBuilder _out = new();

        private Child(Process p)
        {
            _p = p;
            p.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (_out) _out.AppendLine(e.Data); };
            p.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (_out) _out.AppendLine(e.Data); };
            p.BeginOutputReadLine();
            p.BeginErrorReadLine();
        }

        public static Child Start(string file, string[] args, Dictionary<string, string> env, string cwd)
        {
            var psi = new ProcessStartInfo(file) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false, WorkingDirectory = cwd };
            foreach (var a in args) psi.ArgumentList.Add(a);
            psi.Environment.Remove("WAYLAND_DISPLAY");
            psi.Environment.Remove("DISPLAY");
            foreach (var (k, v) in env) psi.Environment[k] = v;
            return new Child(Process.Start(psi)!);
        }

        public string Output { get { lock (_out) return _out.ToString(); } }
        public bool HasExited => _p.HasExited;
        public int Id => _p.Id;
        public int ExitCode => _p.ExitCode;

        public bool WaitForExit(TimeSpan t)
        {
            if (_p.WaitForExit(t)) { _p.WaitForExit(); return true; }
            _p.Kill(entireProcessTree: true);
            _p.WaitForExit(5000);
            return false;
        }

        public void Dispose()
        {
            if (!_p.HasExited)
            {
                _p.Kill(entireProcessTree: true);
                _p.WaitForExit(10000);
            }
            _p.Dispose();
        }
    }
}
