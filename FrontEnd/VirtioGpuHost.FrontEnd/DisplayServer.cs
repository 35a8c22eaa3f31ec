using System.Buffers.Binary;
using System.Diagnostics;
using System.Runtime.InteropServices;
using VirtioGpuHost.Device.Edid;
using VirtioGpuHost.Device.Wire;
using VirtioGpuHost.Interop;
using VirtioGpuHost.VhostUser.Display;
using VirtioGpuHost.VhostUser.Wire;

namespace VirtioGpuHost.FrontEnd;

/// <summary>One UPDATE as the display received it (Crc: CRC-32 of its pixels when <see cref="DisplayServerOptions.HashUpdates"/>).</summary>
public sealed record DisplayUpdate(uint Scanout, uint X, uint Y, uint Width, uint Height, long ReceivedTimestamp, uint Flags, uint? Crc = null);

/// <summary>The cursor as the display last saw it.</summary>
public sealed record DisplayCursor(uint Scanout, uint X, uint Y, bool Visible, uint HotX, uint HotY, uint[]? Image);

/// <summary>Settings of the display side (defaults are what QEMU 10 with `-display none` does).</summary>
public sealed class DisplayServerOptions
{
    /// <summary>Protocol features offered in GET_PROTOCOL_FEATURES (QEMU: EDID | DMABUF2).</summary>
    public GpuDisplayProtocolFeatures Features { get; init; } = GpuDisplayProtocolFeatures.Edid | GpuDisplayProtocolFeatures.Dmabuf2;

    /// <summary>QEMU's max_outputs: messages for scanouts at or above it are dropped (GET_EDID gets no reply).</summary>
    public int MaxOutputs { get; init; } = 1;

    /// <summary>Mode of each head reported in GET_DISPLAY_INFO (QEMU's xres/yres, 1280x800 by default).</summary>
    public uint Width { get; init; } = 1280;
    public uint Height { get; init; } = 800;

    /// <summary>Heads reported enabled (QEMU enables only head 0 without a UI).</summary>
    public int EnabledHeads { get; init; } = 1;

    /// <summary>Largest message accepted (UPDATE of 16384x16384 would be 1 GiB).</summary>
    public int MaxMessageBytes { get; init; } = 256 << 20;

    /// <summary>Apply UPDATE pixels to the console surfaces (off only to measure the transport).</summary>
    public bool ApplyUpdates { get; init; } = true;

    /// <summary>Record a CRC-32 of every UPDATE's pixels (tests that look for torn frames).</summary>
    public bool HashUpdates { get; init; }

    /// <summary>Wait this long before reading each UPDATE's pixels (a slow display).</summary>
    public TimeSpan UpdateReadDelay { get; init; }
}

/// <summary>
/// The display side of the vhost-user-gpu display socket, as QEMU implements it
/// (hw/display/vhost-user-gpu.c): answers the back-end's queries and keeps a console
/// surface per scanout that SCANOUT creates (blank) and UPDATE paints, so tests can read
/// the pixels a guest would see. Runs a reader thread.
/// </summary>
public sealed class DisplayServer : IDisposable
{
    private readonly FdHandle _socket;
    private readonly DisplayServerOptions _options;
    private readonly Thread _thread;
    private readonly object _lock = new();
    private readonly Surface?[] _surfaces = new Surface?[VirtioGpuLimits.MaxScanouts];
    private readonly List<DisplayUpdate> _updates = new();
    private readonly List<(GpuDisplayRequest Request, uint Flags, uint Size)> _log = new();
    private volatile bool _stopping;
    private byte[] _rectBuffer = new byte[64 << 10];

    public DisplayServer(FdHandle socket, DisplayServerOptions? options = null)
    {
        _socket = socket;
        _options = options ?? new DisplayServerOptions();
        _thread = new Thread(Run) { IsBackground = true, Name = "display-server" };
        _thread.Start();
    }

    /// <summary>Protocol features the back-end set with SET_PROTOCOL_FEATURES (null until it does).</summary>
    public GpuDisplayProtocolFeatures? AgreedFeatures { get; private set; }

    public bool Closed { get; private set; }

