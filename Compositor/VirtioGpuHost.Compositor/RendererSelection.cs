using Microsoft.Extensions.Logging;
using VirtioGpuHost.Compositor.Core.Layout;
using VirtioGpuHost.Compositor.Rendering;
using VirtioGpuHost.Compositor.Rendering.Cpu;

namespace VirtioGpuHost.Compositor;

/// <summary>
/// Makes one renderer, or says why it cannot (no Vulkan device, no EGL display, a missing
/// library). Never throws for an unavailable renderer: that is a null and a reason.
/// </summary>
public delegate IRenderer? TryCreateRenderer(out string? reason);

/// <summary>A renderer the selection may use: its name (<c>vulkan</c>, <c>gl</c>, <c>cpu</c>) and its factory.</summary>
public sealed record RendererCandidate(RendererKind Kind, TryCreateRenderer TryCreate)
{
    public string Name => RendererSelection.Name(Kind);

    /// <summary>The CPU renderer: always available, the end of every chain.</summary>
    public static RendererCandidate Cpu(CpuRendererOptions? options = null) =>
        new(RendererKind.Cpu, (out string? reason) =>
        {
            reason = null;
            return new CpuRenderer(options);
        });

    /// <summary>A renderer this build does not have (its factory always says so).</summary>
    public static RendererCandidate Unavailable(RendererKind kind, string why) =>
        new(kind, (out string? reason) =>
        {
            reason = why;
            return null;
        });
}

/// <summary>
/// Picks the renderer (<c>--renderer</c> / <c>[layout] renderer</c>): <c>auto</c> tries
/// vulkan, then gl, then cpu, and logs exactly one line naming the one chosen and why each
/// one before it was not; <c>vulkan</c>, <c>gl</c> or <c>cpu</c> asks for exactly that one (an
/// error when it cannot be made). The result is a <see cref="RendererChain"/>: at run time,
/// when the renderer loses its device (<see cref="RendererLostException"/>), the engine moves
/// on to the next one of the chain: the remaining auto order, and for an explicit GPU renderer
/// the CPU renderer, so a display never goes dark because a GPU went away.
/// </summary>
public static class RendererSelection
{
    /// <summary>The accepted values, as written on the command line and in the layout.</summary>
    public static IReadOnlyList<string> Names { get; } = LayoutLoader.RendererNames;

    public static string Name(RendererKind kind) => LayoutLoader.RendererName(kind);

    /// <summary>Parses <c>auto</c>, <c>vulkan</c>, <c>gl</c> or <c>cpu</c> (exactly, lower case).</summary>
    public static bool TryParse(string? text, out RendererKind kind) => LayoutLoader.TryParseRenderer(text, out kind);

    /// <summary>The order <c>auto</c> tries them in.</summary>
    public static IReadOnlyList<RendererKind> AutoOrder { get; } = [RendererKind.Vulkan, RendererKind.Gl, RendererKind.Cpu];

    /// <summary>
    /// The renderer the command line or the layout asks for: the CLI wins when it says
    /// anything, then the layout's <c>renderer</c> key, then <c>auto</c>.
    /// </summary>
    public static RendererKind Requested(RendererKind? cli, LayoutConfig layout) => cli ?? layout.Renderer;

