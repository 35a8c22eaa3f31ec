using System.Diagnostics;
using Microsoft.Extensions.Logging;

namespace VirtioGpuHost.Device;

/// <summary>
/// Logs guest mistakes (one line naming the connection, the command and the field), at
/// most <see cref="PerSecond"/> lines a second so that a hostile guest cannot flood the
/// host's logs; suppressed lines are counted and reported with the next line that passes.
/// </summary>
public sealed class GuestErrorLog(ILogger logger, string connectionName)
{
    public const int PerSecond = 20;

    private long _windowStart = Stopwatch.GetTimestamp();
    private int _inWindow;
    private long _suppressed;

    /// <summary>Total guest errors seen (logged or not).</summary>
    public long Count { get; private set; }

    public void Report(string command, string detail)
    {
        Count++;
        long now = Stopwatch.GetTimestamp();
        if (now - _windowStart > Stopwatch.Frequency)
        {
            _windowStart = now;
            _inWindow = 0;
        }
        if (++_inWindow > PerSecond)
        {
            _suppressed++;
            return;
        }
        if (_suppressed > 0)
        {
            logger.LogWarning("{Conn}: {Command}: {Detail} ({Suppressed} similar errors suppressed)", connectionName, command, detail, _suppressed);
            _suppressed = 0;
        }
        else
        {
            logger.LogWarning("{Conn}: {Command}: {Detail}", connectionName, command, detail);
        }
    }
}