    /// <summary>The first protocol error seen (the display stops reading then, as QEMU would drop the connection).</summary>
    public string? Error { get; private set; }

    public long UpdateCount { get { lock (_lock) return _updates.Count; } }
    public long UpdateBytes { get; private set; }

    public DisplayCursor? Cursor { get; private set; }

    public IReadOnlyList<DisplayUpdate> Updates { get { lock (_lock) return _updates.ToArray(); } }

    /// <summary>Every request received: id, (possibly garbage) flags, size.</summary>
    public IReadOnlyList<(GpuDisplayRequest Request, uint Flags, uint Size)> Requests { get { lock (_lock) return _log.ToArray(); } }

    /// <summary>Raised on the reader thread after each UPDATE was applied.</summary>
    public event Action<DisplayUpdate>? UpdateReceived;

    /// <summary>A copy of a scanout's console: width, height and XRGB pixels (null when disabled).</summary>
    public (uint Width, uint Height, uint[] Pixels)? Snapshot(uint scanout)
    {
        lock (_lock)
        {
            var s = _surfaces[scanout];
            return s is null ? null : (s.Width, s.Height, (uint[])s.Pixels.Clone());
        }
    }

    /// <summary>Waits until <paramref name="condition"/> holds (checked after every message).</summary>
    public bool WaitFor(Func<DisplayServer, bool> condition, TimeSpan timeout)
    {
        var sw = Stopwatch.StartNew();
        lock (_lock)
        {
            while (!condition(this))
            {
                var left = timeout - sw.Elapsed;
                if (left <= TimeSpan.Zero || Closed) return condition(this);
                Monitor.Wait(_lock, left);
            }
            return true;
        }
    }

    private void Run()
    {
        var header = new byte[VhostUserHeader.Length];
        byte[] payload = new byte[64 << 10];
        try
        {
            while (!_stopping)
            {
                if (!ReadExactly(header)) break;
                var h = VhostUserHeader.Read(header);
                if (h.Size > _options.MaxMessageBytes) { Fail($"message {h.Request} of {h.Size} bytes exceeds the limit"); break; }
                // Requests' flags are not trusted (the C back-ends send garbage there).
                lock (_lock) _log.Add(((GpuDisplayRequest)h.Request, h.Flags, h.Size));
                if ((GpuDisplayRequest)h.Request == GpuDisplayRequest.Update && h.Size >= 20)
                {
                    // Pixels go straight from the socket into the console surface (one copy).
                    if (!ReceiveUpdate(h)) break;
                    lock (_lock) Monitor.PulseAll(_lock);
                    continue;
                }
                if (payload.Length < h.Size) payload = new byte[Math.Max(h.Size, payload.Length * 2)];
                if (!ReadExactly(payload.AsSpan(0, (int)h.Size))) break;
                Handle(h, payload.AsSpan(0, (int)h.Size));
                lock (_lock) Monitor.PulseAll(_lock);
            }
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException)
        {
            if (!_stopping) Fail(e.Message);
        }
        catch (Exception e)
        {
            // A test display must report what the back-end sent, never take the test host down.
            Fail($"display server: {e.GetType().Name}: {e.Message}");
        }
        finally
        {
            lock (_lock)
            {
                Closed = true;
                Monitor.PulseAll(_lock);
            }
        }
    }

    private void Fail(string error)
    {
        Error ??= error;
    }

