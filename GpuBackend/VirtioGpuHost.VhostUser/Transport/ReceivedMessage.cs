using VirtioGpuHost.VhostUser.Wire;

namespace VirtioGpuHost.VhostUser.Transport;

/// <summary>One framed message: header, exactly Header.Size payload bytes, and its fds.</summary>
public sealed class ReceivedMessage : IDisposable
{
    public ReceivedMessage(VhostUserHeader header, byte[] payload, ReceivedFds fds)
    {
        Header = header;
        Payload = payload;
        Fds = fds;
    }

    public VhostUserHeader Header { get; }
    public byte[] Payload { get; }
    public ReceivedFds Fds { get; }

    public void Dispose() => Fds.Dispose();
}
