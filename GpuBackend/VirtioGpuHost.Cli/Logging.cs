using System.Text;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Logging.Console;
using Microsoft.Extensions.Options;

namespace VirtioGpuHost.Cli;

/// <summary>
/// Console logging to stderr, one line per event, as a daemon started by QEMU or libvirt logs.
/// Every line logged inside a VM's scope (its listener, connection and device threads, its
/// watchdog transitions, its QEMU guest in `demo --qemu`) carries the VM's name: `[vm=cluster]`.
/// </summary>
internal static class Logging
{
    public static ILoggerFactory Create(bool verbose) => LoggerFactory.Create(b =>
    {
        b.SetMinimumLevel(verbose ? LogLevel.Debug : LogLevel.Information);
        b.AddConsole(o =>
        {
            o.FormatterName = LineFormatter.FormatterName;
            o.LogToStandardErrorThreshold = LogLevel.Trace;
        });
        b.AddConsoleFormatter<LineFormatter, ConsoleFormatterOptions>(o =>
        {
            o.IncludeScopes = true;
            o.TimestampFormat = "HH:mm:ss.fff ";
        });
    });
}

/// <summary>
/// `HH:mm:ss.fff info: Category[id] [vm=NAME] message`: the simple console format on one line,
/// with the `vm` scope (of <c>CompositorHost</c>'s VM threads) printed compactly in brackets, and
/// string scopes as their text. No colours; exceptions follow on their own lines.
/// </summary>
internal sealed class LineFormatter : ConsoleFormatter, IDisposable
{
    public const string FormatterName = "vgh-line";
    private readonly IDisposable? _reload;
    private ConsoleFormatterOptions _options;

    public LineFormatter(IOptionsMonitor<ConsoleFormatterOptions> options) : base(FormatterName)
    {
        _options = options.CurrentValue;
        _reload = options.OnChange(o => _options = o);
    }

    public void Dispose() => _reload?.Dispose();

    public override void Write<TState>(in LogEntry<TState> entry, IExternalScopeProvider? scopeProvider, TextWriter textWriter)
    {
        string message = entry.Formatter(entry.State, entry.Exception);
        if (string.IsNullOrEmpty(message) && entry.Exception is null) return;
        var line = new StringBuilder(message.Length + 64);
        if (_options.TimestampFormat is { } format)
            line.Append((_options.UseUtcTimestamp ? DateTimeOffset.UtcNow : DateTimeOffset.Now).ToString(format, System.Globalization.CultureInfo.InvariantCulture));
        line.Append(Level(entry.LogLevel)).Append(": ").Append(entry.Category).Append('[').Append(entry.EventId.Id).Append(']');
        if (_options.IncludeScopes && scopeProvider is not null)
            scopeProvider.ForEachScope(static (scope, sb) => AppendScope(sb, scope), line);
        line.Append(' ').Append(message.ReplaceLineEndings(" "));
        if (entry.Exception is not null) line.Append(Environment.NewLine).Append(entry.Exception);
        textWriter.Write(line.Append(Environment.NewLine).ToString());
    }

    /// <summary>Scope keys printed on the line.</summary>
    public static readonly HashSet<string> ScopeKeys = new(StringComparer.Ordinal) { "vm" };

    private static void AppendScope(StringBuilder line, object? scope)
    {
        if (scope is IEnumerable<KeyValuePair<string, object>> pairs)
        {
            // Only the keys we scope by: ASP.NET Core's correlation scopes (TraceId, SpanId,
            // ConnectionId, RequestPath) would make its rare warnings unreadable.
            foreach (var (key, value) in pairs)
                if (ScopeKeys.Contains(key)) line.Append(" [").Append(key).Append('=').Append(value).Append(']');
        }
        else if (scope is string text)
        {
            line.Append(" [").Append(text).Append(']');
        }
    }

    private static string Level(LogLevel level) => level switch
    {
        LogLevel.Trace => "trce",
        LogLevel.Debug => "dbug",
        LogLevel.Information => "info",
        LogLevel.Warning => "warn",
        LogLevel.Error => "fail",
        LogLevel.Critical => "crit",
        _ => "none",
    };
}
