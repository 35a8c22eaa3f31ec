using System.Buffers.Binary;
using System.Diagnostics;
using VirtioGpuHost.Compositor.Wayland;
using VirtioGpuHost.Compositor.Wayland.Protocol;
using VirtioGpuHost.Interop;
using VirtioGpuHost.TestKit;
using static VirtioGpuHost.TestKit.WaylandWire;

namespace VirtioGpuHost.Fuzz.Targets;

/// <summary>
/// The built-in Wayland server's wire parser and request dispatch: the input is one client's
/// byte stream (with fds attached through SCM_RIGHTS) over the socketpair of
/// <see cref="WaylandServer.ConnectInProcess"/>, into the real server thread, the real
/// <c>WaylandClient</c> framing and fd queue, the generated dispatchers and every protocol
/// object (compositor, subcompositor, shm pools with real mmap, xdg-shell, data device,
/// viewporter, presentation-time).
/// </summary>
/// <remarks>
/// Input: records <c>[u8 fds][u8 flags][u16 length][bytes]</c>, each one sendmsg (at most
/// <see cref="MaxRecords"/>). fds bits 0-1: how many fds go with the record (0-3, only when it
/// has bytes; <see cref="MaxFdsPerInput"/> in all), bits 2-3, 4-5, 6-7: the kind of each
/// (0 memfd of 4 KiB, 1 memfd of 64 KiB, 2 memfd of 1 MiB, 3 the write end of a pipe). flags
/// bit 0: then wait until the server has handled everything sent so far (the harness sends a
/// wl_display.sync of its own, id <see cref="SyncId"/>, when the stream so far ends on a message
/// boundary, and waits for its done or the hang-up); bit 1: then an output frame is presented
/// (frame callbacks and presentation feedback are answered). After the last record the client
/// half-closes and the harness reads until the server closes the connection.
/// <para>
/// A fresh server per input: wl_display serials are global to a server (configure, ping and
/// sync done all take the next one), so on a shared server the seeds' ack_configure would
/// name serials that depend on every earlier input. State that could leak between clients is
/// checked instead: once the fuzzed client is gone, no window of it is left.
/// </para>
/// Expected: protocol errors (wl_display.error, then the server closes this client). Findings:
/// an Error-level log line (the server logs "failed; disconnecting", "posted work failed" and
/// "{object}.{request} failed" at Error for exceptions that are not protocol errors), a window
/// left mapped after its client left, a window image whose size disagrees with its memory, a
/// second well-behaved client that does not get its wl_display.sync answered, or no hang-up
/// within <see cref="Deadline"/>.
/// </remarks>
public sealed class WaylandTarget : IFuzzTarget
{
    public const int MaxRecords = 256;
    public const int MaxFdsPerInput = 16;
    /// <summary>The harness's own wl_callback id (a client id the seeds never use).</summary>
    public const uint SyncId = 0xfefffff0;
    public static readonly TimeSpan Deadline = TimeSpan.FromSeconds(4);
    private static readonly ulong[] MemFdSizes = [4096, 64 << 10, 1 << 20];

    public static WaylandServerOptions Options { get; } = new()
    {
        // A window image is width x height x 4 bytes, allocated per commit: bounded so that one
        // input stays fast (the default 8192 would allow 256 MiB per commit).
        MaxWindowSize = 2048,
        MaxPoolBytesPerClient = 4 << 20,
        MaxObjectsPerClient = 2000,
        // Pings only when xdg_surface is created (deterministic), not from the liveness timer.
        PingInterval = TimeSpan.FromHours(1),
        PingTimeout = TimeSpan.FromHours(1),
        TraceProtocol = true,
    };

    public string Name => "wayland";
    public string Description => "one Wayland client's bytes + fds (SCM_RIGHTS) into the built-in WaylandServer (wire parser, dispatch, every global)";
    public int MaxInputLength => 16384;

    /// <summary>What the last input did (seed checks): the events the fuzzed client received and the windows it mapped.</summary>
    public static RunInfo? Last { get; private set; }

    public sealed record RunInfo(List<Frame> Events, int WindowsMapped, bool ClosedByServer);

    public void Run(ReadOnlySpan<byte> input) => Last = Execute(input);

