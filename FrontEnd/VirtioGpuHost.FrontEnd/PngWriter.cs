using System.Buffers.Binary;
using System.IO.Compression;
using System.IO.Hashing;

namespace VirtioGpuHost.FrontEnd;

/// <summary>Writes 8-bit RGB PNGs from XRGB pixels (screenshots of the display side).</summary>
public static class PngWriter
{
    public static void Write(string path, uint width, uint height, ReadOnlySpan<uint> xrgb)
    {
        using var f = File.Create(path);
        Write(f, width, height, xrgb);
    }

    public static void Write(Stream output, uint width, uint height, ReadOnlySpan<uint> xrgb)
    {
        output.Write([0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A]);
        var ihdr = new byte[13];
        BinaryPrimitives.WriteUInt32BigEndian(ihdr, width);
        BinaryPrimitives.WriteUInt32BigEndian(ihdr.AsSpan(4), height);
        ihdr[8] = 8; ihdr[9] = 2; // 8-bit truecolour
        Chunk(output, "IHDR", ihdr);
        using var raw = new MemoryStream();
        using (var z = new ZLibStream(raw, CompressionLevel.Fastest, leaveOpen: true))
        {
            var row = new byte[1 + width * 3];
            for (int y = 0; y < height; y++)
            {
                row[0] = 0;
                for (int x = 0; x < width; x++)
                {
                    uint p = xrgb[(int)(y * width + x)];
                    row[1 + x * 3] = (byte)(p >> 16);
                    row[2 + x * 3] = (byte)(p >> 8);
                    row[3 + x * 3] = (byte)p;
                }
                z.Write(row);
            }
        }
        Chunk(output, "IDAT", raw.ToArray());
        Chunk(output, "IEND", []);
    }

    private static void Chunk(Stream s, string type, ReadOnlySpan<byte> data)
    {
        Span<byte> head = stackalloc byte[8];
        BinaryPrimitives.WriteUInt32BigEndian(head, (uint)data.Length);
        for (int i = 0; i < 4; i++) head[4 + i] = (byte)type[i];
        s.Write(head);
        s.Write(data);
        var crc = new Crc32();
        crc.Append(head[4..]);
        crc.Append(data);
        Span<byte> c = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(c, crc.GetCurrentHashAsUInt32());
        s.Write(c);
    }
}
