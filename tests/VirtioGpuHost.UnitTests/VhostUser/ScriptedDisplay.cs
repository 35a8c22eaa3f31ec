using System.Buffers.Binary;
using VirtioGpuHost.Device.Wire;
using VirtioGpuHost.Interop;
using VirtioGpuHost.VhostUser.Display;
using VirtioGpuHost.VhostUser.Transport;
using VirtioGpuHost.VhostUser.Wire;

namespace VirtioGpuHost.UnitTests.VhostUser;

/// <summary>
/// The display side of a GPU_SET_SOCKET socketpair, driven step by step by the test (unlike
/// <see cref="VirtioGpuHost.FrontEnd.DisplayServer"/>, which answers everything on its own
/// thread): read what the back-end sends, answer or don't, send garbage, close.
/// </summary>
internal sealed class ScriptedDisplay : IDisposable
{
    private readonly FramedSocket _socket;

    public ScriptedDisplay()
    {
        var (mine, theirs) = UnixSocket.CreatePair();
        UnixSocket.SetReceiveTimeout(mine, TimeSpan.FromSeconds(10));
        _socket = new FramedSocket(mine, maxPayload: 64 << 20);
        BackEndEnd = theirs;
    }

    /// <summary>The end to hand over with GPU_SET_SOCKET (dispose it after sending).</summary>
    public FdHandle BackEndEnd { get; }

    /// <summary>GPU_SET_SOCKET with the back-end's end, which we then close (so that its close shows as EOF here).</summary>
    public void HandOver(VirtioGpuHost.FrontEnd.VhostUserFrontEnd frontEnd)
    {
        frontEnd.GpuSetSocket(BackEndEnd);
        BackEndEnd.Dispose();
    }

    public FdHandle Socket => _socket.Socket;

    /// <summary>The next message from the back-end; throws when none comes within the socket timeout.</summary>
    public (GpuDisplayRequest Request, uint Flags, byte[] Payload) Read()
    {
        using var m = _socket.Receive() ?? throw new IOException("the back-end closed the display socket");
        return ((GpuDisplayRequest)m.Header.Request, m.Header.Flags, m.Payload);
    }

    /// <summary>Reads until a message of <paramref name="request"/> arrives; returns it.</summary>
    public (GpuDisplayRequest Request, uint Flags, byte[] Payload) ReadUntil(GpuDisplayRequest request)
    {
        while (true)
        {
            var m = Read();
            if (m.Request == request) return m;
        }
    }

    public void Reply(GpuDisplayRequest request, ReadOnlySpan<byte> payload) =>
        _socket.Send((uint)request, VhostUserHeader.FlagReply, payload);

    public void ReplyProtocolFeatures(GpuDisplayProtocolFeatures features)
    {
        var p = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(p, (ulong)features);
        Reply(GpuDisplayRequest.GetProtocolFeatures, p);
    }

    /// <summary>GET_PROTOCOL_FEATURES → reply, then SET_PROTOCOL_FEATURES; returns what the back-end set.</summary>
    public GpuDisplayProtocolFeatures Negotiate(GpuDisplayProtocolFeatures offer = GpuDisplayProtocolFeatures.Edid | GpuDisplayProtocolFeatures.Dmabuf2)
    {
        var get = Read();
        Assert.Equal(GpuDisplayRequest.GetProtocolFeatures, get.Request);
        ReplyProtocolFeatures(offer);
        var set = Read();
        Assert.Equal(GpuDisplayRequest.SetProtocolFeatures, set.Request);
        return (GpuDisplayProtocolFeatures)BinaryPrimitives.ReadUInt64LittleEndian(set.Payload);
    }

    /// <summary>A GET_DISPLAY_INFO reply with one enabled head of <paramref name="width"/>x<paramref name="height"/>.</summary>
    public static byte[] DisplayInfo(uint width, uint height)
    {
        var r = new byte[GpuDisplayWire.DisplayInfoReplySize];
        BinaryPrimitives.WriteUInt32LittleEndian(r, (uint)VirtioGpuCtrlType.OkDisplayInfo);
        BinaryPrimitives.WriteUInt32LittleEndian(r.AsSpan(24 + 8), width);
        BinaryPrimitives.WriteUInt32LittleEndian(r.AsSpan(24 + 12), height);
        BinaryPrimitives.WriteUInt32LittleEndian(r.AsSpan(24 + 16), 1);
        return r;
    }

    public void SendRaw(ReadOnlySpan<byte> bytes)
    {
        int sent = 0;
        while (sent < bytes.Length)
        {
            var st = UnixSocket.Send(_socket.Socket, bytes[sent..], default, out int n);
            if (st != IoStatus.Ok) throw new IOException($"display send failed: {st}");
            sent += n;
        }
    }

    /// <summary>True when the back-end closed its end (EOF after any data still queued) within the timeout.</summary>
    public bool WaitForEof(TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        var buf = new byte[64 << 10];
        while (DateTime.UtcNow < deadline)
        {
            if (!Poller.WaitReadable(_socket.Socket, 50)) continue;
            var st = UnixSocket.Receive(_socket.Socket, buf, null, out _);
            if (st == IoStatus.Closed) return true;
        }
        return false;
    }

    public void Close() => UnixSocket.Shutdown(_socket.Socket);

    public void Dispose()
    {
        BackEndEnd.Dispose();
        _socket.Dispose();
    }
}