    private static RunInfo Execute(ReadOnlySpan<byte> input)
    {
        var records = Parse(input);
        var loggers = new CapturingLoggers();
        var clock = Stopwatch.StartNew();
        int mapped = 0; // updated on the server thread
        string? windowProblem = null;
        var server = new WaylandServer(Options, loggers);
        server.WindowChanged += w =>
        {
            Interlocked.Increment(ref mapped);
            var s = w.Pixels.AcquireCurrent();
            if (s is null) return;
            try
            {
                if (s.Width == 0 || s.Height == 0 || s.Width > Options.MaxWindowSize || s.Height > Options.MaxWindowSize ||
                    s.Stride < s.Width * 4 || s.Offset + (ulong)s.Stride * s.Height > s.Memory.Length)
                    windowProblem ??= $"{w}: image {s.Width}x{s.Height} stride {s.Stride} in {s.Memory.Length} bytes";
            }
            finally { s.Memory.Release(); }
        };
        List<Frame> events;
        bool closed;
        try
        {
            server.Start();
            using (var client = new FuzzClient(server, clock))
            {
                int fdsLeft = MaxFdsPerInput;
                for (int i = 0; i < records.Count && !client.Closed; i++)
                {
                    var (fdSpec, flags, bytes) = records[i];
                    int fdCount = bytes.Length == 0 ? 0 : Math.Min(fdSpec & 3, fdsLeft);
                    fdsLeft -= fdCount;
                    client.Send(bytes, fdSpec, fdCount);
                    if ((flags & 1) != 0) client.Sync();
                    if ((flags & 2) != 0) server.FramePresented(TimeSpan.FromMilliseconds(16 * (i + 1)));
                }
                client.FinishAndWaitForHangUp();
                events = client.Events;
                closed = client.Closed;
            }
            if (server.Windows.Count != 0)
                throw new FuzzInvariantException($"{server.Windows.Count} window(s) still mapped after their client left: {server.Windows[0]}");
            if (windowProblem is not null) throw new FuzzInvariantException(windowProblem);
            WellBehavedClientRoundTrip(server, clock);
        }
        finally
        {
            server.Dispose();
        }
        loggers.ThrowIfAny("the Wayland server");
        return new RunInfo(events, mapped, closed);
    }

    /// <summary>A second client connects after the fuzzed one and gets its wl_display.sync answered.</summary>
    private static void WellBehavedClientRoundTrip(WaylandServer server, Stopwatch clock)
    {
        using var c = new FuzzClient(server, clock);
        c.Send(Message(1, WlDisplay.Requests.Sync, 2u), 0, 0);
        if (!c.WaitFor(e => e.ObjectId == 2 && e.Opcode == WlCallback.Events.Done))
            throw new FuzzInvariantException($"a well-behaved client got no wl_callback.done (closed by the server: {c.Closed})");
    }

    private static List<(byte Fds, byte Flags, byte[] Bytes)> Parse(ReadOnlySpan<byte> input)
    {
        var records = new List<(byte, byte, byte[])>();
        int pos = 0;
        while (pos + 4 <= input.Length && records.Count < MaxRecords)
        {
            int n = Math.Min(BinaryPrimitives.ReadUInt16LittleEndian(input[(pos + 2)..]), input.Length - pos - 4);
            records.Add((input[pos], input[pos + 1], input.Slice(pos + 4, n).ToArray()));
            pos += 4 + n;
        }
        return records;
    }

    /// <summary>The client end of one in-process connection: sends records, reads (and frames) events, closes received fds.</summary>
    private sealed class FuzzClient : IDisposable
    {
        private readonly FdHandle _socket;
        private readonly Stopwatch _clock;
        private readonly List<byte> _in = [];
        private readonly byte[] _buffer = new byte[65536];
        // Framing of what this client sent: whether the stream ends on a message boundary.
        private readonly List<byte> _sent = [];
        private bool _sentBroken;

        public FuzzClient(WaylandServer server, Stopwatch clock)
        {
            _clock = clock;
            using var socket = server.ConnectInProcess("fuzz");
            using (var borrowed = new FdHandle((int)socket.Handle, ownsHandle: false)) _socket = borrowed.Duplicate();
            _socket.SetNonBlocking(true);
        }

        public List<Frame> Events { get; } = [];
        public bool Closed { get; private set; }

