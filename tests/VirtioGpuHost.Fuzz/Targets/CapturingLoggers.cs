using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace VirtioGpuHost.Fuzz.Targets;

/// <summary>
/// A logger factory for targets whose product code catches its own exceptions and logs them
/// (the Wayland server's "failed; disconnecting", a context that "failed on SUBMIT_3D"): every
/// message at every level is formatted (a ToString that throws on hostile state is a finding
/// too) and dropped, except Error and Critical lines, which are kept: the target reports them
/// as a crash. Thread-safe (the server and channel threads log).
/// </summary>
public sealed class CapturingLoggers : ILoggerFactory, ILogger
{
    private readonly ConcurrentQueue<string> _errors = new();

    /// <summary>Error and Critical lines so far (with the exception, if any).</summary>
    public IReadOnlyCollection<string> Errors => _errors;

    public ILogger CreateLogger(string categoryName) => this;
    public void AddProvider(ILoggerProvider provider) { }
    public void Dispose() { }

    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
    public bool IsEnabled(LogLevel logLevel) => true;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        var message = formatter(state, exception);
        if (logLevel >= LogLevel.Error) _errors.Enqueue($"{logLevel}: {message}{(exception is null ? "" : " " + exception)}");
    }

    /// <summary>Throws a <see cref="FuzzInvariantException"/> naming the first error line, if any was logged.</summary>
    public void ThrowIfAny(string what)
    {
        if (_errors.TryPeek(out var first))
            throw new FuzzInvariantException($"{what} logged {_errors.Count} error(s); first: {first}");
    }
}
