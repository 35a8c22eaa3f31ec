using System.CommandLine;
using System.Runtime.InteropServices;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using VirtioGpuHost.Backend;
using VirtioGpuHost.Device;
using VirtioGpuHost.Interop;

namespace VirtioGpuHost.Cli;

/// <summary>
/// The command line. With no subcommand it is a drop-in for QEMU's
/// /usr/lib/qemu/vhost-user-gpu: -s/--socket-path, -f/--fd, -c/--print-capabilities.
/// </summary>
internal static class CommandLine
{
    public static RootCommand Build()
    {
        var socketPath = new Option<string?>("--socket-path", "-s") { Description = "Listen on this Unix socket path (QEMU connects to it)", HelpName = "PATH" };
        var fd = new Option<int?>("--fd", "-f") { Description = "Serve an inherited socket fd (connected, or listening)", HelpName = "FDNUM" };
        var printCaps = new Option<bool>("--print-capabilities", "-c") { Description = "Print the capabilities JSON that libvirt reads, and exit" };
        var verbose = new Option<bool>("--verbose", "-v") { Description = "Log every vhost-user message and device event" };
        var scanouts = new Option<int>("--scanouts") { Description = "Scanouts in the config space when no display socket decides (1-16)", DefaultValueFactory = _ => 1 };
        var modes = new Option<string[]>("--mode") { Description = "Mode per scanout when the device answers display queries itself, e.g. 1920x1080@60 (repeat per scanout)", AllowMultipleArgumentsPerToken = true };
        var noEdid = new Option<bool>("--no-edid") { Description = "Do not offer VIRTIO_GPU_F_EDID" };
        var maxHostMem = new Option<ulong>("--max-hostmem") { Description = "Host memory a guest may allocate for resources, in MiB", DefaultValueFactory = _ => 256 };
        var virgl = new Option<bool>("--virgl") { Description = "Not supported (3D)", Hidden = true };
        var renderNode = new Option<string?>("--render-node", "-r") { Description = "Not supported (no DRM render node is used)", Hidden = true };

        var root = new RootCommand("VirtioGpuHost: a vhost-user-gpu back-end and compositing display server for several VMs.")
        {
            socketPath, fd, printCaps, verbose, scanouts, modes, noEdid, maxHostMem, virgl, renderNode,
        };
        root.Subcommands.Add(ServeCommand.Build());
        root.Subcommands.Add(DemoCommand.Build());
        root.Subcommands.Add(FrontEndCommand.Build());
        root.Subcommands.Add(BenchCommand.Build());
        root.Subcommands.Add(CtlCommand.Build());

        root.SetAction(parse =>
        {
            if (parse.GetValue(printCaps))
            {
                Console.WriteLine(Capabilities());
                return 0;
            }
            if (parse.GetValue(virgl) || parse.GetValue(renderNode) is not null)
            {
                Console.Error.WriteLine("virtio-gpu-host: --virgl and --render-node are not supported: this back-end has no 3D; see --print-capabilities");
                return 1;
            }
            string? path = parse.GetValue(socketPath);
            int? fdNum = parse.GetValue(fd);
            if ((path is null) == (fdNum is null))
            {
                Console.Error.WriteLine("virtio-gpu-host: please specify either --fd or --socket-path");
                return 1;
            }
            GpuDeviceOptions options;
            try
            {
                options = new GpuDeviceOptions
                {
                    Scanouts = parse.GetValue(scanouts),
                    Modes = (parse.GetValue(modes) ?? []).Select(OutputMode.Parse).DefaultIfEmpty(new OutputMode(1280, 800)).ToArray(),
                    Edid = !parse.GetValue(noEdid),
                    MaxHostMemory = checked(parse.GetValue(maxHostMem) << 20),
                };
                options.Validate();
            }
            catch (Exception e) when (e is FormatException or ArgumentException or OverflowException)
            {
                Console.Error.WriteLine($"virtio-gpu-host: {e.Message}");
                return 1;
            }
            return Serve(options, path, fdNum, parse.GetValue(verbose));
        });
        return root;
    }

    /// <summary>The libvirt capabilities document: only what is real (no virgl, no render node).</summary>
    public static string Capabilities() =>
        JsonSerializer.Serialize(new { type = "gpu", features = Array.Empty<string>() }, new JsonSerializerOptions { WriteIndented = true });

    private static int Serve(GpuDeviceOptions options, string? path, int? fdNum, bool verbose)
    {
        if (!BitConverter.IsLittleEndian)
        {
            Console.Error.WriteLine("virtio-gpu-host: only little-endian hosts are supported");
            return 1;
        }
        using var loggers = Logging.Create(verbose);
        var log = loggers.CreateLogger("virtio-gpu-host");
        using var cancel = new CancellationTokenSource();
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; cancel.Cancel(); });
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => { c.Cancel = true; cancel.Cancel(); });
        var server = new GpuBackendServer(options, loggers);
        try
        {
            if (path is not null) server.ServePath(path, cancel.Token);
            else server.ServeFd(FdHandle.Adopt(fdNum!.Value), cancel.Token);
            return 0;
        }
        catch (Exception e) when (e is IOException or ArgumentException)
        {
            log.LogCritical("{Error}", e.Message);
            return 1;
        }
    }
}
