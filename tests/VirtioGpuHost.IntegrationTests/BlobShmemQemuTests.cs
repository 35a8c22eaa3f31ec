using System.Diagnostics;
using System.Text;
using Microsoft.Extensions.Logging;
using VirtioGpuHost.Backend;
using VirtioGpuHost.Compositor;
using VirtioGpuHost.Compositor.Core.Geometry;
using VirtioGpuHost.Compositor.Core.Layout;
using VirtioGpuHost.Compositor.Outputs;
using VirtioGpuHost.Compositor.Rendering.Cpu;
using VirtioGpuHost.Device;
using VirtioGpuHost.Device.Display;
using VirtioGpuHost.Device.Wire;
using VirtioGpuHost.TestKit;

namespace VirtioGpuHost.IntegrationTests;

/// <summary>
/// Blob resources and host-visible shared memory with a real QEMU 11.1 and a real Linux 6.1
/// guest (tests/e2e/qemu11-blob-shmem): QEMU's generic `vhost-user-test-device-pci` poses as a
/// virtio-gpu (virtio-id 16), the guest's `blobtest` creates GUEST and HOST3D blobs, maps
/// HOST3D blobs through the shared-memory BAR (MAP_BLOB, which the back-end turns into
/// SHMEM_MAP), and scans them out as KMS framebuffers (SET_SCANOUT_BLOB + RESOURCE_FLUSH).
/// That device has no display of its own, so the compositor shows the pixels; the test checks
/// the composited zone pixel-exactly against blobtest's gradients, plus the guest's verdict.
/// </summary>
/// <remarks>
/// The tests never reboot a guest while a blob is mapped: QEMU 11.1.3 crashes on a VM reset
/// with a live mapping (see the recipe's README, "Reset").
/// </remarks>
public sealed class BlobShmemQemuTests(ITestOutputHelper output) : IDisposable
{
    private static string Recipe => Path.Combine(TestPaths.RepoRoot, "tests", "e2e", "qemu11-blob-shmem");
    private static string WorkDir => TestPaths.Qemu11WorkDir;
    private static string ArtifactsDir => Path.Combine(TestPaths.RepoRoot, "artifacts", "e2e", "qemu11-blob");

    /// <summary>Size of the host-visible region (shmid 1): QEMU 11.1 asserts it is a power of two.</summary>
    private const ulong HostVisibleSize = 64UL << 20;

    /// <summary>
    /// blobtest's arguments against our back-end: plain mode (no TEST protocol; after
    /// CONTEXT_INIT with capset 5, cross-domain, the guest checks that its writes to a mapped
    /// 1 MiB HOST3D blob read back), 8 mapped 64 KiB blobs at once, and the two blob
    /// framebuffers. QE11_BLOB_ARGS overrides them (e.g. "-x -k -c 0": no CONTEXT_INIT).
    /// </summary>
    private static string BlobArgs => Environment.GetEnvironmentVariable("QE11_BLOB_ARGS") ?? "-x -n 8 -k";

    private readonly string _sockets = Directory.CreateTempSubdirectory("vgh-q11-").FullName;

    public void Dispose()
    {
        try { Directory.Delete(_sockets, recursive: true); } catch (IOException) { }
    }

    /// <summary>
    /// blobtest.c's scanout picture, as the compositor outputs it (0xAARRGGBB): an XRGB gradient
    /// R = x*255/(W-1), G = y*255/(H-1), B = 0x40 for the GUEST blob or 0xc0 for the HOST3D blob.
    /// </summary>
    internal static uint Expected(uint blue, int x, int y, int w, int h) =>
        0xFF000000u | (uint)(x * 255 / (w - 1)) << 16 | (uint)(y * 255 / (h - 1)) << 8 | blue;

    private static readonly (string Kind, uint Blue)[] Pictures = [("guest", 0x40), ("host3d", 0xc0)];

    private static void RequireWorkDir()
    {
        var missing = new[] { "qemu11.env", "kernel.env", "initramfs-blob.cpio.gz" }
            .Where(f => !File.Exists(Path.Combine(WorkDir, f))).ToList();
        if (missing.Count > 0)
            Assert.Skip($"the qemu11-blob-shmem work directory {WorkDir} is not set up ({string.Join(", ", missing)} missing): " +
                "scripts/setup-deps.sh prepares it (QEMU 11.1 from trixie-backports, needs network once; see .cache/qe11-setup.log)");
    }

