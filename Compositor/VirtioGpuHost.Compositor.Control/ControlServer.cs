using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace VirtioGpuHost.Compositor.Control;

/// <summary>Where the control API listens: a TCP address (loopback unless configured otherwise) or a Unix socket.</summary>
public sealed record ListenAddress(IPAddress? Ip, int Port, string? UnixPath)
{
    /// <summary>The default: loopback only.</summary>
    public static ListenAddress Loopback(int port) => new(IPAddress.Loopback, port, null);

    /// <summary>Parses <c>HOST:PORT</c> (an IP address or <c>localhost</c>; <c>[v6]:PORT</c>) or <c>unix:/path</c>.</summary>
    public static bool TryParse(string? text, out ListenAddress address, out string error)
    {
        address = Loopback(0);
        error = "";
        if (string.IsNullOrWhiteSpace(text)) { error = "empty listen address"; return false; }
        if (text.StartsWith("unix:", StringComparison.Ordinal))
        {
            var path = text[5..];
            if (!Path.IsPathRooted(path) || Encoding.UTF8.GetByteCount(path) > 107) { error = $"\"{text}\": a Unix socket needs an absolute path of at most 107 bytes"; return false; }
            address = new ListenAddress(null, 0, path);
            return true;
        }
        int colon = text.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(text.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out int port) || port > 65535)
        {
            error = $"\"{text}\": expected HOST:PORT (e.g. 127.0.0.1:8080) or unix:/path";
            return false;
        }
        var host = text[..colon].Trim('[', ']');
        IPAddress? ip = host == "localhost" ? IPAddress.Loopback : IPAddress.TryParse(host, out var parsed) ? parsed : null;
        if (ip is null) { error = $"\"{text}\": \"{host}\" is not an IP address (or localhost)"; return false; }
        address = new ListenAddress(ip, port, null);
        return true;
    }

    public override string ToString() => UnixPath is not null ? "unix:" + UnixPath
        : Ip!.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? $"[{Ip}]:{Port}" : $"{Ip}:{Port}";
}

/// <summary>
/// The control API, the web viewer and /metrics of one running compositor, served by Kestrel
/// (ASP.NET Core minimal APIs) on the given address only. Every request is independent of the
/// frame loop: a bad or hostile client gets a 4xx with a message and changes nothing.
/// Reference: docs/control.md.
/// </summary>
public sealed class ControlServer : IAsyncDisposable, IDisposable
{
    private readonly WebApplication _app;
    private readonly ILogger _log;

    private ControlServer(WebApplication app, ControlService control, ControlMetrics metrics, ILogger log)
    {
        _app = app;
        Control = control;
        Metrics = metrics;
        _log = log;
    }

    public ControlService Control { get; }
    public ControlMetrics Metrics { get; }

    /// <summary>The base URL clients use: http://HOST:PORT/ (the bound port) or unix:/path.</summary>
    public string Url { get; private set; } = "";

