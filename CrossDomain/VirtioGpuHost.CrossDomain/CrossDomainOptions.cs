using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using VirtioGpuHost.Interop;

namespace VirtioGpuHost.CrossDomain;

/// <summary>
/// Where a cross-domain context's Wayland channel goes (one new connection per INIT with
/// channel_type Wayland): our built-in Wayland server (<see cref="OpenChannel"/>, e.g.
/// <c>() =&gt; server.ConnectInProcess(vmName)</c>) or an external host compositor's socket
/// (<see cref="WaylandSocketPath"/>, what crosvm's <c>--wayland-sock</c> does).
/// <see cref="OpenChannel"/> wins when both are set.
/// </summary>
public sealed class CrossDomainOptions
{
    /// <summary>Opens a connected stream socket to a Wayland server for this VM (null: refused).</summary>
    public Func<Socket?>? OpenChannel { get; init; }

    /// <summary>Path of a host Wayland socket to connect to (e.g. $XDG_RUNTIME_DIR/wayland-0).</summary>
    public string? WaylandSocketPath { get; init; }

    /// <summary>
    /// Largest number of items (image requirements, received fds, pipes) one context may hold:
    /// a guest that never uses what it asks for cannot grow the host's tables without bound.
    /// </summary>
    public int MaxItems { get; init; } = 1024;

    /// <summary>Bytes queued for the Wayland socket and write pipes before further SEND/WRITE are refused.</summary>
    public int MaxQueuedBytes { get; init; } = 8 << 20;

    public ILogger Logger { get; init; } = NullLogger.Instance;

    /// <summary>
    /// Sends each command to the device's event loop. Null: the SynchronizationContext current
    /// when the context is created (the connection's EventLoop sets one on its thread).
    /// </summary>
    public Action<Action>? Post { get; init; }

    /// <summary>Opens the channel as an fd we own (the Socket is given up); throws with the reason.</summary>
    internal FdHandle Connect()
    {
        if (OpenChannel is { } open)
        {
            var socket = open() ?? throw new IOException("the Wayland server refused the connection");
            try
            {
                using var borrowed = new FdHandle((int)socket.Handle, ownsHandle: false);
                return borrowed.Duplicate();
            }
            finally
            {
                socket.Dispose();
            }
        }
        if (WaylandSocketPath is { } path) return UnixSocket.Connect(path);
        throw new IOException("no Wayland channel is configured (neither OpenChannel nor WaylandSocketPath)");
    }

    public bool HasChannel => OpenChannel is not null || WaylandSocketPath is not null;
}
