using System.CommandLine;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;
using VirtioGpuHost.Compositor;
using VirtioGpuHost.Compositor.Core.Layout;
using VirtioGpuHost.FrontEnd.Guests;

namespace VirtioGpuHost.Cli;

/// <summary>
/// `virtio-gpu-host demo`: the compositor with the shipped head-unit layout and four guests
/// driven by the reference front-end through the real device path (vhost-user socket, guest
/// RAM, virtqueues): an animated cluster (critical), an infotainment screen (normal), an app VM
/// that floods and then freezes (untrusted: the watchdog takes its zone over), and a rear
/// camera that preempts the infotainment zone now and then. Needs nothing else running.
/// With --qemu the four VMs are real Linux guests in QEMU 10 (<see cref="DemoQemuGuests"/>).
/// </summary>
internal static class DemoCommand
{
    public static Command Build()
    {
        var output = new Option<string>("--out") { Description = "Where snapshots (main.png) go", DefaultValueFactory = _ => "demo-out", HelpName = "DIR" };
        var duration = new Option<double>("--duration") { Description = "Seconds to run (0: until Ctrl-C)", DefaultValueFactory = _ => 0 };
        var interval = new Option<double>("--snapshot-interval") { Description = "Seconds between snapshots", DefaultValueFactory = _ => 1 };
        var floodFor = new Option<double>("--flood-for") { Description = "Seconds the app VM floods (with --qemu: draws at 60 fps) before it freezes", DefaultValueFactory = _ => 4 };
        var verbose = new Option<bool>("--verbose", "-v") { Description = "Log every vhost-user message and device event" };
        var listen = ControlHosting.ListenOption("127.0.0.1:0");
        var qemu = new Option<bool>("--qemu") { Description = "Boot real Linux guests in QEMU 10 (tests/e2e/qemu-guest-e2e, set up by scripts/setup-deps.sh) instead of the simulated ones" };
        var rendererOpt = RendererWiring.RendererOption();
        var windowOpt = RendererWiring.WindowOption();
        var cmd = new Command("demo", "Run the compositor with four simulated VMs (cluster, infotainment, a flooding-then-freezing app, a rear camera)")
        {
            output, duration, interval, floodFor, verbose, listen, qemu, rendererOpt, windowOpt,
        };
        cmd.SetAction(parse =>
        {
            string dir = Path.Combine(Path.GetTempPath(), $"virtio-gpu-host-demo-{Environment.ProcessId}");
            var layout = DemoLayout(dir);
            if (parse.GetValue(qemu)) layout = DemoQemuGuests.Adapt(layout);
            using var loggers = Logging.Create(parse.GetValue(verbose));
            var log = loggers.CreateLogger("demo");
            using var cancel = new CancellationTokenSource();
            using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; cancel.Cancel(); });
            using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => { c.Cancel = true; cancel.Cancel(); });
            double seconds = parse.GetValue(duration);
            if (seconds > 0) cancel.CancelAfter(TimeSpan.FromSeconds(seconds));
            string outDir = Path.GetFullPath(parse.GetValue(output)!);
            var guests = new List<GuestAnimation>();
            if (!ControlHosting.TryParse(parse.GetValue(listen)!, out var listenAt)) return 1;
            string recipe = "", workDir = "";
            if (parse.GetValue(qemu) && !DemoQemuGuests.TryFindRecipe(out recipe, out workDir, out var qemuError))
            {
                Console.Error.WriteLine($"virtio-gpu-host demo --qemu: {qemuError}");
                return 1;
            }
            DemoQemuGuests? qemuGuests = null;
            var runner = new CompositorRunner(layout, loggers, outDir, TimeSpan.FromSeconds(parse.GetValue(interval)), reloadPath: null)
            {
                StatusInterval = TimeSpan.FromSeconds(2),
                Renderer = parse.GetValue(rendererOpt),
                Window = parse.GetValue(windowOpt),
                Control = host => ControlHosting.Start(host, listenAt, loggers, printViewer: true, source: "headunit.toml (demo)"),
            };
            int rc;
            try
            {
                rc = runner.Run(cancel.Token, host =>
                {
                    if (parse.GetValue(qemu))
                    {
                        qemuGuests = DemoQemuGuests.Start(host, recipe, workDir, dir, outDir, parse.GetValue(floodFor), log);
                        log.LogInformation("demo: {Count} Linux guests booting in QEMU 10 (TCG: about 10 s); snapshots every {Interval} s in {Dir}/main.png",
                            layout.Vms.Count, parse.GetValue(interval), outDir);
                        return;
                    }
                    var flood = TimeSpan.FromSeconds(parse.GetValue(floodFor));
                    guests.Add(Guest(layout, "cluster", new ClusterScene()));
                    guests.Add(Guest(layout, "ivi", new InfotainmentScene()));
                    guests.Add(Guest(layout, "apps", new FloodThenFreezeScene(flood)));
                    guests.Add(Guest(layout, "camera", new CameraScene()));
                    log.LogInformation("demo: 4 guests started; snapshots every {Interval} s in {Dir}/main.png; the app VM floods for {Flood} s, then freezes", parse.GetValue(interval), outDir, flood.TotalSeconds);
                }, onStopping: StopGuests);
            }
            finally
            {
                StopGuests();
                try { Directory.Delete(dir, recursive: true); } catch (IOException) { }
            }
            return rc;

            // The guests go first, while their devices are still served: a guest never sees its
            // back-end vanish under a request (which it would report as a failure).
            void StopGuests()
            {
                qemuGuests?.Dispose();
                qemuGuests = null;
                foreach (var g in guests)
                {
                    if (g.Error is not null) log.LogError("guest failed: {Error}", g.Error);
                    g.Dispose();
                }
                guests.Clear();
            }
        });
        return cmd;
    }

    private static GuestAnimation Guest(LayoutConfig layout, string vm, IGuestScene scene) =>
        GuestAnimation.Start(layout.Vm(vm)!.Socket, scene, new GuestAnimationOptions { Name = vm });

    /// <summary>The shipped head-unit layout (examples/headunit.toml, embedded) with its sockets moved into <paramref name="dir"/>.</summary>
    public static LayoutConfig DemoLayout(string dir)
    {
        using var stream = typeof(DemoCommand).Assembly.GetManifestResourceStream("headunit.toml")
            ?? throw new InvalidOperationException("the embedded demo layout is missing");
        var text = new StreamReader(stream).ReadToEnd();
        var result = LayoutLoader.Load(text, "headunit.toml (embedded)");
        var layout = result.Layout ?? throw new InvalidOperationException(result.ToString());
        return layout with { Vms = layout.Vms.Select(v => v with { Socket = Path.Combine(dir, v.Name + ".sock") }).ToList() };
    }
}
