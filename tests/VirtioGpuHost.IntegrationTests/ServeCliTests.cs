using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;
using VirtioGpuHost.Compositor.Outputs;
using VirtioGpuHost.Device.Wire;
using VirtioGpuHost.FrontEnd.Guests;
using VirtioGpuHost.TestKit;

namespace VirtioGpuHost.IntegrationTests;

/// <summary>`virtio-gpu-host serve` and `demo` as users run them: a process, signals, files.</summary>
public sealed class ServeCliTests : IDisposable
{
    [DllImport("libc", SetLastError = true)]
    private static extern int kill(int pid, int sig);
    private const int SIGHUP = 1, SIGUSR1 = 10;

    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private string Layout(bool swapped) => $$"""
        [layout]
        label_height = 20
        border_width = 2

        [[output]]
        name = "main"
        width = 400
        height = 200

        [[zone]]
        name = "a"
        output = "main"
        rect = [{{(swapped ? 200 : 0)}}, 0, 200, 200]
        class = "critical"

        [[zone]]
        name = "b"
        output = "main"
        rect = [{{(swapped ? 0 : 200)}}, 0, 200, 200]
        class = "normal"

        [[vm]]
        name = "one"
        socket = "{{_dir.Path}}/one.sock"
        label = "ONE"
        label_color = "#0D47A1"
        class = "critical"
        frame_period_ms = 60000

        [[vm]]
        name = "two"
        socket = "{{_dir.Path}}/two.sock"
        label = "TWO"
        label_color = "#1B5E20"
        class = "normal"
        frame_period_ms = 60000

        [[placement]]
        vm = "one"
        zone = "a"

        [[placement]]
        vm = "two"
        zone = "b"
        """;

    private sealed class Server : IDisposable
    {
        private readonly StringBuilder _log = new();
        public Process Process { get; }