        public void Send(byte[] bytes, byte fdSpec, int fdCount)
        {
            var fds = new FdHandle[fdCount];
            try
            {
                for (int i = 0; i < fdCount; i++) fds[i] = MakeFd((fdSpec >> (2 + 2 * i)) & 3);
                int offset = 0;
                while (offset < bytes.Length && !Closed)
                {
                    var st = UnixSocket.Send(_socket, bytes.AsSpan(offset), offset == 0 ? fds : [], out int sent);
                    if (st == IoStatus.Closed) { Closed = true; break; }
                    if (st == IoStatus.WouldBlock) { Pump(10); continue; }
                    offset += sent;
                }
            }
            finally
            {
                foreach (var fd in fds) fd?.Dispose();
            }
            Track(bytes);
            Pump(0);
        }

        private static FdHandle MakeFd(int kind)
        {
            if (kind < 3) return MemFd.Create("fuzz-wl", MemFdSizes[kind]);
            var (read, write) = FdFiles.CreatePipe();
            read.Dispose();
            return write;
        }

        private void Track(byte[] bytes)
        {
            if (_sentBroken) return;
            _sent.AddRange(bytes);
            var frames = new List<Frame>();
            if (!TakeFrames(_sent, frames)) _sentBroken = true;
        }

        /// <summary>
        /// Waits until the server has handled everything sent so far: a wl_display.sync of the
        /// harness when the stream ends on a message boundary (its done, or the hang-up), else
        /// only when the stream is already broken (the server is sure to close).
        /// </summary>
        public void Sync()
        {
            if (Closed) return;
            if (_sentBroken || _sent.Count > 0)
            {
                if (_sentBroken) WaitFor(_ => false);
                return;
            }
            Send(Message(1, WlDisplay.Requests.Sync, SyncId), 0, 0);
            WaitFor(e => e.ObjectId == SyncId && e.Opcode == WlCallback.Events.Done);
        }

        public void FinishAndWaitForHangUp()
        {
            if (!Closed)
            {
                try { UnixSocket.ShutdownWrite(_socket); }
                catch (IOException) { }
            }
            WaitFor(_ => false);
        }

        /// <summary>Reads until an event matches (true) or the server closes (false); past the deadline: a hang.</summary>
        public bool WaitFor(Func<Frame, bool> until)
        {
            int seen = 0;
            while (true)
            {
                for (; seen < Events.Count; seen++) if (until(Events[seen])) return true;
                if (Closed) return false;
                var left = Deadline - _clock.Elapsed;
                if (left <= TimeSpan.Zero) throw new FuzzHangException($"the Wayland server neither answered nor closed the connection within {Deadline.TotalSeconds} s");
                Pump((int)Math.Max(1, left.TotalMilliseconds));
            }
        }

        /// <summary>Reads what is there (waiting up to <paramref name="timeoutMs"/> for the first bytes).</summary>
        private void Pump(int timeoutMs)
        {
            if (Closed || !Poller.WaitReadable(_socket, timeoutMs)) return;
            while (!Closed)
            {
                var fds = new List<FdHandle>();
                IoStatus st;
                int n;
                try { st = UnixSocket.Receive(_socket, _buffer, fds, out n); }
                catch (IOException) { st = IoStatus.Closed; n = 0; }
                foreach (var fd in fds) fd.Dispose();
                if (st == IoStatus.WouldBlock) return;
                if (st == IoStatus.Closed) { Closed = true; return; }
                _in.AddRange(_buffer.AsSpan(0, n));
                if (!TakeFrames(_in, Events)) throw new FuzzInvariantException($"the server sent a malformed event header: {Convert.ToHexString(_in.Take(8).ToArray())}");
            }
        }

        public void Dispose() => _socket.Dispose();
    }

    // ---- seeds: sessions a real client would have, built from the generated protocol constants ----