    private void Handle(VhostUserHeader h, ReadOnlySpan<byte> p)
    {
        switch ((GpuDisplayRequest)h.Request)
        {
            case GpuDisplayRequest.GetProtocolFeatures:
                Reply(h.Request, BitConverter.GetBytes((ulong)_options.Features));
                break;
            case GpuDisplayRequest.SetProtocolFeatures when p.Length == 8:
                AgreedFeatures = (GpuDisplayProtocolFeatures)BinaryPrimitives.ReadUInt64LittleEndian(p);
                break;
            case GpuDisplayRequest.GetDisplayInfo:
                Reply(h.Request, DisplayInfo());
                break;
            case GpuDisplayRequest.GetEdid when p.Length >= 4:
                uint edidScanout = BinaryPrimitives.ReadUInt32LittleEndian(p);
                if (edidScanout < _options.MaxOutputs) Reply(h.Request, Edid(edidScanout));
                break; // QEMU drops it: no reply at all
            case GpuDisplayRequest.Scanout when p.Length >= 12:
                Scanout(BinaryPrimitives.ReadUInt32LittleEndian(p), BinaryPrimitives.ReadUInt32LittleEndian(p[4..]), BinaryPrimitives.ReadUInt32LittleEndian(p[8..]));
                break;
            case GpuDisplayRequest.CursorPos or GpuDisplayRequest.CursorPosHide when p.Length >= 12:
                var prev = Cursor;
                Cursor = new DisplayCursor(BinaryPrimitives.ReadUInt32LittleEndian(p), BinaryPrimitives.ReadUInt32LittleEndian(p[4..]), BinaryPrimitives.ReadUInt32LittleEndian(p[8..]),
                    (GpuDisplayRequest)h.Request == GpuDisplayRequest.CursorPos, prev?.HotX ?? 0, prev?.HotY ?? 0, prev?.Image);
                break;
            case GpuDisplayRequest.CursorUpdate when p.Length >= GpuDisplayWire.CursorUpdateSize:
                Cursor = new DisplayCursor(BinaryPrimitives.ReadUInt32LittleEndian(p), BinaryPrimitives.ReadUInt32LittleEndian(p[4..]), BinaryPrimitives.ReadUInt32LittleEndian(p[8..]), true,
                    BinaryPrimitives.ReadUInt32LittleEndian(p[12..]), BinaryPrimitives.ReadUInt32LittleEndian(p[16..]), MemoryMarshal.Cast<byte, uint>(p.Slice(20, 64 * 64 * 4)).ToArray());
                break;
            default:
                break; // DMABUF_* needs a GL display, as in QEMU without one; malformed sizes are ignored
        }
    }

    private void Scanout(uint id, uint width, uint height)
    {
        if (id >= _options.MaxOutputs) return;
        // QEMU's consoles refuse surfaces beyond 16384 per side; the back-end is untrusted here too.
        if (width > MaxSurfaceSide || height > MaxSurfaceSide)
        {
            Fail($"SCANOUT {id}: {width}x{height} exceeds {MaxSurfaceSide} per side");
            return;
        }
        lock (_lock)
        {
            // QEMU starts a blank surface on every SCANOUT; width 0 disables the scanout.
            _surfaces[id] = width == 0 || height == 0 ? null : new Surface(width, height);
        }
    }

    private bool ReceiveUpdate(VhostUserHeader h)
    {
        Span<byte> p = stackalloc byte[20];
        if (!ReadExactly(p)) return false;
        uint id = BinaryPrimitives.ReadUInt32LittleEndian(p), x = BinaryPrimitives.ReadUInt32LittleEndian(p[4..]), y = BinaryPrimitives.ReadUInt32LittleEndian(p[8..]);
        uint w = BinaryPrimitives.ReadUInt32LittleEndian(p[12..]), hh = BinaryPrimitives.ReadUInt32LittleEndian(p[16..]);
        long pixelBytes = h.Size - 20;
        Surface? s;
        lock (_lock) s = id < _options.MaxOutputs ? _surfaces[id] : null;
        // QEMU ignores an UPDATE whose size or rect does not fit its surface; so do we.
        bool fits = s is not null && (ulong)w * hh * 4 == (ulong)pixelBytes && (ulong)x + w <= s.Width && (ulong)y + hh <= s.Height && _options.ApplyUpdates;
        if (_options.UpdateReadDelay > TimeSpan.Zero) Thread.Sleep(_options.UpdateReadDelay);
        uint? crc = null;
        if (fits)
        {
            var pixels = MemoryMarshal.AsBytes(s!.Pixels.AsSpan());
            if (x == 0 && w == s.Width)
            {
                var dst = pixels.Slice((int)(y * s.Width * 4), (int)pixelBytes);
                if (!ReadExactly(dst)) return false;
                if (_options.HashUpdates) crc = System.IO.Hashing.Crc32.HashToUInt32(dst);
            }
            else
            {
                // One read for the whole rect, then rows into place (a read per row would make
                // the display, not the back-end, the bottleneck for small damage).
                if (_rectBuffer.Length < pixelBytes) _rectBuffer = new byte[pixelBytes];
                if (!ReadExactly(_rectBuffer.AsSpan(0, (int)pixelBytes))) return false;
                if (_options.HashUpdates) crc = System.IO.Hashing.Crc32.HashToUInt32(_rectBuffer.AsSpan(0, (int)pixelBytes));
                for (uint row = 0; row < hh; row++)
                    _rectBuffer.AsSpan((int)(row * w * 4), (int)w * 4).CopyTo(pixels.Slice((int)(((y + row) * s.Width + x) * 4), (int)w * 4));
            }
        }
        else if (!Discard(pixelBytes))
        {
            return false;
        }
        var u = new DisplayUpdate(id, x, y, w, hh, Stopwatch.GetTimestamp(), h.Flags, crc);
        lock (_lock)
        {
            UpdateBytes += h.Size;
            _updates.Add(u);
        }
        UpdateReceived?.Invoke(u);
        return true;
    }