        public Server(params string[] args)
        {
            var psi = new ProcessStartInfo("dotnet") { ArgumentList = { TestPaths.OurBackend }, RedirectStandardError = true, RedirectStandardOutput = true };
            foreach (var a in args) psi.ArgumentList.Add(a);
            Process = Process.Start(psi)!;
            Process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (_log) _log.AppendLine(e.Data); };
            Process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (_log) _log.AppendLine(e.Data); };
            Process.BeginErrorReadLine();
            Process.BeginOutputReadLine();
        }

        public string Log { get { lock (_log) return _log.ToString(); } }

        /// <summary>Waits for the exit and for all its output (the timed wait alone does not drain the readers).</summary>
        public bool WaitForExit(TimeSpan timeout)
        {
            if (!Process.WaitForExit(timeout)) return false;
            Process.WaitForExit();
            return true;
        }

        public bool WaitForLog(string text, TimeSpan timeout)
        {
            var sw = Stopwatch.StartNew();
            while (sw.Elapsed < timeout)
            {
                if (Log.Contains(text, StringComparison.Ordinal)) return true;
                if (Process.HasExited) return Log.Contains(text, StringComparison.Ordinal);
                Thread.Sleep(20);
            }
            return false;
        }

        public void Dispose()
        {
            if (!Process.HasExited)
            {
                kill(Process.Id, 15);
                if (!Process.WaitForExit(TimeSpan.FromSeconds(20))) Process.Kill(true);
            }
            Process.Dispose();
        }
    }

    private sealed class SolidScene(uint color) : IGuestScene
    {
        public TimeSpan FrameInterval => TimeSpan.FromMilliseconds(50);

        public VirtioGpuRect? Paint(Span<uint> pixels, int width, int height, long frame, TimeSpan elapsed)
        {
            if (frame == 0) pixels.Fill(color);
            return new VirtioGpuRect(0, 0, (uint)width, (uint)height);
        }
    }

    /// <summary>Asks for snapshots (SIGUSR1) until <paramref name="check"/> accepts one.</summary>
    private static bool SnapshotUntil(Server server, string png, Func<uint[], bool> check, int width = 400)
    {
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < TimeSpan.FromSeconds(20))
        {
            kill(server.Process.Id, SIGUSR1);
            Thread.Sleep(100);
            if (File.Exists(png))
            {
                try
                {
                    var (size, pixels) = PngFile.Read(png);
                    if (size.Width == width && check(pixels)) return true;
                }
                catch (IOException) { }
            }
        }
        return false;
    }

    [Fact]
    public void Serve_BadLayout_ExitsWithEveryErrorNamingLineAndField()
    {
        var path = _dir.File("bad.toml");
        File.WriteAllText(path, Layout(false).Replace("rect = [0, 0, 200, 200]", "rect = [0, 0, 0, 200]").Replace("class = \"normal\"", "class = \"norml\""));
        using var server = new Server("serve", "--config", path);
        Assert.True(server.WaitForExit(TimeSpan.FromSeconds(60)));
        Assert.Equal(1, server.Process.ExitCode);
        Assert.Contains("bad.toml:13:", server.Log); // the rect line of zone "a"
        Assert.Contains("bad.toml:20: zone \"b\": class must be \"critical\", \"normal\" or \"untrusted\", got \"norml\" (did you mean \"normal\"?)", server.Log);
        Assert.Contains("zone \"a\": rect width must be > 0", server.Log);
        Assert.Contains("nothing started", server.Log);
    }

    [Fact]
    public void Serve_Check_ValidatesWithoutStarting()
    {
        var path = _dir.File("ok.toml");
        File.WriteAllText(path, Layout(false));
        using var server = new Server("serve", "--config", path, "--check");
        Assert.True(server.WaitForExit(TimeSpan.FromSeconds(60)));
        Assert.Equal(0, server.Process.ExitCode);
        Assert.Contains("ok (1 outputs, 2 zones, 2 VMs, 2 placements)", server.Log);
        Assert.False(File.Exists(_dir.File("one.sock")));
    }

    [Fact]
    public void Serve_TwoVms_SnapshotOnSigusr1_SighupReloadsAtomically_RejectedFileKeepsTheLayout()
    {
        var path = _dir.File("layout.toml");
        var snaps = _dir.File("snaps");
        File.WriteAllText(path, Layout(swapped: false));
        using var server = new Server("serve", "--config", path, "--snapshot-dir", snaps);
        Assert.True(server.WaitForLog("vm \"two\" (normal): listening", TimeSpan.FromSeconds(60)), server.Log);
        using var one = GuestAnimation.Start(_dir.File("one.sock"), new SolidScene(0xFFD50000), new() { Name = "one" });
        using var two = GuestAnimation.Start(_dir.File("two.sock"), new SolidScene(0xFF00C853), new() { Name = "two" });
        Assert.True(one.WaitStarted(TimeSpan.FromSeconds(20)), one.Error);
        Assert.True(two.WaitStarted(TimeSpan.FromSeconds(20)), two.Error);
        Assert.Equal((196u, 176u), one.Mode);
        string png = Path.Combine(snaps, "main.png");
        static uint At(uint[] p, int x, int y) => p[y * 400 + x];

        Assert.True(SnapshotUntil(server, png, p => At(p, 100, 100) == 0xFFD50000 && At(p, 300, 100) == 0xFF00C853), $"no snapshot with ONE left, TWO right:\n{server.Log}");

        File.WriteAllText(path, Layout(swapped: true));
        kill(server.Process.Id, SIGHUP);
        Assert.True(server.WaitForLog("layout reloaded", TimeSpan.FromSeconds(20)), server.Log);
        Assert.True(SnapshotUntil(server, png, p => At(p, 300, 100) == 0xFFD50000 && At(p, 100, 100) == 0xFF00C853), $"the reload did not swap the zones:\n{server.Log}");

        File.WriteAllText(path, Layout(swapped: false).Replace("width = 400", "width = -4"));
        kill(server.Process.Id, SIGHUP);
        Assert.True(server.WaitForLog("rejected", TimeSpan.FromSeconds(20)), server.Log);
        Assert.Contains("layout.toml:7:", server.Log); // the output's width line
        File.Delete(png);
        Assert.True(SnapshotUntil(server, png, p => At(p, 300, 100) == 0xFFD50000 && At(p, 100, 100) == 0xFF00C853), "a rejected file changed the running layout");
        Assert.False(server.Process.HasExited);
    }

    /// <summary>
    /// `serve` with Wayland as users run it: weston-simple-shm straight on VM one's
    /// wayland_socket, and another inside "VM two" behind `frontend --wayland-proxy` (the guest's
    /// proxy over cross-domain); both windows show in their VMs' zones in a SIGUSR1 snapshot.
    /// </summary>
    [Fact]
    public void Serve_WaylandClients_DirectAndThroughFrontendProxy_ShowInTheirZones()
    {
        string shm = WaylandClientProcess.Require("weston-simple-shm");
        var path = _dir.File("wayland.toml");
        var snaps = _dir.File("snaps");
        File.WriteAllText(path, $$"""
            [layout]
            label_height = 20
            border_width = 2

            [[output]]
            name = "main"
            width = 600
            height = 300

            [[zone]]
            name = "a"
            output = "main"
            rect = [0, 0, 300, 300]
            class = "normal"

            [[zone]]
            name = "b"
            output = "main"
            rect = [300, 0, 300, 300]
            class = "untrusted"

            [[vm]]
            name = "one"
            socket = "{{_dir.Path}}/one.sock"
            wayland_socket = "{{_dir.Path}}/one-wayland"
            label = "ONE"
            label_color = "#0D47A1"
            class = "normal"
            frame_period_ms = 60000

            [[vm]]
            name = "two"
            socket = "{{_dir.Path}}/two.sock"
            label = "TWO"
            label_color = "#1B5E20"
            class = "untrusted"
            frame_period_ms = 60000
            host_visible_mib = 16

            [[placement]]
            vm = "one"
            app_id = "*simple-shm"
            zone = "a"
            scale = "none"

            [[placement]]
            vm = "two"
            app_id = "*simple-shm"
            zone = "b"
            scale = "none"
            """);
        using var server = new Server("serve", "--config", path, "--snapshot-dir", snaps, "--no-control");
        Assert.True(server.WaitForLog("Wayland clients on", TimeSpan.FromSeconds(60)), server.Log);
        Assert.True(SpinWait.SpinUntil(() => File.Exists(_dir.File("two.sock")), TimeSpan.FromSeconds(60)), server.Log);
        string guestSocket = _dir.File("guest-wayland");
        using var proxy = new Server("frontend", "-s", _dir.File("two.sock"), "--wayland-proxy", guestSocket, "--host-visible-mib", "16");
        Assert.True(proxy.WaitForLog("wayland proxy: clients of", TimeSpan.FromSeconds(60)), proxy.Log);
        using var direct = WaylandClientProcess.Start(shm, "", _dir.File("one-wayland"));
        using var viaGuest = WaylandClientProcess.Start(shm, "", guestSocket);

        // A 250x250 simple-shm window, centred 1:1 in a 296x276 content rect at (zone.x + 2, 22):
        // its 20-px padding is white, its outer ring coloured, the content around it the background.
        static bool ShowsSimpleShm(uint[] p, int zoneX)
        {
            int wx = zoneX + 2 + (296 - 250) / 2, wy = 22 + (276 - 250) / 2;
            uint At(int x, int y) => p[y * 600 + x];
            return At(wx + 5, wy + 5) == 0xFFFFFFFF && At(wx + 244, wy + 244) == 0xFFFFFFFF
                && At(wx + 30, wy + 125) is not (0xFFFFFFFF or 0xFF000000)
                && At(wx - 3, wy + 100) == 0xFF000000;
        }
        string png = Path.Combine(snaps, "main.png");
        Assert.True(SnapshotUntil(server, png, p => ShowsSimpleShm(p, 0) && ShowsSimpleShm(p, 300), 600),
            $"no snapshot with both simple-shm windows:\n{server.Log}\nproxy:\n{proxy.Log}\nclients:\n{direct.Output}\n{viaGuest.Output}");
        Assert.False(direct.HasExited, direct.Output);
        Assert.False(viaGuest.HasExited, viaGuest.Output);
    }

    [Fact]
    public void Serve_TwoVms_EveryLineOfAVmsConnectionAndDeviceCarriesItsName()
    {
        var path = _dir.File("layout.toml");
        File.WriteAllText(path, Layout(swapped: false));
        using var server = new Server("serve", "--config", path, "--no-control", "--verbose");
        Assert.True(server.WaitForLog("vm \"two\" (normal): listening", TimeSpan.FromSeconds(60)), server.Log);
        using (var one = GuestAnimation.Start(_dir.File("one.sock"), new SolidScene(0xFFD50000), new() { Name = "one" }))
        using (var two = GuestAnimation.Start(_dir.File("two.sock"), new SolidScene(0xFF00C853), new() { Name = "two" }))
        {
            Assert.True(one.WaitStarted(TimeSpan.FromSeconds(20)), one.Error);
            Assert.True(two.WaitStarted(TimeSpan.FromSeconds(20)), two.Error);
            Assert.True(server.WaitForLog("[vm=two] watchdog: vm \"two\": NoSignal -> Live", TimeSpan.FromSeconds(20)), server.Log);
        }
        Assert.True(server.WaitForLog("two #1: connection closed", TimeSpan.FromSeconds(20)), server.Log);
        Assert.True(server.WaitForLog("one #1: connection closed", TimeSpan.FromSeconds(20)), server.Log);

        // "HH:mm:ss.fff level: Category[id] [vm=NAME] message", one line per event.
        var line = new System.Text.RegularExpressions.Regex(@"^\d\d:\d\d:\d\d\.\d{3} (\w{4}): (\S+)\[\d+\]( \[vm=(\w+)\])? (.*)$");
        var counts = new Dictionary<string, int> { ["one"] = 0, ["two"] = 0 };
        foreach (var text in server.Log.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var m = line.Match(text.TrimEnd('\r'));
            Assert.True(m.Success, $"not one line per event: \"{text}\"");
            string category = m.Groups[2].Value, vm = m.Groups[4].Value, message = m.Groups[5].Value;
            // The device, vhost-user and back-end lines all come from a VM's connection or listener.
            bool deviceSide = category is "VirtioGpuHost.Backend" or "VirtioGpuHost.VhostUser" or "VirtioGpuHost.Gpu" || category.StartsWith("VirtioGpuHost.Device", StringComparison.Ordinal);
            if (deviceSide) Assert.True(vm.Length > 0, $"a device line without its VM: \"{text}\"");
            foreach (var name in counts.Keys)
            {
                bool about = message.StartsWith(name + " #", StringComparison.Ordinal) || message.Contains($"vm \"{name}\"", StringComparison.Ordinal) || message.Contains($"/{name}.sock", StringComparison.Ordinal);
                if (!about || (vm.Length == 0 && category == "virtio-gpu-host")) continue; // the runner's own summary lines name the VM in their text
                Assert.True(vm == name, $"a line about vm {name} carries [vm={vm}]: \"{text}\"");
                counts[name]++;
            }
        }
        // Each VM: listening, connected, the vhost-user setup, its device, the watchdog, closed.
        Assert.True(counts.Values.All(c => c >= 10), string.Join(", ", counts) + "\n" + server.Log);
        Assert.Contains("[vm=one] one #1: front-end connected", server.Log);
        Assert.Contains("[vm=two] two #1: front-end connected", server.Log);
    }

    [Fact]
    public void Demo_RunsFourVmsForAWhile_WritesSnapshots_AndTheWatchdogCatchesTheFreezingApp()
    {
        var outDir = _dir.File("demo");
        using var demo = new Server("demo", "--duration", "8", "--flood-for", "1.5", "--out", outDir);
        Assert.True(demo.WaitForExit(TimeSpan.FromSeconds(120)), demo.Log);
        Assert.True(demo.Process.ExitCode == 0, demo.Log);
        Assert.Contains("vm \"apps\": Live -> Stale", demo.Log);
        Assert.Contains("vm \"cluster\": NoSignal -> Live", demo.Log);
        Assert.Contains("vm \"ivi\": NoSignal -> Live", demo.Log);
        Assert.DoesNotContain("safety check failed", demo.Log);
        Assert.DoesNotContain("guest failed", demo.Log);
        var (size, pixels) = PngFile.Read(Path.Combine(outDir, "main.png"));
        Assert.Equal((2560, 1080), (size.Width, size.Height));
        // The frozen app's zone shows its placeholder (#202020) by the end.
        Assert.Equal(0xFF202020u, pixels[900 * 2560 + 1920]);
    }
}
