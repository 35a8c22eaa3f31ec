using System.Buffers.Binary;
using System.Text;
using VirtioGpuHost.Compositor.Wayland.Runtime;
using VirtioGpuHost.Interop;

namespace VirtioGpuHost.Compositor.Wayland.Wire;

/// <summary>
/// Builds one event in a reusable buffer: header, then arguments in wire format. The client
/// copies the finished message into its output queue (<see cref="WaylandClient"/>).
/// </summary>
public sealed class EventWriter
{
    /// <summary>libwayland's limit for one message, header included.</summary>
    public const int MaxMessageSize = 4096;

    private readonly byte[] _buffer = new byte[MaxMessageSize];
    private readonly List<FdHandle> _fds = [];
    private int _length;

    internal uint ObjectId { get; private set; }
    internal ushort Opcode { get; private set; }
    internal ReadOnlySpan<byte> Message => _buffer.AsSpan(0, _length);
    internal List<FdHandle> Fds => _fds;

    internal void Begin(uint objectId, ushort opcode)
    {
        ObjectId = objectId;
        Opcode = opcode;
        _length = 8;
        _fds.Clear();
    }

    /// <summary>Writes the header once all arguments are in; returns the message.</summary>
    internal ReadOnlySpan<byte> Finish()
    {
        BinaryPrimitives.WriteUInt32LittleEndian(_buffer, ObjectId);
        BinaryPrimitives.WriteUInt32LittleEndian(_buffer.AsSpan(4), ((uint)_length << 16) | Opcode);
        return Message;
    }

    private Span<byte> Take(int n)
    {
        if (_length + n > MaxMessageSize) throw new InvalidOperationException($"event larger than {MaxMessageSize} bytes");
        var s = _buffer.AsSpan(_length, n);
        _length += n;
        return s;
    }

    public void WriteInt(int v) => BinaryPrimitives.WriteInt32LittleEndian(Take(4), v);
    public void WriteUInt(uint v) => BinaryPrimitives.WriteUInt32LittleEndian(Take(4), v);
    public void WriteFixed(WlFixed v) => WriteInt(v.Raw);
    public void WriteObject(WaylandResource? o) => WriteUInt(o?.Id ?? 0);

    public void WriteString(string? s)
    {
        if (s is null) { WriteUInt(0); return; }
        int n = Encoding.UTF8.GetByteCount(s);
        WriteUInt((uint)n + 1);
        var dst = Take((n + 1 + 3) & ~3);
        dst.Clear();
        Encoding.UTF8.GetBytes(s, dst);
    }

    public void WriteArray(ReadOnlySpan<byte> a)
    {
        WriteUInt((uint)a.Length);
        var dst = Take((a.Length + 3) & ~3);
        dst.Clear();
        a.CopyTo(dst);
    }

    /// <summary>Queues <paramref name="fd"/> to go out with this message; the writer owns it from now on.</summary>
    public void WriteFd(FdHandle fd) => _fds.Add(fd);
}