    public IEnumerable<(string Name, byte[] Data)> Seeds()
    {
        var globals = AdvertisedGlobals();
        (uint Name, uint Version) G(string iface)
        {
            var g = globals.First(g => g.Interface == iface);
            return (g.Name, g.Version);
        }

        // Every global bound at the version it is advertised with.
        var s = new Session();
        uint registry = s.GetRegistry();
        foreach (var (name, iface, version) in globals) s.Bind(registry, name, iface, version);
        s.Sync();
        yield return ("registry-bind-all", s.ToArray());

        yield return ("shm-toplevel", ShmToplevel(G, extra: null));
        yield return ("subsurface", ShmToplevel(G, extra: (s2, b, surface, buffer) =>
        {
            uint sub = b.Bind(s2.RegistryId, WlSubcompositor.InterfaceName);
            uint child = s2.Id();
            s2.Add(Message(b.Compositor, WlCompositor.Requests.CreateSurface, child));
            uint subsurface = s2.Id();
            s2.Add(Message(sub, WlSubcompositor.Requests.GetSubsurface, subsurface, child, surface));
            s2.Add(Message(subsurface, WlSubsurface.Requests.SetPosition, 8, 8));
            s2.Add(Message(subsurface, WlSubsurface.Requests.PlaceAbove, surface));
            s2.Add(Message(subsurface, WlSubsurface.Requests.SetDesync));
            s2.Add(Message(child, WlSurface.Requests.Attach, buffer, 0, 0));
            s2.Add(Message(child, WlSurface.Requests.DamageBuffer, 0, 0, 16, 16));
            s2.Add(Message(child, WlSurface.Requests.Commit));
            s2.Add(Message(surface, WlSurface.Requests.Commit), sync: true);
            s2.Add(Message(subsurface, WlSubsurface.Requests.Destroy));
            s2.Add(Message(child, WlSurface.Requests.Destroy), sync: true);
        }));
        yield return ("viewporter", ShmToplevel(G, extra: (s2, b, surface, _) =>
        {
            uint vp = b.Bind(s2.RegistryId, WpViewporter.InterfaceName);
            uint viewport = s2.Id();
            s2.Add(Message(vp, WpViewporter.Requests.GetViewport, viewport, surface));
            s2.Add(Message(viewport, WpViewport.Requests.SetSource, 4 * 256, 4 * 256, 32 * 256, 16 * 256));
            s2.Add(Message(viewport, WpViewport.Requests.SetDestination, 128, 64));
            s2.Add(Message(surface, WlSurface.Requests.Commit), sync: true, frame: true);
            s2.Add(Message(viewport, WpViewport.Requests.Destroy));
            s2.Add(Message(surface, WlSurface.Requests.Commit), sync: true);
        }));
        yield return ("presentation-feedback", ShmToplevel(G, extra: (s2, b, surface, buffer) =>
        {
            uint pres = b.Bind(s2.RegistryId, WpPresentation.InterfaceName);
            uint fb = s2.Id(), cb = s2.Id();
            s2.Add(Message(pres, WpPresentation.Requests.Feedback, surface, fb));
            s2.Add(Message(surface, WlSurface.Requests.Frame, cb));
            s2.Add(Message(surface, WlSurface.Requests.Attach, buffer, 0, 0));
            s2.Add(Message(surface, WlSurface.Requests.DamageBuffer, 0, 0, 64, 64));
            s2.Add(Message(surface, WlSurface.Requests.Commit), sync: true, frame: true);
            s2.Sync();
        }));
        yield return ("popup-positioner", ShmToplevel(G, extra: (s2, b, surface, _) =>
        {
            uint positioner = s2.Id();
            s2.Add(Message(b.Wm, XdgWmBase.Requests.CreatePositioner, positioner));
            s2.Add(Message(positioner, XdgPositioner.Requests.SetSize, 32, 16));
            s2.Add(Message(positioner, XdgPositioner.Requests.SetAnchorRect, 0, 0, 8, 8));
            s2.Add(Message(positioner, XdgPositioner.Requests.SetOffset, 2, 3));
            uint popupSurface = s2.Id(), popupXdg = s2.Id(), popup = s2.Id();
            s2.Add(Message(b.Compositor, WlCompositor.Requests.CreateSurface, popupSurface));
            s2.Add(Message(b.Wm, XdgWmBase.Requests.GetXdgSurface, popupXdg, popupSurface));
            s2.Add(Message(popupXdg, XdgSurface.Requests.GetPopup, popup, b.Xdg, positioner));
            s2.Add(Message(popupSurface, WlSurface.Requests.Commit), sync: true);
            s2.Add(Message(popup, XdgPopup.Requests.Destroy));
            s2.Add(Message(popupXdg, XdgSurface.Requests.Destroy));
            s2.Add(Message(positioner, XdgPositioner.Requests.Destroy), sync: true);
        }));

        // Clipboard: a data source offered as the selection.
        s = new Session();
        registry = s.GetRegistry();
        uint ddm = s.Id(), seat = s.Id();
        s.Bind(registry, G(WlDataDeviceManager.InterfaceName).Name, WlDataDeviceManager.InterfaceName, G(WlDataDeviceManager.InterfaceName).Version, ddm);
        s.Bind(registry, G(WlSeat.InterfaceName).Name, WlSeat.InterfaceName, G(WlSeat.InterfaceName).Version, seat);
        uint source = s.Id(), device = s.Id();
        s.Add(Message(ddm, WlDataDeviceManager.Requests.CreateDataSource, source));
        s.Add(Message(source, WlDataSource.Requests.Offer, "text/plain;charset=utf-8"));
        s.Add(Message(source, WlDataSource.Requests.SetActions, 1u));
        s.Add(Message(ddm, WlDataDeviceManager.Requests.GetDataDevice, device, seat));
        s.Add(Message(device, WlDataDevice.Requests.SetSelection, source, 0u), sync: true);
        s.Add(Message(device, WlDataDevice.Requests.SetSelection, 0u, 0u), sync: true);
        yield return ("data-device-selection", s.ToArray());

        // wl_shm pools: a 1 MiB memfd grown into, buffers of several formats, and a pipe (refused).
        s = new Session();
        registry = s.GetRegistry();
        uint shm = s.Id();
        s.Bind(registry, G(WlShm.InterfaceName).Name, WlShm.InterfaceName, G(WlShm.InterfaceName).Version, shm);
        uint pool = s.Id();
        s.Add(Message(shm, WlShm.Requests.CreatePool, pool, 4096), fdKinds: [2]);
        s.Add(Message(pool, WlShmPool.Requests.Resize, 1 << 20));
        uint b1 = s.Id(), b2 = s.Id();
        s.Add(Message(pool, WlShmPool.Requests.CreateBuffer, b1, 0, 256, 256, 1024, (uint)WlShm.Format.Xrgb8888));
        s.Add(Message(pool, WlShmPool.Requests.CreateBuffer, b2, 4096, 16, 16, 64, (uint)WlShm.Format.Argb8888));
        s.Add(Message(pool, WlShmPool.Requests.Destroy));
        s.Add(Message(b1, WlBuffer.Requests.Destroy), sync: true);
        uint pipePool = s.Id();
        s.Add(Message(shm, WlShm.Requests.CreatePool, pipePool, 4096), fdKinds: [3], sync: true);
        yield return ("shm-pools", s.ToArray());
    }

