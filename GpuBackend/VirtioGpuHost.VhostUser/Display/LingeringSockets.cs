using VirtioGpuHost.Interop;

namespace VirtioGpuHost.VhostUser.Display;

/// <summary>
/// Display sockets we closed while the display still had spliced pixels to read: the socket
/// stays open and the memory referenced until the display has read everything (TIOCOUTQ 0) or
/// hangs up, checked every 50 ms on one background thread (the connection's loop may be gone).
/// </summary>
internal static class LingeringSockets
{
    private static readonly List<(FdHandle Socket, List<OutgoingMessage> Held, DateTime Since)> Items = new();
    private static Thread? _thread;

    public static int Count
    {
        get { lock (Items) return Items.Count; }
    }

    public static void Add(FdHandle socket, List<OutgoingMessage> held)
    {
        lock (Items)
        {
            Items.Add((socket, held, DateTime.UtcNow));
            if (_thread is null)
            {
                _thread = new Thread(Run) { IsBackground = true, Name = "display-socket-linger" };
                _thread.Start();
            }
        }
    }

    private static void Run()
    {
        while (true)
        {
            Thread.Sleep(50);
            lock (Items)
            {
                for (int i = Items.Count - 1; i >= 0; i--)
                {
                    var (socket, held, _) = Items[i];
                    bool done;
                    try
                    {
                        Span<PollEntry> e = [new PollEntry(socket, PollEvents.In)];
                        Poller.Poll(e, 0);
                        done = (e[0].Ready & (PollEvents.HangUp | PollEvents.Error)) != 0 || UnixSocket.OutputQueueBytes(socket) == 0;
                    }
                    catch (Exception ex) when (ex is SyscallException or ObjectDisposedException)
                    {
                        done = true;
                    }
                    if (!done) continue;
                    foreach (var m in held) m.Release();
                    socket.Dispose();
                    Items.RemoveAt(i);
                }
            }
        }
    }
}
