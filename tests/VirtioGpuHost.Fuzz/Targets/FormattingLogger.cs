using Microsoft.Extensions.Logging;

namespace VirtioGpuHost.Fuzz.Targets;

/// <summary>
/// A logger that formats every message at every level and drops it: the log lines the product
/// writes about hostile input are part of the code under test (a ToString that throws on a bad
/// field is a crash), but printing them would only slow the fuzzer down.
/// </summary>
public sealed class FormattingLogger : ILogger
{
    public static FormattingLogger Instance { get; } = new();

    /// <summary>Messages formatted so far (keeps the formatting from being optimised away).</summary>
    public long Characters { get; private set; }

    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
    public bool IsEnabled(LogLevel logLevel) => true;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        Characters += formatter(state, exception).Length;
    }
}
