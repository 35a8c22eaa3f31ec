using System.Buffers.Binary;
using System.Diagnostics;
using System.Reflection;
using System.Text;
using Microsoft.Extensions.Logging;
using VirtioGpuHost.Compositor.Wayland;
using VirtioGpuHost.Interop;

[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]

namespace VirtioGpuHost.Wayland.Tests;

/// <summary>A started server listening in its own 0700 runtime directory.</summary>
internal sealed class TestServer : IDisposable
{
    private readonly Timer? _clock;
    private readonly Stopwatch _time = Stopwatch.StartNew();

    public TestServer(WaylandServerOptions? options = null, bool clock = false, string owner = "vm-a")
    {
        RuntimeDir = Directory.CreateTempSubdirectory("wl-test-").FullName;
        File.SetUnixFileMode(RuntimeDir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        SocketPath = Path.Combine(RuntimeDir, "wayland-0");
        Logs = new ListLoggerProvider();
        Loggers = LoggerFactory.Create(b => b.AddProvider(Logs).SetMinimumLevel(LogLevel.Debug));
        Server = new WaylandServer(options ?? new WaylandServerOptions(), Loggers);
        Server.Listen(SocketPath, owner);
        Server.Start();
        // A 60 Hz output clock: answers frame callbacks the way the compositor's frame loop will.
        if (clock) _clock = new Timer(_ => Server.FramePresented(_time.Elapsed), null, 16, 16);
    }

    public string RuntimeDir { get; }
    public string SocketPath { get; }
    public WaylandServer Server { get; }
    public ILoggerFactory Loggers { get; }
    public ListLoggerProvider Logs { get; }

    public void Dispose()
    {
        _clock?.Dispose();
        Server.Dispose();
        Loggers.Dispose();
        try { Directory.Delete(RuntimeDir, recursive: true); } catch (IOException) { }
    }
}

/// <summary>Collects log lines (tests check the one-line-per-error rule and show them on failure).</summary>
internal sealed class ListLoggerProvider : ILoggerProvider
{
    private readonly List<string> _lines = [];
    public IReadOnlyList<string> Lines { get { lock (_lines) return _lines.ToList(); } }
    public ILogger CreateLogger(string categoryName) => new L(this);
    public void Dispose() { }

    private sealed class L(ListLoggerProvider p) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
        public bool IsEnabled(LogLevel logLevel) => true;
        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            lock (p._lines) p._lines.Add($"{logLevel}: {formatter(state, exception)}{(exception is null ? "" : " " + exception)}");
        }
    }
}

/// <summary>One event as received by <see cref="RawClient"/>.</summary>
internal sealed record RawEvent(uint ObjectId, ushort Opcode, byte[] Body)
{
    public uint U(int i) => BinaryPrimitives.ReadUInt32LittleEndian(Body.AsSpan(i * 4));
    public int I(int i) => BinaryPrimitives.ReadInt32LittleEndian(Body.AsSpan(i * 4));

    /// <summary>The string argument starting at word <paramref name="word"/>.</summary>
    public string S(int word)
    {
        int len = (int)U(word);
        return len == 0 ? "" : Encoding.UTF8.GetString(Body, word * 4 + 4, len - 1);
    }
}

/// <summary>
/// A hand-driven Wayland client over a raw socket: sends exactly the bytes a test builds
/// (well-formed or not) and reads events back. Opcodes come from the generated code.
/// </summary>
internal sealed class RawClient : IDisposable
{
    private readonly FdHandle _socket;
    private readonly List<byte> _in = [];
    public List<RawEvent> Events { get; } = [];
    public List<FdHandle> ReceivedFds { get; } = [];
    private uint _nextId = 2;

    public RawClient(string path)
    {
        _socket = UnixSocket.Connect(path);
        UnixSocket.SetReceiveTimeout(_socket, TimeSpan.FromSeconds(5));
    }

    /// <summary>Over an already connected socket (ConnectInProcess); takes ownership.</summary>
    public RawClient(FdHandle socket) => _socket = socket;

    public uint NewId() => _nextId++;

    /// <summary>One request's bytes (the encoder is shared with the fuzz seeds: TestKit's WaylandWire).</summary>
    public static byte[] Message(uint obj, ushort opcode, params object[] args) => VirtioGpuHost.TestKit.WaylandWire.Message(obj, opcode, args);

    public void Send(uint obj, ushort opcode, params object[] args) => SendRaw(Message(obj, opcode, args));

    public void SendWithFds(byte[] bytes, params FdHandle[] fds)
    {
        var st = UnixSocket.Send(_socket, bytes, fds, out int sent);
        if (st != IoStatus.Ok || sent != bytes.Length) throw new IOException($"send: {st} {sent}/{bytes.Length}");
    }

