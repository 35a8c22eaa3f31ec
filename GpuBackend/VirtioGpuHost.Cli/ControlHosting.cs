using System.CommandLine;
using Microsoft.Extensions.Logging;
using VirtioGpuHost.Compositor;
using VirtioGpuHost.Compositor.Control;

namespace VirtioGpuHost.Cli;

/// <summary>The control API, viewer and metrics of `serve` and `demo` (see docs/control.md).</summary>
internal static class ControlHosting
{
    public static Option<string> ListenOption(string defaultValue) => new("--listen")
    {
        Description = $"Where the control API, viewer and /metrics listen: HOST:PORT (port 0: any free one) or unix:/path; loopback unless you name another address (default {defaultValue})",
        DefaultValueFactory = _ => defaultValue,
        HelpName = "ADDR",
    };

    public static Option<bool> NoControlOption() => new("--no-control") { Description = "Do not serve the control API, viewer and metrics" };

    /// <summary>Checks the address before anything starts (exit 1 on a malformed one).</summary>
    public static bool TryParse(string text, out ListenAddress address)
    {
        if (ListenAddress.TryParse(text, out address, out var error)) return true;
        Console.Error.WriteLine($"virtio-gpu-host: --listen {error}");
        return false;
    }

    /// <summary>
    /// Starts the control server on <paramref name="listen"/>. An address that cannot be bound is
    /// logged and the compositor goes on without it: the display matters more than its operator surface.
    /// </summary>
    public static ControlServer? Start(CompositorHost host, ListenAddress listen, ILoggerFactory loggers, bool printViewer, string source)
    {
        var log = loggers.CreateLogger("virtio-gpu-host");
        try
        {
            var server = ControlServer.StartAsync(host, listen, loggers, source).GetAwaiter().GetResult();
            if (printViewer)
            {
                Console.Out.WriteLine($"viewer: {server.Url}");
                Console.Out.Flush();
            }
            return server;
        }
        catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or InvalidOperationException or UnauthorizedAccessException)
        {
            log.LogError("control API: cannot listen on {Address}: {Error}; running without it", listen, e.Message);
            return null;
        }
    }
}
