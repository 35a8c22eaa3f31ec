using System.Buffers.Binary;
using System.Text;

namespace VirtioGpuHost.TestKit;

/// <summary>
/// The client side of the Wayland wire format, for tests and fuzz seeds that write exact bytes:
/// a request is <c>[u32 object][u16 opcode][u16 size]</c> then its arguments (int/uint/fixed as
/// 32-bit words, strings and arrays length-prefixed and padded to 4; fds travel out of band).
/// Opcodes and interface names come from the generated protocol classes at the call site.
/// </summary>
public static class WaylandWire
{
    /// <summary>One request: <paramref name="args"/> are int, uint, string or byte[] (an array argument).</summary>
    public static byte[] Message(uint obj, ushort opcode, params object[] args)
    {
        var body = new List<byte>();
        foreach (var a in args)
        {
            switch (a)
            {
                case int i: body.AddRange(BitConverter.GetBytes(i)); break;
                case uint u: body.AddRange(BitConverter.GetBytes(u)); break;
                case string s:
                    var b = Encoding.UTF8.GetBytes(s);
                    body.AddRange(BitConverter.GetBytes((uint)b.Length + 1));
                    body.AddRange(b);
                    body.Add(0);
                    while (body.Count % 4 != 0) body.Add(0);
                    break;
                case byte[] arr:
                    body.AddRange(BitConverter.GetBytes((uint)arr.Length));
                    body.AddRange(arr);
                    while (body.Count % 4 != 0) body.Add(0);
                    break;
                default: throw new ArgumentException(a.GetType().Name);
            }
        }
        var msg = new byte[8 + body.Count];
        BinaryPrimitives.WriteUInt32LittleEndian(msg, obj);
        BinaryPrimitives.WriteUInt32LittleEndian(msg.AsSpan(4), ((uint)msg.Length << 16) | opcode);
        body.CopyTo(msg, 8);
        return msg;
    }

    /// <summary>One message (request or event) split off the front of a byte stream.</summary>
    public readonly record struct Frame(uint ObjectId, ushort Opcode, byte[] Body)
    {
        public uint U(int word) => BinaryPrimitives.ReadUInt32LittleEndian(Body.AsSpan(word * 4));

        /// <summary>The string argument starting at word <paramref name="word"/>.</summary>
        public string S(int word)
        {
            int len = (int)U(word);
            return len == 0 ? "" : Encoding.UTF8.GetString(Body, word * 4 + 4, len - 1);
        }
    }

    /// <summary>
    /// Takes every complete message off the front of <paramref name="stream"/> (the rest stays);
    /// false when a header is malformed (size below 8 or not a multiple of 4).
    /// </summary>
    public static bool TakeFrames(List<byte> stream, List<Frame> into)
    {
        while (stream.Count >= 8)
        {
            Span<byte> head = [stream[0], stream[1], stream[2], stream[3], stream[4], stream[5], stream[6], stream[7]];
            uint obj = BinaryPrimitives.ReadUInt32LittleEndian(head);
            uint w = BinaryPrimitives.ReadUInt32LittleEndian(head[4..]);
            int size = (int)(w >> 16);
            if (size < 8 || size % 4 != 0) return false;
            if (stream.Count < size) return true;
            into.Add(new Frame(obj, (ushort)(w & 0xffff), stream.GetRange(8, size - 8).ToArray()));
            stream.RemoveRange(0, size);
        }
        return true;
    }
}