    /// <summary>
    /// Makes the renderer <paramref name="requested"/> asks for from <paramref name="candidates"/>
    /// (one per kind; a missing cpu candidate is the default CPU renderer) and logs the one line
    /// saying which and why. Returns false (with the same line as an error) only when an
    /// explicitly asked-for renderer cannot be made; <c>auto</c> always succeeds.
    /// </summary>
    public static bool TrySelect(RendererKind requested, IReadOnlyList<RendererCandidate> candidates, ILogger log, out RendererChain? chain, out string decision)
    {
        ArgumentNullException.ThrowIfNull(candidates);
        ArgumentNullException.ThrowIfNull(log);
        var byKind = new Dictionary<RendererKind, RendererCandidate>();
        foreach (var c in candidates)
        {
            if (c.Kind == RendererKind.Auto) throw new ArgumentException("a candidate must be vulkan, gl or cpu, not auto", nameof(candidates));
            byKind.TryAdd(c.Kind, c);
        }
        byKind.TryAdd(RendererKind.Cpu, RendererCandidate.Cpu());

        var order = requested == RendererKind.Auto
            ? AutoOrder.Select(k => byKind.TryGetValue(k, out var c) ? c : RendererCandidate.Unavailable(k, "not in this build")).ToList()
            : requested == RendererKind.Cpu ? [byKind[RendererKind.Cpu]]
            : [byKind.TryGetValue(requested, out var asked) ? asked : RendererCandidate.Unavailable(requested, "not in this build"), byKind[RendererKind.Cpu]];

        var refused = new List<string>();
        int tries = requested == RendererKind.Auto ? order.Count : 1;
        for (int i = 0; i < tries; i++)
        {
            var (renderer, reason) = Create(order[i]);
            if (renderer is null)
            {
                refused.Add($"{order[i].Name} unavailable: {reason}");
                continue;
            }
            var rest = order.Skip(i + 1).ToList();
            string why = requested == RendererKind.Auto
                ? $"auto: {(refused.Count == 0 ? "first choice" : string.Join("; ", refused))}{(rest.Count > 0 ? $"; {string.Join(", ", rest.Select(r => r.Name))} not needed" : "")}"
                : $"asked for{(rest.Count > 0 ? $"; {string.Join(", ", rest.Select(r => r.Name))} only as the fallback if its device is lost" : "")}";
            decision = $"renderer: {order[i].Name} ({why}): {renderer.Capabilities.Details}";
            log.LogInformation("{Decision}", decision);
            chain = new RendererChain(renderer, order[i], rest, log);
            return true;
        }
        decision = $"renderer: {Name(requested)} was asked for but cannot be used: {string.Join("; ", refused)}";
        log.LogError("{Decision}", decision);
        chain = null;
        return false;
    }

    internal static (IRenderer? Renderer, string Reason) Create(RendererCandidate candidate)
    {
        try
        {
            var r = candidate.TryCreate(out var reason);
            return (r, r is null ? reason ?? "no reason given" : "");
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // A factory that throws is as unavailable as one that says so.
            return (null, $"{e.GetType().Name}: {e.Message}");
        }
    }
}

/// <summary>
/// The renderer in use and the ones that follow it when it loses its device. Owns every
/// renderer it made: <see cref="Next"/> disposes the lost one, <see cref="Dispose"/> the current.
/// Pass <see cref="Next"/> as <see cref="CompositorOptions.NextRenderer"/>.
/// </summary>
public sealed class RendererChain : IDisposable
{
    private readonly Queue<RendererCandidate> _rest;
    private readonly ILogger _log;
    private readonly object _lock = new();
    private bool _currentDisposed;

    internal RendererChain(IRenderer current, RendererCandidate candidate, IEnumerable<RendererCandidate> rest, ILogger log)
    {
        Current = current;
        CurrentKind = candidate.Kind;
        _rest = new Queue<RendererCandidate>(rest);
        _log = log;
    }

    public IRenderer Current { get; private set; }
    public RendererKind CurrentKind { get; private set; }

    /// <summary>Renderers given up on at run time so far.</summary>
    public int Fallbacks { get; private set; }

    /// <summary>
    /// <paramref name="lost"/> happened to <see cref="Current"/>: disposes it (ignoring what a
    /// dead device throws) and makes the next renderer of the chain that can be made; null when
    /// none is left.
    /// </summary>
    public IRenderer? Next(RendererLostException lost)
    {
        lock (_lock)
        {
            var old = Current;
            try
            {
                _currentDisposed = true;
                old.Dispose();
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                _log.LogDebug("renderer {Renderer}: dispose after device loss threw {Error}", Name, e.Message);
            }
            var refused = new List<string>();
            while (_rest.TryDequeue(out var candidate))
            {
                var (renderer, reason) = RendererSelection.Create(candidate);
                if (renderer is null)
                {
                    refused.Add($"{candidate.Name} unavailable: {reason}");
                    continue;
                }
                _log.LogWarning("renderer: {Old} lost its device ({Error}); continuing on {New}{Refused}: {Details}",
                    Name, lost.Message, candidate.Name, refused.Count > 0 ? $" ({string.Join("; ", refused)})" : "", renderer.Capabilities.Details);
                Current = renderer;
                _currentDisposed = false;
                CurrentKind = candidate.Kind;
                Fallbacks++;
                return renderer;
            }
            _log.LogError("renderer: {Old} lost its device ({Error}) and no renderer is left to continue on{Refused}",
                Name, lost.Message, refused.Count > 0 ? $" ({string.Join("; ", refused)})" : "");
            return null;
        }
    }

    private string Name => RendererSelection.Name(CurrentKind);

    public void Dispose()
    {
        lock (_lock)
        {
            if (_currentDisposed) return;
            _currentDisposed = true;
            Current.Dispose();
        }
    }
}
