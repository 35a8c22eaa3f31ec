using System.CommandLine;
using VirtioGpuHost.Device.Wire;
using VirtioGpuHost.FrontEnd;

namespace VirtioGpuHost.Cli;

/// <summary>
/// `virtio-gpu-host frontend`: the reference front-end as a tool. Connects to any
/// vhost-user-gpu back-end (ours or QEMU's), plays VMM and guest driver, draws a test
/// pattern on each scanout and saves what the display side received as PNG.
/// </summary>
internal static class FrontEndCommand
{
    public static Command Build()
    {
        var socket = new Option<string>("--socket", "-s") { Description = "The back-end's vhost-user socket", Required = true };
        var pattern = new Option<string>("--pattern") { Description = "bars or gradient", DefaultValueFactory = _ => "bars" };
        var size = new Option<string>("--size") { Description = "Framebuffer size WxH", DefaultValueFactory = _ => "1280x800" };
        var format = new Option<string>("--format") { Description = "virtio-gpu format name, e.g. B8G8R8X8Unorm", DefaultValueFactory = _ => nameof(VirtioGpuFormat.B8G8R8X8Unorm) };
        var scanouts = new Option<int>("--scanouts") { Description = "Scanouts to draw on (the display side's max_outputs)", DefaultValueFactory = _ => 1 };
        var png = new Option<string?>("--png") { Description = "Write scanout N's display to this path (N.png added for N > 0)" };
        var frames = new Option<int>("--frames") { Description = "Extra full-frame presents after the first", DefaultValueFactory = _ => 0 };
        var waylandProxy = new Option<string?>("--wayland-proxy")
        {
            Description = "Instead of drawing: play a guest's cross-domain Wayland proxy. Wayland clients that connect to this socket path reach the back-end's cross-domain contexts (capset 5), as a guest's would; runs until SIGINT/SIGTERM",
            HelpName = "SOCKET",
        };
        var hostVisible = new Option<int>("--host-visible-mib") { Description = "Size of the host-visible region the VMM offers (with --wayland-proxy; the back-end's must match)", DefaultValueFactory = _ => 64 };

        var cmd = new Command("frontend", "Reference front-end: play VMM + guest driver against a vhost-user-gpu back-end and check what it displays")
        {
            socket, pattern, size, format, scanouts, png, frames, waylandProxy, hostVisible,
        };
        cmd.SetAction(parse =>
        {
            if (parse.GetValue(waylandProxy) is string proxyPath) return RunWaylandProxy(parse.GetValue(socket)!, proxyPath, parse.GetValue(hostVisible));
            var mode = Device.OutputMode.Parse(parse.GetValue(size)!);
            if (!Enum.TryParse<VirtioGpuFormat>(parse.GetValue(format), out var fmt))
            {
                Console.Error.WriteLine($"unknown format; one of: {string.Join(", ", Enum.GetNames<VirtioGpuFormat>())}");
                return 1;
            }
            int heads = parse.GetValue(scanouts);
            var options = new GpuVmOptions
            {
                RamSize = Math.Max(64UL << 20, (ulong)mode.Width * mode.Height * 4 * (ulong)heads * 3),
                Display = new DisplayServerOptions { MaxOutputs = heads, EnabledHeads = heads, Width = mode.Width, Height = mode.Height },
            };
            using var vm = GpuVm.Connect(parse.GetValue(socket)!, options);
            if (!vm.WaitForDisplayReady(TimeSpan.FromSeconds(10)))
            {
                Console.Error.WriteLine("the back-end never negotiated the display socket");
                return 1;
            }
            var d = vm.Driver;
            var info = GpuDriver.ParseDisplayInfo(GpuDriver.Expect(d.GetDisplayInfo(), "GET_DISPLAY_INFO"));
            Console.WriteLine($"display info: {string.Join(", ", info.Take(heads).Select((m, i) => $"#{i} {m.Rect} enabled={m.Enabled}"))}");
            var fbs = new List<FrameBuffer>();
            for (uint h = 0; h < heads; h++)
            {
                var fb = FrameBuffer.Allocate(vm.Ram, mode.Width, mode.Height, fmt, scattered: true);
                fb.Fill(TestPatterns.Get(parse.GetValue(pattern)!, mode.Width, mode.Height, h));
                d.SetUpFrameBuffer(h + 1, fb, h);
                fbs.Add(fb);
            }
            long before = vm.Display!.UpdateCount;
            int presents = (parse.GetValue(frames) + 1) * heads;
            var sw = System.Diagnostics.Stopwatch.StartNew();
            for (int f = 0; f <= parse.GetValue(frames); f++)
                for (uint h = 0; h < heads; h++) d.Present(h + 1, fbs[(int)h], new VirtioGpuRect(0, 0, mode.Width, mode.Height));
            // Every flush makes at least one UPDATE; wait until the display has them all.
            if (!vm.Display.WaitFor(x => x.UpdateCount >= before + presents, TimeSpan.FromSeconds(10)))
            {
                Console.Error.WriteLine($"the display received {vm.Display.UpdateCount - before} of {presents} updates");
                return 1;
            }
            Console.WriteLine($"presented {(parse.GetValue(frames) + 1) * heads} frames in {sw.Elapsed.TotalMilliseconds:F1} ms; display received {vm.Display.UpdateCount} updates");
            if (parse.GetValue(png) is string path)
            {
                for (uint h = 0; h < heads; h++)
                {
                    var snap = vm.Display.Snapshot(h);
                    if (snap is null) { Console.Error.WriteLine($"scanout {h} is disabled on the display"); return 1; }
                    string p = h == 0 ? path : Path.ChangeExtension(path, null) + $"-{h}.png";
                    PngWriter.Write(p, snap.Value.Width, snap.Value.Height, snap.Value.Pixels);
                    Console.WriteLine($"wrote {p}");
                }
            }
            return 0;
        });
        return cmd;
    }

    /// <summary>The guest side of cross-domain Wayland (what sommelier does in a guest) over the reference front-end.</summary>
    private static int RunWaylandProxy(string socket, string proxyPath, int hostVisibleMiB)
    {
        using var cancel = new CancellationTokenSource();
        using var sigterm = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGTERM, c => { c.Cancel = true; cancel.Cancel(); });
        using var sigint = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGINT, c => { c.Cancel = true; cancel.Cancel(); });
        using var vm = GpuVm.Connect(socket, new GpuVmOptions { RamSize = 64UL << 20, Blob = true, HostVisibleSize = (ulong)hostVisibleMiB << 20 });
        using var proxy = new FrontEnd.CrossDomain.WaylandGuestProxy(vm, proxyPath);
        Console.WriteLine($"wayland proxy: clients of {proxyPath} go through cross-domain contexts of {socket}");
        cancel.Token.WaitHandle.WaitOne();
        Console.WriteLine($"wayland proxy: {proxy.ClientsAccepted} clients, {proxy.Sends} SENDs, {proxy.Receives} RECEIVEs, {proxy.PoolBytesCopied} pool bytes copied");
        return 0;
    }
}
