using System.Diagnostics;

namespace VirtioGpuHost.Device.Queues;

/// <summary>
/// How much control-queue work one connection may do per time slice: commands, and bytes its
/// device copies from guest memory (TRANSFER_TO_HOST_2D, gathers of scattered blobs).
/// </summary>
public sealed record CommandBudgetLimits(int CommandsPerSlice, ulong BytesPerSlice, TimeSpan Slice)
{
    public void Validate()
    {
        if (CommandsPerSlice < 1) throw new ArgumentOutOfRangeException(nameof(CommandsPerSlice), CommandsPerSlice, "at least 1");
        if (BytesPerSlice < 1) throw new ArgumentOutOfRangeException(nameof(BytesPerSlice), BytesPerSlice, "at least 1");
        if (Slice <= TimeSpan.Zero || Slice > TimeSpan.FromSeconds(1)) throw new ArgumentOutOfRangeException(nameof(Slice), Slice, "more than 0, at most 1 s");
    }

    public override string ToString() => $"{CommandsPerSlice} commands and {BytesPerSlice >> 20} MiB copied per {Slice.TotalMilliseconds:0.#} ms";
}

/// <summary>
/// One connection's budget (<see cref="CommandBudgetLimits"/>): the control queue asks
/// <see cref="Check"/> before each command and stops until the returned time has passed when the
/// slice's commands or bytes are used up. Work beyond a slice's budget (one large copy) is debt
/// paid from the following slices, so the long-run rate holds whatever the size of a command.
/// Used on the connection's thread only.
/// </summary>
public sealed class CommandBudget
{
    private readonly CommandBudgetLimits _limits;
    private readonly Func<TimeSpan> _clock;
    private TimeSpan _sliceEnd;
    private long _commands;
    private ulong _bytes, _lastBytesTotal;
    private bool _started;

    public CommandBudget(CommandBudgetLimits limits, Func<TimeSpan>? clock = null)
    {
        limits.Validate();
        _limits = limits;
        if (clock is null)
        {
            var sw = Stopwatch.StartNew();
            clock = () => sw.Elapsed;
        }
        _clock = clock;
    }

    public CommandBudgetLimits Limits => _limits;

    /// <summary>Times <see cref="Check"/> said to wait.</summary>
    public long Throttled { get; private set; }

    /// <summary>
    /// Whether a command may run now: <see cref="TimeSpan.Zero"/>, or how long to wait for the next
    /// slice. <paramref name="bytesCopiedTotal"/> is the device's running count of bytes copied
    /// (what it copied since the last call is charged to the budget).
    /// </summary>
    public TimeSpan Check(ulong bytesCopiedTotal)
    {
        var now = _clock();
        if (!_started)
        {
            _started = true;
            _sliceEnd = now + _limits.Slice;
            _lastBytesTotal = bytesCopiedTotal;
        }
        if (bytesCopiedTotal > _lastBytesTotal) _bytes += bytesCopiedTotal - _lastBytesTotal;
        _lastBytesTotal = bytesCopiedTotal;
        if (now >= _sliceEnd)
        {
            long slices = 1 + (now - _sliceEnd).Ticks / _limits.Slice.Ticks;
            _commands = Math.Max(0, _commands - slices * _limits.CommandsPerSlice);
            ulong paid = (ulong)slices * _limits.BytesPerSlice;
            _bytes = _bytes > paid ? _bytes - paid : 0;
            _sliceEnd += _limits.Slice * slices;
        }
        if (_commands < _limits.CommandsPerSlice && _bytes < _limits.BytesPerSlice) return TimeSpan.Zero;
        Throttled++;
        return _sliceEnd - now;
    }

    /// <summary>A command ran (after a <see cref="Check"/> that returned zero).</summary>
    public void Count() => _commands++;
}
