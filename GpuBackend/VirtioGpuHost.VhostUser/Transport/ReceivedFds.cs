using VirtioGpuHost.Interop;

namespace VirtioGpuHost.VhostUser.Transport;

/// <summary>
/// The fds that arrived with one message. Each can be taken once; whatever the handler
/// did not take is closed on Dispose, so no fd a peer sends can leak.
/// </summary>
public sealed class ReceivedFds : IDisposable
{
    private readonly FdHandle?[] _fds;

    public ReceivedFds(IReadOnlyList<FdHandle> fds) { _fds = fds.ToArray(); }

    public static ReceivedFds None { get; } = new([]);

    public int Count => _fds.Length;

    /// <summary>Takes ownership of fd <paramref name="index"/>.</summary>
    public FdHandle Take(int index)
    {
        var fd = _fds[index] ?? throw new InvalidOperationException($"fd {index} was already taken");
        _fds[index] = null;
        return fd;
    }

    public void Dispose()
    {
        for (int i = 0; i < _fds.Length; i++)
        {
            _fds[i]?.Dispose();
            _fds[i] = null;
        }
    }
}
