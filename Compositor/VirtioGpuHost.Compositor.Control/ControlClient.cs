using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;

namespace VirtioGpuHost.Compositor.Control;

/// <summary>An answer of the control API: status, body, and the error message of a 4xx/5xx.</summary>
public sealed record ControlResponse(int Status, byte[] Body, string? ContentType)
{
    public bool Ok => Status is >= 200 and < 300;
    public string Text => Encoding.UTF8.GetString(Body);

    /// <summary>The answer as <typeparamref name="T"/>; a failed request throws with the server's message.</summary>
    public T Json<T>() => Ok
        ? JsonSerializer.Deserialize<T>(Body, ControlJson.Options) ?? throw new InvalidDataException("empty JSON answer")
        : throw new InvalidOperationException($"{Status}: {Error().Error}");

    /// <summary>The error document of a failed request (a plain message when the body is not one).</summary>
    public ErrorDto Error()
    {
        try { return JsonSerializer.Deserialize<ErrorDto>(Body, ControlJson.Options) ?? new ErrorDto(Status, Text); }
        catch (JsonException) { return new ErrorDto(Status, Text); }
    }
}

/// <summary>HTTP client of the control API over TCP (http://HOST:PORT) or a Unix socket (unix:/path).</summary>
public sealed class ControlClient : IDisposable
{
    private readonly HttpClient _http;

    public ControlClient(string server, TimeSpan? timeout = null)
    {
        if (server.StartsWith("unix:", StringComparison.Ordinal))
        {
            string path = server[5..];
            var handler = new SocketsHttpHandler
            {
                ConnectCallback = async (_, cancel) =>
                {
                    var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                    try
                    {
                        await socket.ConnectAsync(new UnixDomainSocketEndPoint(path), cancel).ConfigureAwait(false);
                        return new NetworkStream(socket, ownsSocket: true);
                    }
                    catch
                    {
                        socket.Dispose();
                        throw;
                    }
                },
            };
            _http = new HttpClient(handler) { BaseAddress = new Uri("http://localhost/") };
        }
        else
        {
            var url = server.Contains("://", StringComparison.Ordinal) ? server : "http://" + server;
            if (!url.EndsWith('/')) url += "/";
            _http = new HttpClient { BaseAddress = new Uri(url) };
        }
        _http.Timeout = timeout ?? TimeSpan.FromSeconds(30);
    }

    public Task<ControlResponse> GetAsync(string path, CancellationToken cancel = default) => SendAsync(HttpMethod.Get, path, null, null, cancel);

    public async Task<ControlResponse> SendAsync(HttpMethod method, string path, string? body, string? contentType, CancellationToken cancel = default)
    {
        using var request = new HttpRequestMessage(method, path.TrimStart('/'));
        if (body is not null)
        {
            request.Content = new StringContent(body, Encoding.UTF8);
            request.Content.Headers.ContentType = new MediaTypeHeaderValue(contentType ?? "text/plain") { CharSet = "utf-8" };
            // A large body waits for "100 Continue": a server that refuses it (413) answers before
            // we write it, instead of closing the connection under our write (a broken pipe).
            if (body.Length > 64 * 1024) request.Headers.ExpectContinue = true;
        }
        using var response = await _http.SendAsync(request, cancel).ConfigureAwait(false);
        var bytes = await response.Content.ReadAsByteArrayAsync(cancel).ConfigureAwait(false);
        return new ControlResponse((int)response.StatusCode, bytes, response.Content.Headers.ContentType?.MediaType);
    }

    public void Dispose() => _http.Dispose();
}