    public void SendRaw(byte[] bytes) => SendWithFds(bytes);

    /// <summary>Reads until <paramref name="until"/> matches an event or the server closes; returns false on close/timeout.</summary>
    public bool ReadUntil(Func<RawEvent, bool> until, int timeoutMs = 5000)
    {
        var deadline = Environment.TickCount64 + timeoutMs;
        int seen = 0;
        while (true)
        {
            for (; seen < Events.Count; seen++) if (until(Events[seen])) return true;
            if (Environment.TickCount64 > deadline) return false;
            if (!ReadSome((int)Math.Max(1, deadline - Environment.TickCount64))) return false;
        }
    }

    private bool ReadSome(int timeoutMs)
    {
        if (!Poller.WaitReadable(_socket, timeoutMs)) return true;
        var buf = new byte[65536];
        var st = UnixSocket.Receive(_socket, buf, ReceivedFds, out int n);
        if (st == IoStatus.Closed || n == 0) { Closed = true; return false; }
        _in.AddRange(buf.AsSpan(0, n).ToArray());
        while (_in.Count >= 8)
        {
            var head = _in.GetRange(0, 8).ToArray();
            uint obj = BinaryPrimitives.ReadUInt32LittleEndian(head);
            uint w = BinaryPrimitives.ReadUInt32LittleEndian(head.AsSpan(4));
            int size = (int)(w >> 16);
            if (_in.Count < size) break;
            Events.Add(new RawEvent(obj, (ushort)(w & 0xffff), _in.GetRange(8, size - 8).ToArray()));
            _in.RemoveRange(0, size);
        }
        return true;
    }

    public bool Closed { get; private set; }

    /// <summary>wl_display.sync round trip; false if the server closed the connection.</summary>
    public bool Roundtrip()
    {
        uint cb = NewId();
        try { Send(1, 0, cb); } // wl_display.sync
        catch (IOException) { Closed = true; return false; }
        return ReadUntil(e => e.ObjectId == cb);
    }

    /// <summary>Waits for wl_display.error and then for the server to close the socket.</summary>
    public (uint Object, uint Code, string Message) ExpectError()
    {
        Assert.True(ReadUntil(e => e.ObjectId == 1 && e.Opcode == 0), "no wl_display.error arrived");
        var e = Events.Last(e => e.ObjectId == 1 && e.Opcode == 0);
        // The server closes the connection after the error.
        ReadUntil(_ => false, 5000);
        Assert.True(Closed, "the server did not close the connection after the error");
        return (e.U(0), e.U(1), e.S(2));
    }

    /// <summary>get_registry + roundtrip: interface name to (global name, version).</summary>
    public Dictionary<string, (uint Name, uint Version)> Globals()
    {
        uint reg = NewId();
        Send(1, 1, reg);
        Assert.True(Roundtrip());
        Registry = reg;
        return Events.Where(e => e.ObjectId == reg && e.Opcode == 0)
            .ToDictionary(e => e.S(1), e => (e.U(0), e.U(2 + ((int)e.U(1) + 3) / 4)));
    }

    public uint Registry { get; private set; }

    /// <summary>wl_registry.bind (generic new_id: name, interface, version, id).</summary>
    public uint Bind(Dictionary<string, (uint Name, uint Version)> globals, string iface, uint version)
    {
        uint id = NewId();
        Send(Registry, 0, globals[iface].Name, iface, version, id);
        return id;
    }

    /// <summary>A memfd holding <paramref name="pixels"/> (little-endian 0xAARRGGBB words).</summary>
    public static FdHandle PoolFile(uint[] pixels, int extraBytes = 0)
    {
        var fd = MemFd.Create("wl-test-pool", (ulong)(pixels.Length * 4 + extraBytes));
        var bytes = System.Runtime.InteropServices.MemoryMarshal.AsBytes(pixels.AsSpan()).ToArray();
        Assert.True(FdFiles.WriteAll(fd, bytes));
        return fd;
    }

    /// <summary>wl_shm.create_pool with the fd attached.</summary>
    public uint CreatePool(uint shm, FdHandle fd, int size)
    {
        uint pool = NewId();
        SendWithFds(Message(shm, 0 /* create_pool */, pool, size), fd);
        return pool;
    }

    public void Dispose()
    {
        _socket.Dispose();
        foreach (var fd in ReceivedFds) fd.Dispose();
    }
}

internal static class TestPaths
{
    public static string RepoRoot { get; } = typeof(TestPaths).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
        .First(a => a.Key == "RepoRoot").Value!;
}
