using System.Buffers.Binary;

namespace VirtioGpuHost.Fuzz.InProcess;

/// <summary>
/// AFL-style byte mutations (bit flips, interesting values, arithmetic, block insert, delete,
/// duplicate and splice) for the in-process mode. Deterministic for a given seed, so a run
/// that finds something can be repeated exactly.
/// </summary>
public sealed class Mutator(int seed)
{
    private static readonly byte[] Interesting8 = [0, 1, 0x7f, 0x80, 0xff, 16, 32, 64, 100];
    private static readonly ushort[] Interesting16 = [0, 1, 0x7fff, 0x8000, 0xffff, 24, 64, 256, 512, 1024, 4096];
    private static readonly uint[] Interesting32 = [0, 1, 0x7fffffff, 0x80000000, 0xffffffff, 0x1000, 0x10000, 0x100000, 24, 4095, 4097];

    private readonly Random _random = new(seed);

    public byte[] Mutate(byte[] input, IReadOnlyList<byte[]> corpus, int maxLength)
    {
        var data = new List<byte>(input);
        int rounds = 1 + _random.Next(4);
        for (int r = 0; r < rounds; r++) MutateOnce(data, corpus);
        if (data.Count > maxLength) data.RemoveRange(maxLength, data.Count - maxLength);
        return data.ToArray();
    }

    private void MutateOnce(List<byte> d, IReadOnlyList<byte[]> corpus)
    {
        if (d.Count == 0)
        {
            d.Add((byte)_random.Next(256));
            return;
        }
        int at = _random.Next(d.Count);
        switch (_random.Next(11))
        {
            case 0: d[at] ^= (byte)(1 << _random.Next(8)); break;
            case 1: d[at] = Interesting8[_random.Next(Interesting8.Length)]; break;
            case 2: d[at] = (byte)(d[at] + _random.Next(-16, 17)); break;
            case 3: d[at] = (byte)_random.Next(256); break;
            case 4: Write(d, at, Interesting16[_random.Next(Interesting16.Length)], 2); break;
            case 5: Write(d, at, Interesting32[_random.Next(Interesting32.Length)], 4); break;
            case 6: // delete a block
                d.RemoveRange(at, Math.Min(d.Count - at, 1 + _random.Next(32)));
                break;
            case 7: // insert random bytes
                {
                    var block = new byte[1 + _random.Next(16)];
                    _random.NextBytes(block);
                    d.InsertRange(at, block);
                    break;
                }
            case 8: // duplicate a block (repeats a message or command)
                {
                    int len = Math.Min(d.Count - at, 1 + _random.Next(128));
                    d.InsertRange(_random.Next(d.Count + 1), d.GetRange(at, len));
                    break;
                }
            case 9: // splice a block of another corpus entry
                {
                    var other = corpus[_random.Next(corpus.Count)];
                    if (other.Length == 0) break;
                    int from = _random.Next(other.Length);
                    int len = Math.Min(other.Length - from, 1 + _random.Next(256));
                    d.InsertRange(at, other.AsSpan(from, len).ToArray());
                    break;
                }
            default: // add to a little-endian u32
                {
                    if (at + 4 > d.Count) break;
                    Span<byte> b = [d[at], d[at + 1], d[at + 2], d[at + 3]];
                    Write(d, at, (uint)(BinaryPrimitives.ReadUInt32LittleEndian(b) + _random.Next(-64, 65)), 4);
                    break;
                }
        }
    }

    private static void Write(List<byte> d, int at, uint value, int bytes)
    {
        for (int i = 0; i < bytes && at + i < d.Count; i++) d[at + i] = (byte)(value >> (8 * i));
    }
}
