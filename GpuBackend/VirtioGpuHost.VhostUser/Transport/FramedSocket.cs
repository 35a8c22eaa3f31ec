using System.Buffers;
using VirtioGpuHost.Interop;
using VirtioGpuHost.VhostUser.Wire;

namespace VirtioGpuHost.VhostUser.Transport;

/// <summary>
/// Blocking message framing over an AF_UNIX stream socket with fds: a 12-byte header
/// (the fds ride on its first byte), then exactly Size payload bytes. Never reads past a
/// message boundary, so fds can't be attributed to the wrong message. Used for the
/// vhost-user main channel and the back-end channel, on both sides.
/// </summary>
public sealed class FramedSocket : IDisposable
{
    /// <summary>rust-vmm's cap for main-channel payloads; the largest we expect is GET_SHMEM_CONFIG (2056).</summary>
    public const int DefaultMaxPayload = 0x1000;

    private readonly object _sendLock = new();

    public FramedSocket(FdHandle socket, int maxPayload = DefaultMaxPayload)
    {
        Socket = socket;
        MaxPayload = maxPayload;
    }

    public FdHandle Socket { get; }
    public int MaxPayload { get; }

    /// <summary>
    /// How long <see cref="Send"/> may wait, in all, for a peer that does not read. On a blocking
    /// socket set SO_SNDTIMEO to the same value: the wait then ends with the blocked send.
    /// </summary>
    public TimeSpan SendTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Reads one message. Returns null when the peer closed the connection cleanly before a
    /// new message began. Throws <see cref="ProtocolViolationException"/> for a message cut
    /// short, a payload larger than <see cref="MaxPayload"/> or more fds than allowed.
    /// </summary>
    public ReceivedMessage? Receive()
    {
        Span<byte> header = stackalloc byte[VhostUserHeader.Length];
        var fds = new List<FdHandle>();
        try
        {
            int got = 0;
            while (got < header.Length)
            {
                var status = UnixSocket.Receive(Socket, header[got..], got == 0 ? fds : null, out int n);
                if (status == IoStatus.Closed)
                {
                    if (got == 0) { DisposeAll(fds); return null; }
                    throw new ProtocolViolationException($"connection closed inside a message header ({got} of 12 bytes)");
                }
                if (status == IoStatus.WouldBlock)
                    throw new ProtocolViolationException($"timed out inside a message header ({got} of 12 bytes)");
                got += n;
            }
            var h = VhostUserHeader.Read(header);
            if (h.Size > MaxPayload)
                throw new ProtocolViolationException($"request {h.Request}: payload size {h.Size} exceeds the limit of {MaxPayload} bytes");
            var payload = h.Size == 0 ? [] : new byte[h.Size];
            ReadExactly(payload, h);
            var msg = new ReceivedMessage(h, payload, new ReceivedFds(fds));
            fds.Clear();
            return msg;
        }
        catch
        {
            DisposeAll(fds);
            throw;
        }
    }

    private void ReadExactly(Span<byte> buffer, VhostUserHeader h)
    {
        int got = 0;
        while (got < buffer.Length)
        {
            var status = UnixSocket.Receive(Socket, buffer[got..], null, out int n);
            if (status != IoStatus.Ok)
                throw new ProtocolViolationException($"request {h.Request}: payload cut short ({got} of {h.Size} bytes, {(status == IoStatus.Closed ? "connection closed" : "timed out")})");
            got += n;
        }
    }

    /// <summary>Sends one message (blocking until all of it is written). Throws IOException if the peer is gone.</summary>
    public void Send(uint request, uint flags, ReadOnlySpan<byte> payload, ReadOnlySpan<FdHandle> fds = default)
    {
        int total = VhostUserHeader.Length + payload.Length;
        byte[] rented = ArrayPool<byte>.Shared.Rent(total);
        try
        {
            var buf = rented.AsSpan(0, total);
            new VhostUserHeader(request, flags, (uint)payload.Length).Write(buf);
            payload.CopyTo(buf[VhostUserHeader.Length..]);
            lock (_sendLock)
            {
                long deadline = Environment.TickCount64 + (long)SendTimeout.TotalMilliseconds;
                int sent = 0;
                while (sent < total)
                {
                    var status = UnixSocket.Send(Socket, buf[sent..], sent == 0 ? fds : default, out int n);
                    if (status == IoStatus.Closed) throw new IOException("peer closed the connection");
                    if (status == IoStatus.WouldBlock)
                    {
                        // Non-blocking socket full, or a blocking one past its SO_SNDTIMEO: wait
                        // only for what is left of the timeout (the blocked send already waited).
                        long left = deadline - Environment.TickCount64;
                        if (left <= 0 || !WaitWritable((int)Math.Min(left, int.MaxValue))) throw new IOException("send timed out: the peer does not read");
                        continue;
                    }
                    sent += n;
                }
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(rented);
        }
    }

    private bool WaitWritable(int timeoutMs)
    {
        Span<PollEntry> e = [new PollEntry(Socket, PollEvents.Out)];
        return Poller.Poll(e, timeoutMs) > 0;
    }

    private static void DisposeAll(List<FdHandle> fds)
    {
        foreach (var fd in fds) fd.Dispose();
        fds.Clear();
    }

    public void Dispose() => Socket.Dispose();
}
