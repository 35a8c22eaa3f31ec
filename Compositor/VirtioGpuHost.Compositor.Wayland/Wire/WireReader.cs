using System.Buffers.Binary;
using System.Text;
using VirtioGpuHost.Compositor.Wayland.Protocol;
using VirtioGpuHost.Compositor.Wayland.Runtime;
using VirtioGpuHost.Interop;

namespace VirtioGpuHost.Compositor.Wayland.Wire;

/// <summary>
/// Parses one request's arguments (the bytes after the 8-byte header). Every read is bounds
/// checked; anything malformed throws <see cref="WaylandProtocolException"/> with
/// wl_display.error invalid_method on the target object, as libwayland does (invalid_object
/// for ids that name no object of the expected interface), which the client's dispatcher turns into the error event and a disconnect.
/// </summary>
public ref struct WireReader
{
    private readonly ReadOnlySpan<byte> _body;
    private readonly WaylandClient _client;
    private readonly WaylandResource _target;
    private readonly string _message;
    private int _pos;

    public WireReader(ReadOnlySpan<byte> body, WaylandClient client, WaylandResource target, string message)
    {
        _body = body;
        _client = client;
        _target = target;
        _message = message;
        _pos = 0;
    }

    private readonly WaylandProtocolException Malformed(string what) =>
        new(_target, (uint)WlDisplay.Error.InvalidMethod,
            $"invalid arguments for {_target.Interface.Name}@{_target.Id}.{_message}: {what}");

    private uint Word(string field)
    {
        if (_body.Length - _pos < 4) throw Malformed($"{field} past the end of the message");
        uint v = BinaryPrimitives.ReadUInt32LittleEndian(_body[_pos..]);
        _pos += 4;
        return v;
    }

    public int ReadInt() => (int)Word("int");
    public uint ReadUInt() => Word("uint");
    public WlFixed ReadFixed() => new((int)Word("fixed"));

    /// <summary>The bytes of a length-prefixed blob (padded to 4), or an exception when it runs past the message.</summary>
    private ReadOnlySpan<byte> Blob(string field, uint length)
    {
        ulong padded = ((ulong)length + 3) & ~3UL;
        if (padded > (ulong)(_body.Length - _pos)) throw Malformed($"{field}: length {length} runs past the end of the message");
        var s = _body.Slice(_pos, (int)length);
        _pos += (int)padded;
        return s;
    }

    public string ReadString(string field) =>
        ReadStringNullable(field) ?? throw Malformed($"{field}: null string where one is required");

    public string? ReadStringNullable(string field)
    {
        uint length = Word(field);
        if (length == 0) return null;
        var s = Blob(field, length);
        if (s[^1] != 0) throw Malformed($"{field}: string not terminated by NUL");
        return Encoding.UTF8.GetString(s[..^1]);
    }

    public ReadOnlySpan<byte> ReadArray(string field) => Blob(field, Word(field));

    /// <summary>Takes the next fd of the connection's queue; the caller owns it.</summary>
    public FdHandle ReadFd(string field) =>
        _client.TakeFd() ?? throw Malformed($"{field}: file descriptor expected but none was received");

    public T? ReadObjectNullable<T>(string field) where T : WaylandResource
    {
        uint id = Word(field);
        if (id == 0) return null;
        var obj = _client.Lookup(id);
        if (obj is null)
            throw new WaylandProtocolException(_target, (uint)WlDisplay.Error.InvalidObject,
                $"{_target.Interface.Name}@{_target.Id}.{_message}: {field} names unknown object {id}");
        if (obj is not T)
            throw new WaylandProtocolException(_target, (uint)WlDisplay.Error.InvalidObject,
                $"{_target.Interface.Name}@{_target.Id}.{_message}: {field} is {obj.Interface.Name}@{id}, wrong interface");
        return (T)obj;
    }

    public T ReadObject<T>(string field) where T : WaylandResource =>
        ReadObjectNullable<T>(field) ?? throw Malformed($"{field}: null object where one is required");

    /// <summary>A new client object id: in the client range and not in use.</summary>
    public uint ReadNewId(string field)
    {
        uint id = Word(field);
        if (id == 0 || id >= WaylandClient.FirstServerId)
            throw Malformed($"{field}: new id {id} is outside the client's range");
        if (_client.Lookup(id) is not null)
            throw Malformed($"{field}: new id {id} is already in use");
        return id;
    }

    /// <summary>Trailing bytes after the last argument are malformed too.</summary>
    public readonly void ExpectEnd()
    {
        if (_pos != _body.Length) throw Malformed($"{_body.Length - _pos} bytes after the last argument");
    }
}

/// <summary>A protocol error to post as wl_display.error on <see cref="Object"/>; the client is then disconnected.</summary>
public sealed class WaylandProtocolException(WaylandResource obj, uint code, string message) : Exception(message)
{
    public WaylandResource Object { get; } = obj;
    public uint Code { get; } = code;
}