    /// <summary>The objects of the toplevel session that extensions build on.</summary>
    private sealed class Bound(Session s, Func<string, (uint Name, uint Version)> globals)
    {
        public uint Compositor, Shm, Wm, Xdg;
        public uint Bind(uint registry, string iface)
        {
            uint id = s.Id();
            var (name, version) = globals(iface);
            s.Bind(registry, name, iface, version, id);
            return id;
        }
    }

    /// <summary>
    /// A wl_shm toplevel as weston-simple-shm makes it: bind, surface, 64x64 buffer in a 64 KiB
    /// memfd pool, xdg_surface + toplevel, initial commit, ack_configure (the serial the server
    /// sent, found by running the session so far), pong, attach + damage + frame + commit; then
    /// <paramref name="extra"/> and the teardown.
    /// </summary>
    private static byte[] ShmToplevel(Func<string, (uint Name, uint Version)> globals, Action<Session, Bound, uint, uint>? extra)
    {
        var s = new Session();
        var b = new Bound(s, globals);
        uint registry = s.GetRegistry();
        b.Compositor = b.Bind(registry, WlCompositor.InterfaceName);
        b.Shm = b.Bind(registry, WlShm.InterfaceName);
        b.Wm = b.Bind(registry, XdgWmBase.InterfaceName);
        uint surface = s.Id(), pool = s.Id(), buffer = s.Id(), top = s.Id(), cb = s.Id();
        b.Xdg = s.Id();
        s.Add(Message(b.Compositor, WlCompositor.Requests.CreateSurface, surface));
        s.Add(Message(b.Shm, WlShm.Requests.CreatePool, pool, 64 << 10), fdKinds: [1]);
        s.Add(Message(pool, WlShmPool.Requests.CreateBuffer, buffer, 0, 64, 64, 256, (uint)WlShm.Format.Argb8888));
        s.Add(Message(pool, WlShmPool.Requests.Destroy));
        s.Add(Message(b.Wm, XdgWmBase.Requests.GetXdgSurface, b.Xdg, surface));
        s.Add(Message(b.Xdg, XdgSurface.Requests.GetToplevel, top));
        s.Add(Message(top, XdgToplevel.Requests.SetTitle, "fuzz"));
        s.Add(Message(top, XdgToplevel.Requests.SetAppId, "org.example.fuzz"));
        s.Add(Message(surface, WlSurface.Requests.Commit), sync: true);

        var events = Execute(s.ToArray()).Events;
        uint configure = events.Last(e => e.ObjectId == b.Xdg && e.Opcode == XdgSurface.Events.Configure).U(0);
        uint ping = events.Last(e => e.ObjectId == b.Wm && e.Opcode == XdgWmBase.Events.Ping).U(0);
        s.Add(Message(b.Wm, XdgWmBase.Requests.Pong, ping));
        s.Add(Message(b.Xdg, XdgSurface.Requests.AckConfigure, configure));
        s.Add(Message(b.Xdg, XdgSurface.Requests.SetWindowGeometry, 0, 0, 64, 64));
        s.Add(Message(surface, WlSurface.Requests.Attach, buffer, 0, 0));
        s.Add(Message(surface, WlSurface.Requests.DamageBuffer, 0, 0, 64, 64));
        s.Add(Message(surface, WlSurface.Requests.Frame, cb));
        s.Add(Message(surface, WlSurface.Requests.Commit), sync: true, frame: true);
        s.Sync();
        extra?.Invoke(s, b, surface, buffer);
        s.Add(Message(top, XdgToplevel.Requests.Destroy));
        s.Add(Message(b.Xdg, XdgSurface.Requests.Destroy));
        s.Add(Message(surface, WlSurface.Requests.Destroy));
        s.Add(Message(buffer, WlBuffer.Requests.Destroy), sync: true);
        return s.ToArray();
    }