    // ---------------------------------------------------------------------------------------
    // The peer: the recipe's own Python back-end (vu_gpu_shmem.py), full default run.
    // ---------------------------------------------------------------------------------------

    /// <summary>
    /// Baseline: the recipe's reference back-end passes the full default run (`-u -n 8 -k`:
    /// host→guest and guest→host patterns, forced unmap, refused maps, 8 mappings, both blob
    /// framebuffers with matching CRCs on both sides), and the framebuffers it dumped are
    /// exactly the gradients <see cref="Expected"/> describes, the pictures our test looks for.
    /// </summary>
    [Fact]
    public void PythonReferenceBackend_Qemu11Guest_BlobsMappedAndScannedOut()
    {
        RequireWorkDir();
        if (!File.Exists("/usr/bin/python3")) Assert.Skip("python3 is not installed (scripts/setup-deps.sh installs it)");
        var dir = Path.Combine(ArtifactsDir, "python");
        var (code, stdout) = RunGuest(dir, new Dictionary<string, string> { ["TIMEOUT"] = "120" });
        var result = ReadResult(dir);
        output.WriteLine(stdout);
        output.WriteLine(result);
        Assert.True(code == 0, $"run.sh with vu_gpu_shmem.py exit {code} (artifacts in {dir}: result.txt, serial.log, backend.log, qemu.log):\n{stdout}\n{result}");
        Assert.Contains("status=PASS", result);
        Assert.Contains("blobtest=BLOBTEST PASS fails=0", result);
        Assert.Contains("+virgl -edid +resource_blob +host_visible +context_init", result);
        Assert.Matches(@"scanout_guest=match [0-9a-f]{8}", result);
        Assert.Matches(@"scanout_host3d=match [0-9a-f]{8}", result);

        // The back-end dumped both checked framebuffers (scanout0-res<N>.ppm, kind in its log).
        var log = File.ReadAllText(Path.Combine(dir, "backend.log"));
        foreach (var (kind, blue) in Pictures)
        {
            var m = System.Text.RegularExpressions.Regex.Match(log, $@"RESULT scanout_blob scanout=(\d+) res=(\d+) kind={kind} ");
            Assert.True(m.Success, $"backend.log has no RESULT scanout_blob for {kind}");
            var (w, h, rgb) = ReadPpm(Path.Combine(dir, $"scanout{m.Groups[1].Value}-res{m.Groups[2].Value}.ppm"));
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++)
                {
                    int i = (y * w + x) * 3;
                    uint got = 0xFF000000u | (uint)rgb[i] << 16 | (uint)rgb[i + 1] << 8 | rgb[i + 2];
                    uint want = Expected(blue, x, y, w, h);
                    if (got != want) Assert.Fail($"{kind} framebuffer of the reference back-end: pixel ({x},{y}) is {got:x8}, blobtest draws {want:x8}");
                }
        }
    }

    // ---------------------------------------------------------------------------------------
    // Our back-end, in-process, presenting to the compositor.
    // ---------------------------------------------------------------------------------------

    /// <summary>
    /// QEMU 11.1 + Linux 6.1 against our back-end with blob support, presenting to the
    /// compositor: the guest maps HOST3D blobs in the host-visible region, and both blob
    /// framebuffers appear pixel-exact in the VM's zone, the GUEST one first, then the HOST3D
    /// one (whose pixels the guest wrote through the BAR straight into our memory).
    /// </summary>
    [Fact]
    public void OurBackend_Qemu11Guest_BlobFramebuffersExactInTheComposedZone()
    {
        RequireWorkDir();

        var result = LayoutLoader.Load($$"""
            [[output]]
            name = "main"
            width = 1028
            height = 800

            [[zone]]
            name = "blob"
            output = "main"
            rect = [0, 0, 1028, 800]
            class = "critical"

            [[vm]]
            name = "blob"
            socket = "{{_sockets}}/blob.sock"
            label = "QEMU 11.1 BLOB GUEST"
            label_color = "#4A148C"
            class = "critical"
            frame_period_ms = 60000   # the guest draws two pictures and exits
            fallback = "color:#400000"

            [[placement]]
            vm = "blob"
            zone = "blob"
            """, "qemu11-blob.toml");
        Assert.True(result.Success, result.ToString());
        var layout = result.Layout!;
        var vm = layout.Vms[0];
        var zone = layout.ContentRect(layout.Zones[0]);
        Assert.Equal((1024, 768), (zone.Width, zone.Height)); // blobtest's framebuffers: the preferred mode, 3 MiB each

        Directory.CreateDirectory(ArtifactsDir);
        var runDir = Path.Combine(ArtifactsDir, "ours");
        var backendLog = Path.Combine(ArtifactsDir, "backend.log");
        var flushLog = Path.Combine(ArtifactsDir, "flushes.txt");
        foreach (var f in Directory.GetFiles(ArtifactsDir, "*.png")) File.Delete(f);

        var logs = new ListLoggerProvider();
        using var loggers = LoggerFactory.Create(b => b.AddProvider(logs).SetMinimumLevel(LogLevel.Debug));
        using var renderer = new CpuRenderer();
        var sw = Stopwatch.StartNew();
        Func<TimeSpan> clock = () => sw.Elapsed;
        var store = new SurfaceStore(clock);
        using var engine = new CompositorEngine(layout, renderer, store, clock, loggers.CreateLogger("VirtioGpuHost.Compositor"));
        var checker = new ZoneChecker(engine, "main", zone, ArtifactsDir);

        // The VM's device: what the compositor host would make (one scanout, the zone's
        // content as its mode) plus blobs, the VIRGL bit (the 6.1 driver allows HOST3D blobs
        // and CONTEXT_INIT only with it) and a host-visible region for MAP_BLOB.
        var modes = CompositorHost.DeviceOptionsFor(layout, vm);
        var options = new GpuDeviceOptions { Scanouts = modes.Scanouts, Modes = modes.Modes, Blob = true, VirglCompat = true };
        var server = new GpuBackendServer(options, loggers, vm.Name, device => checker.Attach(new CompositorDisplay(vm.Name, store)))
        {
            HostVisibleSize = HostVisibleSize,
        };
        server.DeviceClosed += _ => checker.Disconnected();
        using var cancel = new CancellationTokenSource();
        using var listening = new ManualResetEventSlim();
        Exception? serveFailure = null;
        var serveThread = new Thread(() =>
        {
            try { server.ServePath(vm.Socket, cancel.Token, listening.Set); }
            catch (Exception e) { serveFailure = e; listening.Set(); }
        }) { IsBackground = true, Name = "qemu11 blob vm" };
        serveThread.Start();
        Assert.True(listening.Wait(TimeSpan.FromSeconds(10)), "the back-end did not start listening");
        Assert.Null(serveFailure);

        int code;
        string stdout;
        try
        {
            (code, stdout) = RunGuest(runDir, new Dictionary<string, string>
            {
                // run.sh's "back-end" only links its socket path to ours (we serve in-process).
                ["BACKEND_CMD"] = $"ln -s '{vm.Socket}' \"$GPU_SOCK\" && exec sleep 600",
                ["BLOB_ARGS"] = BlobArgs,
                ["CONFIG_SIZE"] = Environment.GetEnvironmentVariable("QE11_CONFIG_SIZE") ?? "24", // the device's config space: 16 + padding
                ["NUM_VQS"] = "2",
                ["HOST_CRC"] = "skip", // the pixels are checked here, through the compositor
                ["TIMEOUT"] = "150",
            });
        }
        finally
        {
            cancel.Cancel();
            serveThread.Join(TimeSpan.FromSeconds(30));
            File.WriteAllLines(backendLog, logs.Lines.Select(l => $"{l.Level}: {l.Message}"));
            File.WriteAllText(flushLog, checker.Report());
        }
        var res = ReadResult(runDir);
        var serial = File.Exists(Path.Combine(runDir, "serial-e2e.txt")) ? File.ReadAllText(Path.Combine(runDir, "serial-e2e.txt")) : "";
        output.WriteLine(stdout);
        output.WriteLine(res);
        output.WriteLine(checker.Report());
        string where = $"artifacts: {runDir}/serial.log, serial-e2e.txt, result.txt, qemu.log; our back-end's log {backendLog}; " +
                       $"every flush and what the composed zone showed {flushLog}; composed frames {ArtifactsDir}/*.png";
        string warnings = string.Join("\n", logs.Warnings.Take(40));

        // The guest's own verdict.
        Assert.False(logs.Contains("refused GET_CONFIG offset 0 size 24"),
            "the device refused QEMU's GET_CONFIG of the whole 24-byte config space (config_size=24; " +
            "virtio_gpu_config is 16 bytes, the rest must read as zeros), so the guest saw num_scanouts 0; " + where);
        Assert.True(code == 0, $"run.sh exit {code} (0 pass, 1 blobtest failed, 3 back-end gone, 4 QEMU exited early, 5 timeout); {where}\n{stdout}\n{res}\nour warnings:\n{warnings}");
        Assert.Contains("blobtest=BLOBTEST PASS fails=0", res);
        Assert.Contains("+virgl", res);
        Assert.Contains("+resource_blob +host_visible", res);
        Assert.Contains("host_visible_window=", res);
        Assert.Matches(@"RESULT readback res=\d+ words=\d+ mismatches=0 ok", serial);
        if (BlobArgs.Contains("-n 8")) Assert.Matches(@"RESULT many_blobs mapped=8/8 correct=8", serial);
        foreach (var (kind, _) in Pictures)
            Assert.Matches($@"RESULT scanout_blob kind={kind} res=\d+ 1024x768 ", serial);

        // What the compositor showed: both pictures exact, the GUEST blob's first.
        Assert.True(checker.Failure is null, $"{checker.Failure}; {where}");
        Assert.True(checker.FirstExact.ContainsKey("guest"), $"the GUEST blob framebuffer never appeared pixel-exact in the zone; {where}\n{checker.Report()}\nour warnings:\n{warnings}");
        Assert.True(checker.FirstExact.ContainsKey("host3d"), $"the HOST3D blob framebuffer never appeared pixel-exact in the zone; {where}\n{checker.Report()}\nour warnings:\n{warnings}");
        Assert.True(checker.FirstExact["guest"] < checker.FirstExact["host3d"], $"the HOST3D picture came before the GUEST one; {where}");
        Assert.Equal(0, engine.SafetyFailures);
    }

    // ---------------------------------------------------------------------------------------

    /// <summary>Runs the vendored run.sh (one boot) into <paramref name="dir"/>; returns its exit code and output.</summary>
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
        if (!p.WaitForExit(TimeSpan.FromMinutes(4)))
        {
            p.Kill(entireProcessTree: true);
            p.WaitForExit();
            return (-1, $"run.sh did not finish within 4 minutes\n{so.Result}{se.Result}");
        }
        return (p.ExitCode, so.Result + se.Result);
    }

    private static string ReadResult(string dir)
    {
        var f = Path.Combine(dir, "result.txt");
        return File.Exists(f) ? File.ReadAllText(f) : $"(no {f})";
    }

    /// <summary>A binary PPM (P6, maxval 255).</summary>
    private static (int W, int H, byte[] Rgb) ReadPpm(string path)
    {
        var data = File.ReadAllBytes(path);
        int pos = 0;
        string Token()
        {
            while (pos < data.Length && (char.IsWhiteSpace((char)data[pos]) || data[pos] == '#'))
            {
                if (data[pos] == '#') while (pos < data.Length && data[pos] != '\n') pos++;
                else pos++;
            }
            int start = pos;
            while (pos < data.Length && !char.IsWhiteSpace((char)data[pos])) pos++;
            return Encoding.ASCII.GetString(data, start, pos - start);
        }
        Assert.Equal("P6", Token());
        int w = int.Parse(Token()), h = int.Parse(Token());
        Assert.Equal("255", Token());
        pos++; // the single whitespace before the pixels
        Assert.True(data.Length - pos >= w * h * 3, $"{path}: truncated");
        return (w, h, data.AsSpan(pos, w * h * 3).ToArray());
    }

    /// <summary>
    /// Sits between the device and its <see cref="CompositorDisplay"/>: after every flush it
    /// composes a frame (step mode: only this thread composes, while the guest waits for the
    /// flush's answer, so no picture can be missed) and records which of blobtest's pictures
    /// the zone shows pixel-exactly.
    /// </summary>
    private sealed class ZoneChecker(CompositorEngine engine, string outputName, RectI zone, string pngDir)
    {
        private readonly object _lock = new();
        private readonly StringBuilder _report = new();
        private CompositorDisplay? _display;

        public Dictionary<string, long> FirstExact { get; } = new();
        public string? Failure { get; private set; }

        public IGpuDisplay Attach(CompositorDisplay display)
        {
            lock (_lock)
            {
                _display?.Disconnected();
                _display = display;
            }
            return new Tap(this, display);
        }

        public void Disconnected()
        {
            lock (_lock) _display?.Disconnected();
        }

        public string Report()
        {
            lock (_lock) return _report.ToString();
        }

        private void Note(string line)
        {
            lock (_lock) _report.AppendLine(line);
        }

        private void AfterFlush(GpuSurface surface, VirtioGpuRect source)
        {
            // Compose on a worker so that a lock the device might hold across the display call
            // shows up as a clear failure instead of a hang.
            var compose = Task.Run(() =>
            {
                var report = engine.ComposeFrame();
                var pixels = ((HeadlessOutput)engine.Output(outputName)!).Snapshot();
                return (report.Frame, pixels);
            });
            if (!compose.Wait(TimeSpan.FromSeconds(20)))
            {
                Failure ??= "composing a frame during a flush did not finish within 20 s (a lock held across the display call?)";
                return;
            }
            var (frame, pixels) = compose.Result;
            int stride = ((HeadlessOutput)engine.Output(outputName)!).Size.Width;
            string seen = "other";
            string detail = "";
            uint first = pixels[zone.Y * stride + zone.X];
            foreach (var (kind, blue) in Pictures)
            {
                if ((first & 0xFF) != blue) continue;
                seen = kind + " (mismatch)";
                var bad = FirstMismatch(pixels, stride, blue);
                if (bad is null)
                {
                    seen = kind + " EXACT";
                    bool isNew;
                    lock (_lock) isNew = FirstExact.TryAdd(kind, frame);
                    if (isNew)
                    {
                        try { PngFile.Write(Path.Combine(pngDir, $"composited-{kind}.png"), new SizeI(stride, pixels.Length / stride), pixels); }
                        catch (IOException) { }
                    }
                }
                else
                {
                    detail = $" first mismatch at zone ({bad.Value.X},{bad.Value.Y}): {bad.Value.Got:x8}, want {bad.Value.Want:x8}";
                    try { PngFile.Write(Path.Combine(pngDir, $"mismatch-{kind}-frame{frame}.png"), new SizeI(stride, pixels.Length / stride), pixels); }
                    catch (IOException) { }
                }
            }
            Note($"frame {frame}: flush of a {surface.Width}x{surface.Height} {surface.Format} surface (stride {surface.Stride}), source {source.Width}x{source.Height}+{source.X}+{source.Y}; zone shows {seen}, pixel(0,0)={first:x8}{detail}");
        }

        private (int X, int Y, uint Got, uint Want)? FirstMismatch(uint[] pixels, int stride, uint blue)
        {
            for (int y = 0; y < zone.Height; y++)
                for (int x = 0; x < zone.Width; x++)
                {
                    uint got = pixels[(zone.Y + y) * stride + zone.X + x], want = Expected(blue, x, y, zone.Width, zone.Height);
                    if (got != want) return (x, y, got, want);
                }
            return null;
        }

        private sealed class Tap(ZoneChecker owner, CompositorDisplay inner) : IGpuDisplay
        {
            public bool OwnsOutputCount => inner.OwnsOutputCount;
            public Task<byte[]?>? QueryDisplayInfo() => inner.QueryDisplayInfo();
            public Task<byte[]?>? QueryEdid(uint scanoutId) => inner.QueryEdid(scanoutId);
            public bool IsBusy => inner.IsBusy;
            public void WhenIdle(Action resume) => inner.WhenIdle(resume);

            public void ScanoutChanged(uint scanoutId, GpuSurface? surface, VirtioGpuRect source)
            {
                inner.ScanoutChanged(scanoutId, surface, source);
                owner.Note(surface is null ? $"scanout {scanoutId} disabled" : $"scanout {scanoutId} now shows a {surface.Width}x{surface.Height} {surface.Format} surface, source {source.Width}x{source.Height}+{source.X}+{source.Y}");
            }

            public void ScanoutFlushed(uint scanoutId, GpuSurface surface, VirtioGpuRect source, VirtioGpuRect damage)
            {
                inner.ScanoutFlushed(scanoutId, surface, source, damage);
                try { owner.AfterFlush(surface, source); }
                catch (Exception e) { owner.Failure ??= $"checking a flush failed: {e}"; }
            }

            public void CursorChanged(uint scanoutId, uint x, uint y, uint hotX, uint hotY, ReadOnlySpan<byte> bgra) =>
                inner.CursorChanged(scanoutId, x, y, hotX, hotY, bgra);

            public void CursorMoved(uint scanoutId, uint x, uint y, bool visible) => inner.CursorMoved(scanoutId, x, y, visible);
        }
    }
}