    private bool Discard(long bytes)
    {
        var buf = new byte[(int)Math.Min(bytes, 1 << 20)];
        while (bytes > 0)
        {
            int n = (int)Math.Min(bytes, buf.Length);
            if (!ReadExactly(buf.AsSpan(0, n))) return false;
            bytes -= n;
        }
        return true;
    }

    private byte[] DisplayInfo()
    {
        var r = new byte[GpuDisplayWire.DisplayInfoReplySize];
        BinaryPrimitives.WriteUInt32LittleEndian(r, (uint)VirtioGpuCtrlType.OkDisplayInfo);
        for (int i = 0; i < Math.Min(_options.MaxOutputs, VirtioGpuLimits.MaxScanouts); i++)
        {
            int o = 24 + i * 24;
            BinaryPrimitives.WriteUInt32LittleEndian(r.AsSpan(o + 8), _options.Width);
            BinaryPrimitives.WriteUInt32LittleEndian(r.AsSpan(o + 12), _options.Height);
            BinaryPrimitives.WriteUInt32LittleEndian(r.AsSpan(o + 16), i < _options.EnabledHeads ? 1u : 0u);
        }
        return r;
    }

    private byte[] Edid(uint scanout)
    {
        var r = new byte[GpuDisplayWire.EdidReplySize];
        BinaryPrimitives.WriteUInt32LittleEndian(r, (uint)VirtioGpuCtrlType.OkEdid);
        var edid = EdidBuilder.Build(_options.Width, _options.Height, name: "QEMU Monitor", serial: scanout);
        BinaryPrimitives.WriteUInt32LittleEndian(r.AsSpan(24), (uint)edid.Length);
        edid.CopyTo(r.AsSpan(32));
        return r;
    }

    private void Reply(uint request, ReadOnlySpan<byte> payload)
    {
        var buf = new byte[VhostUserHeader.Length + payload.Length];
        new VhostUserHeader(request, VhostUserHeader.FlagReply, (uint)payload.Length).Write(buf);
        payload.CopyTo(buf.AsSpan(VhostUserHeader.Length));
        int sent = 0;
        while (sent < buf.Length)
        {
            var st = UnixSocket.Send(_socket, buf.AsSpan(sent), default, out int n);
            if (st != IoStatus.Ok) throw new IOException("display socket closed while replying");
            sent += n;
        }
    }

    private bool ReadExactly(Span<byte> buf)
    {
        int got = 0;
        while (got < buf.Length)
        {
            var st = UnixSocket.Receive(_socket, buf[got..], null, out int n);
            if (st == IoStatus.Closed) return false;
            if (st == IoStatus.WouldBlock) continue;
            got += n;
        }
        return true;
    }

    public void Dispose()
    {
        _stopping = true;
        UnixSocket.Shutdown(_socket);
        _thread.Join(TimeSpan.FromSeconds(5));
        _socket.Dispose();
    }

    private const uint MaxSurfaceSide = 16384;

    private sealed class Surface(uint width, uint height)
    {
        public uint Width { get; } = width;
        public uint Height { get; } = height;
        public uint[] Pixels { get; } = new uint[checked((long)width * height)];
    }
}