    /// <summary>The globals the fuzz server advertises (name, interface, version), from a wl_registry round trip.</summary>
    private static List<(uint Name, string Interface, uint Version)> AdvertisedGlobals()
    {
        var s = new Session();
        uint registry = s.GetRegistry();
        return Execute(s.ToArray()).Events
            .Where(e => e.ObjectId == registry && e.Opcode == WlRegistry.Events.Global)
            .Select(e => (e.U(0), e.S(1), e.U(2 + ((int)e.U(1) + 3) / 4)))
            .ToList();
    }

    /// <summary>Writes records in the input format; hands out client object ids from 2.</summary>
    private sealed class Session
    {
        private readonly List<byte> _bytes = [];
        private uint _nextId = 2;

        public uint RegistryId { get; private set; }

        public uint Id() => _nextId++;

        public void Add(byte[] message, int[]? fdKinds = null, bool sync = false, bool frame = false)
        {
            fdKinds ??= [];
            int spec = fdKinds.Length;
            for (int i = 0; i < fdKinds.Length; i++) spec |= fdKinds[i] << (2 + 2 * i);
            _bytes.Add((byte)spec);
            _bytes.Add((byte)((sync ? 1 : 0) | (frame ? 2 : 0)));
            _bytes.Add((byte)message.Length);
            _bytes.Add((byte)(message.Length >> 8));
            _bytes.AddRange(message);
        }

        /// <summary>An empty record that only waits for the server (flag bit 0).</summary>
        public void Sync()
        {
            _bytes.AddRange([0, 1, 0, 0]);
        }

        public uint GetRegistry()
        {
            RegistryId = Id();
            Add(Message(1, WlDisplay.Requests.GetRegistry, RegistryId), sync: true);
            return RegistryId;
        }

        public void Bind(uint registry, uint name, string iface, uint version, uint? id = null) =>
            Add(Message(registry, WlRegistry.Requests.Bind, name, iface, version, id ?? Id()));

        public byte[] ToArray() => _bytes.ToArray();
    }
}