    /// <summary>Starts serving <paramref name="host"/> on <paramref name="listen"/>; throws when the address cannot be bound.</summary>
    public static async Task<ControlServer> StartAsync(CompositorHost host, ListenAddress listen, ILoggerFactory loggers, string layoutSource = "file")
    {
        var log = loggers.CreateLogger("VirtioGpuHost.Control");
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [], ContentRootPath = AppContext.BaseDirectory });
        builder.Logging.ClearProviders();
        builder.Logging.AddProvider(new ForwardingLoggerProvider(loggers));
        builder.Logging.AddFilter("Microsoft", LogLevel.Warning);
        builder.Services.AddSingleton<IHostLifetime, NoSignalsLifetime>(); // the CLI owns SIGINT/SIGTERM
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.AddServerHeader = false;
            k.Limits.MaxRequestBodySize = ControlService.MaxBodyBytes;
            k.Limits.MaxRequestHeadersTotalSize = 32 * 1024;
            if (listen.UnixPath is { } path)
            {
                if (File.Exists(path)) File.Delete(path); // a stale socket of an earlier run
                Directory.CreateDirectory(Path.GetDirectoryName(path)!);
                k.ListenUnixSocket(path);
            }
            else
            {
                k.Listen(listen.Ip!, listen.Port);
            }
        });
        var app = builder.Build();
        var control = new ControlService(host, log, layoutSource);
        var metrics = new ControlMetrics(control);
        var server = new ControlServer(app, control, metrics, log);
        server.Map(app);
        await app.StartAsync().ConfigureAwait(false);
        if (listen.UnixPath is { } p)
        {
            server.Url = "unix:" + p;
        }
        else
        {
            var bound = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses.FirstOrDefault();
            int port = bound is not null && Uri.TryCreate(bound, UriKind.Absolute, out var u) ? u.Port : listen.Port;
            string hostText = listen.Ip!.Equals(IPAddress.Any) || listen.Ip.Equals(IPAddress.IPv6Any) ? "127.0.0.1"
                : listen.Ip.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? $"[{listen.Ip}]" : listen.Ip.ToString();
            server.Url = $"http://{hostText}:{port}/";
        }
        control.Listen = server.Url;
        if (listen.UnixPath is null && !IPAddress.IsLoopback(listen.Ip!))
            log.LogWarning("control API listens on {Address}, not only on loopback: anyone who reaches it can change the layout", listen);
        log.LogInformation("control API and viewer on {Url}", server.Url);
        return server;
    }

    private void Map(WebApplication app)
    {
        app.Use(async (ctx, next) =>
        {
            try
            {
                await next(ctx).ConfigureAwait(false);
                if (ctx.Response.StatusCode >= 400 && !ctx.Response.HasStarted && ctx.Response.ContentLength is null && ctx.Response.ContentType is null)
                {
                    string msg = ctx.Response.StatusCode switch
                    {
                        404 => $"no such endpoint: {ctx.Request.Method} {ctx.Request.Path} (see GET /api)",
                        405 => $"{ctx.Request.Method} is not allowed on {ctx.Request.Path} (see GET /api)",
                        _ => $"request failed with status {ctx.Response.StatusCode}",
                    };
                    await WriteError(ctx, ctx.Response.StatusCode, msg).ConfigureAwait(false);
                }
            }
            catch (ControlException e)
            {
                await WriteError(ctx, e.Status, e.Message, e.Diagnostics).ConfigureAwait(false);
            }
            catch (BadHttpRequestException e)
            {
                await WriteError(ctx, e.StatusCode, e.Message).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (ctx.RequestAborted.IsCancellationRequested)
            {
                // The client went away.
            }
            catch (Exception e)
            {
                _log.LogError(e, "control: {Method} {Path} failed", ctx.Request.Method, ctx.Request.Path);
                await WriteError(ctx, 500, "internal error: " + e.Message).ConfigureAwait(false);
            }
            finally
            {
                Metrics.CountRequest(ctx.Response.StatusCode);
            }
        });

        app.MapGet("/", (HttpContext ctx) => Viewer(ctx));
        app.MapGet("/index.html", (HttpContext ctx) => Viewer(ctx));
        app.MapGet("/api", () => Json(new
        {
            endpoints = new[]
            {
                "GET /api/status", "GET /api/vms", "GET /api/vms/{name}", "GET /api/surfaces", "GET /api/zones", "GET /api/outputs",
                "GET /api/layout", "PUT /api/layout (TOML body)", "POST /api/layout/validate (TOML body)",
                "POST /api/zones/{zone}/preempt {\"vm\":NAME,\"scanout\":N}", "DELETE /api/zones/{zone}/preempt",
                "GET /api/outputs/{name}/screenshot.png", "GET /api/outputs/{name}/frame?after=SEQ&format=jpeg|png&timeout=MS",
                "GET /api/outputs/{name}/stream (MJPEG)", "GET /metrics", "GET / (viewer)",
            },
        }));
        app.MapGet("/api/status", () => Json(Control.Status()));
        app.MapGet("/api/vms", () => Json(Control.Vms()));
        app.MapGet("/api/vms/{name}", (string name) => Control.Vm(name) is { } vm ? Json(vm) : throw new ControlException(404, $"no vm \"{name}\" in the running layout"));
        app.MapGet("/api/surfaces", () => Json(Control.Surfaces()));
        app.MapGet("/api/zones", () => Json(Control.Zones()));
        app.MapGet("/api/outputs", () => Json(Control.Outputs()));
        app.MapGet("/api/layout", () => Json(Control.LayoutInfo()));
        app.MapPut("/api/layout", async Task<IResult> (HttpContext ctx) => Json(Control.ApplyLayout(await ReadBody(ctx).ConfigureAwait(false), validateOnly: false, FileName(ctx))));
        app.MapPost("/api/layout", async Task<IResult> (HttpContext ctx) => Json(Control.ApplyLayout(await ReadBody(ctx).ConfigureAwait(false), validateOnly: false, FileName(ctx))));
        app.MapPost("/api/layout/validate", async Task<IResult> (HttpContext ctx) => Json(Control.ApplyLayout(await ReadBody(ctx).ConfigureAwait(false), validateOnly: true, FileName(ctx))));
        app.MapPost("/api/zones/{zone}/preempt", async (string zone, HttpContext ctx) =>
        {
            var (vm, scanout) = ParsePreempt(await ReadBody(ctx).ConfigureAwait(false));
            return Json(Control.Preempt(zone, vm, scanout));
        });
        app.MapDelete("/api/zones/{zone}/preempt", (string zone) =>
        {
            Control.Release(zone);
            return Json(new { released = zone });
        });
        app.MapGet("/api/outputs/{name}/screenshot.png", (string name) =>
        {
            var frame = FeedOf(name).CaptureNow();
            return Results.Bytes(frame.Png, "image/png");
        });
        app.MapGet("/api/outputs/{name}/frame", async (string name, HttpContext ctx) =>
        {
            var feed = FeedOf(name);
            long after = QueryLong(ctx, "after", -1, long.MaxValue, -1);
            int timeout = (int)QueryLong(ctx, "timeout", 0, 10_000, 2000);
            string format = ctx.Request.Query["format"].FirstOrDefault() ?? "jpeg";
            if (format is not ("jpeg" or "png")) throw new ControlException(400, $"format must be jpeg or png, not \"{format}\"");
            var frame = await feed.NextAsync(after, TimeSpan.FromMilliseconds(timeout), ctx.RequestAborted).ConfigureAwait(false);
            var bytes = format == "png" ? frame.Png : frame.Jpeg;
            ctx.Response.Headers["X-Frame-Seq"] = frame.Seq.ToString(CultureInfo.InvariantCulture);
            ctx.Response.Headers["X-Compositor-Frame"] = frame.CompositorFrame.ToString(CultureInfo.InvariantCulture);
            ctx.Response.Headers["X-Frame-Age-Ms"] = Stopwatch.GetElapsedTime(frame.CapturedTimestamp).TotalMilliseconds.ToString("0.0", CultureInfo.InvariantCulture);
            ctx.Response.Headers.CacheControl = "no-store";
            return Results.Bytes(bytes, format == "png" ? "image/png" : "image/jpeg");
        });
        app.MapGet("/api/outputs/{name}/stream", async (string name, HttpContext ctx) =>
        {
            var feed = FeedOf(name);
            if (!feed.Capturable) throw new ControlException(409, $"output \"{name}\" cannot be captured: only headless outputs keep their frames in memory");
            const string boundary = "vghframe";
            ctx.Response.ContentType = "multipart/x-mixed-replace; boundary=" + boundary;
            ctx.Response.Headers.CacheControl = "no-store";
            long seq = -1;
            var cancel = ctx.RequestAborted;
            while (!cancel.IsCancellationRequested)
            {
                var frame = await feed.NextAsync(seq, TimeSpan.FromSeconds(5), cancel).ConfigureAwait(false);
                if (frame.Seq == seq) continue;
                seq = frame.Seq;
                var jpeg = frame.Jpeg;
                var head = Encoding.ASCII.GetBytes($"--{boundary}\r\nContent-Type: image/jpeg\r\nContent-Length: {jpeg.Length}\r\nX-Frame-Seq: {seq}\r\n\r\n");
                await ctx.Response.Body.WriteAsync(head, cancel).ConfigureAwait(false);
                await ctx.Response.Body.WriteAsync(jpeg, cancel).ConfigureAwait(false);
                await ctx.Response.Body.WriteAsync("\r\n"u8.ToArray(), cancel).ConfigureAwait(false);
                await ctx.Response.Body.FlushAsync(cancel).ConfigureAwait(false);
            }
        });
        app.MapGet("/metrics", async (HttpContext ctx) =>
        {
            ctx.Response.ContentType = "text/plain; version=0.0.4; charset=utf-8";
            await Metrics.Registry.CollectAndExportAsTextAsync(ctx.Response.Body, ctx.RequestAborted).ConfigureAwait(false);
        });
    }

    private OutputFeed FeedOf(string name) => Control.Feed(name) ?? throw new ControlException(404, $"no output \"{name}\" in the running layout");

    private static IResult Json<T>(T value) => Results.Text(JsonSerializer.Serialize(value, ControlJson.Options), "application/json; charset=utf-8");

    private static string FileName(HttpContext ctx)
    {
        var name = ctx.Request.Query["name"].FirstOrDefault();
        return name is { Length: > 0 and <= 128 } && name.All(c => char.IsLetterOrDigit(c) || c is '.' or '-' or '_') ? name : "layout.toml";
    }

    private static long QueryLong(HttpContext ctx, string key, long min, long max, long fallback)
    {
        var text = ctx.Request.Query[key].FirstOrDefault();
        if (text is null) return fallback;
        if (!long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var v) || v < min || v > max)
            throw new ControlException(400, $"query parameter \"{key}\" must be an integer in {min}..{max}, not \"{text}\"");
        return v;
    }

    /// <summary>The body as text: at most <see cref="ControlService.MaxBodyBytes"/>, valid UTF-8.</summary>
    private static async Task<string> ReadBody(HttpContext ctx)
    {
        using var buffer = new MemoryStream();
        var chunk = new byte[16384];
        int n;
        while ((n = await ctx.Request.Body.ReadAsync(chunk, ctx.RequestAborted).ConfigureAwait(false)) > 0)
        {
            if (buffer.Length + n > ControlService.MaxBodyBytes) throw new ControlException(413, $"request body larger than {ControlService.MaxBodyBytes} bytes");
            buffer.Write(chunk, 0, n);
        }
        try
        {
            return new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(buffer.GetBuffer(), 0, (int)buffer.Length);
        }
        catch (DecoderFallbackException)
        {
            throw new ControlException(400, "request body is not valid UTF-8");
        }
    }

    /// <summary>{"vm": "NAME", "scanout": N} (scanout optional), nothing else.</summary>
    public static (string Vm, int? Scanout) ParsePreempt(string body)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(body, new JsonDocumentOptions { MaxDepth = 8 });
        }
        catch (JsonException e)
        {
            throw new ControlException(400, "malformed JSON: " + e.Message);
        }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object) throw new ControlException(400, "expected a JSON object {\"vm\": NAME, \"scanout\": N}");
            string? vm = null;
            int? scanout = null;
            foreach (var p in doc.RootElement.EnumerateObject())
            {
                switch (p.Name)
                {
                    case "vm":
                        if (p.Value.ValueKind != JsonValueKind.String || p.Value.GetString() is not { Length: > 0 and <= 64 } s) throw new ControlException(400, "\"vm\" must be a VM name (a string of 1 to 64 characters)");
                        vm = s;
                        break;
                    case "scanout":
                        if (p.Value.ValueKind != JsonValueKind.Number || !p.Value.TryGetInt32(out int n) || n is < 0 or > 15) throw new ControlException(400, "\"scanout\" must be an integer in 0..15");
                        scanout = n;
                        break;
                    default:
                        throw new ControlException(400, $"unknown field \"{p.Name}\" (expected \"vm\" and optionally \"scanout\")");
                }
            }
            if (vm is null) throw new ControlException(400, "\"vm\" is required: the VM whose scanout takes the zone");
            return (vm, scanout);
        }
    }

    private static async Task WriteError(HttpContext ctx, int status, string message, IReadOnlyList<DiagnosticDto>? diagnostics = null)
    {
        if (ctx.Response.HasStarted) return;
        ctx.Response.Clear();
        ctx.Response.StatusCode = status;
        ctx.Response.ContentType = "application/json; charset=utf-8";
        await ctx.Response.WriteAsync(JsonSerializer.Serialize(new ErrorDto(status, message, diagnostics), ControlJson.Options)).ConfigureAwait(false);
    }

    private static IResult Viewer(HttpContext ctx)
    {
        using var stream = typeof(ControlServer).Assembly.GetManifestResourceStream("viewer/index.html")!;
        using var reader = new StreamReader(stream);
        ctx.Response.Headers.CacheControl = "no-store";
        return Results.Text(reader.ReadToEnd(), "text/html; charset=utf-8");
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            await _app.StopAsync(cts.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) { }
        Control.Dispose();
        await _app.DisposeAsync().ConfigureAwait(false);
    }

    public void Dispose() => DisposeAsync().AsTask().GetAwaiter().GetResult();

    private sealed class ForwardingLoggerProvider(ILoggerFactory factory) : ILoggerProvider
    {
        public ILogger CreateLogger(string categoryName) => factory.CreateLogger(categoryName);
        public void Dispose() { }
    }

    /// <summary>No console lifetime: the program's own signal handling stops the server.</summary>
    private sealed class NoSignalsLifetime : IHostLifetime
    {
        public Task WaitForStartAsync(CancellationToken cancellationToken) => Task.CompletedTask;
        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }
}
