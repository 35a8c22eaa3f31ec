using System.Buffers.Binary;
using VirtioGpuHost.Device;
using VirtioGpuHost.Device.Wire;
using VirtioGpuHost.GuestMemory;

namespace VirtioGpuHost.FrontEnd;

/// <summary>
/// A guest framebuffer: pages of guest RAM holding width x height pixels of a format, and
/// the scatter list a driver passes in ATTACH_BACKING. With <see cref="Scattered"/> the
/// pages are deliberately non-contiguous (every other page), as a Linux guest's shmem
/// pages usually are.
/// </summary>
public sealed class FrameBuffer
{
    private readonly GuestRam _ram;
    private readonly List<GuestBuffer> _pages;

    internal FrameBuffer(GuestRam ram, uint width, uint height, VirtioGpuFormat format, List<GuestBuffer> entries, bool scattered)
    {
        _ram = ram;
        Width = width;
        Height = height;
        Format = format;
        Entries = entries;
        Scattered = scattered;
        _pages = entries;
    }

    public uint Width { get; }
    public uint Height { get; }
    public uint Stride => Width * 4;
    public VirtioGpuFormat Format { get; }
    public bool Scattered { get; }

    /// <summary>The scatter list (mem entries) for ATTACH_BACKING.</summary>
    public IReadOnlyList<GuestBuffer> Entries { get; }

    public ulong Length => (ulong)Stride * Height;

    public static FrameBuffer Allocate(GuestRam ram, uint width, uint height, VirtioGpuFormat format, bool scattered)
    {
        ulong length = (ulong)width * height * 4;
        var entries = new List<GuestBuffer>();
        if (!scattered)
        {
            var a = ram.Allocator.Allocate(length);
            entries.Add(new GuestBuffer(a, (uint)length));
        }
        else
        {
            // One page per entry with a one-page hole after each: nothing is contiguous.
            ulong left = length;
            while (left > 0)
            {
                var a = ram.Allocator.Allocate(2 * GuestRam.PageSize);
                uint n = (uint)Math.Min(left, GuestRam.PageSize);
                entries.Add(new GuestBuffer(a, n));
                left -= n;
            }
        }
        return new FrameBuffer(ram, width, height, format, entries, scattered);
    }

    /// <summary>Writes <paramref name="bytes"/> at byte offset <paramref name="offset"/> of the framebuffer.</summary>
    public void Write(ulong offset, ReadOnlySpan<byte> bytes)
    {
        foreach (var e in _pages)
        {
            if (bytes.IsEmpty) return;
            if (offset >= e.Length) { offset -= e.Length; continue; }
            int n = (int)Math.Min(e.Length - offset, (ulong)bytes.Length);
            bytes[..n].CopyTo(_ram.Span(new GuestAddress(e.Address.Value + offset), n));
            bytes = bytes[n..];
            offset = 0;
        }
        if (!bytes.IsEmpty) throw new ArgumentOutOfRangeException(nameof(offset));
    }

    /// <summary>Paints every pixel with <paramref name="argbAt"/>(x, y) (native 0xAARRGGBB) in the framebuffer's format.</summary>
    public void Fill(Func<uint, uint, uint> argbAt)
    {
        var row = new byte[Stride];
        for (uint y = 0; y < Height; y++)
        {
            for (uint x = 0; x < Width; x++) PixelFormats.WriteArgb(Format, argbAt(x, y), row.AsSpan((int)x * 4, 4));
            Write((ulong)y * Stride, row);
        }
    }

    /// <summary>Paints one rect with a solid colour.</summary>
    public void FillRect(uint x0, uint y0, uint w, uint h, uint argb)
    {
        var px = new byte[4];
        PixelFormats.WriteArgb(Format, argb, px);
        var row = new byte[w * 4];
        for (int i = 0; i < w; i++) px.CopyTo(row, i * 4);
        for (uint y = y0; y < y0 + h; y++) Write((ulong)y * Stride + x0 * 4, row);
    }

    /// <summary>Copies a whole frame of raw bytes in (as a guest writes its dumb buffer).</summary>
    public void WriteFrame(ReadOnlySpan<byte> frame) => Write(0, frame);

    public uint ReadPixelRaw(uint x, uint y)
    {
        var b = new byte[4];
        ulong offset = (ulong)y * Stride + x * 4;
        foreach (var e in _pages)
        {
            if (offset >= e.Length) { offset -= e.Length; continue; }
            _ram.Span(new GuestAddress(e.Address.Value + offset), 4).CopyTo(b);
            break;
        }
        return BinaryPrimitives.ReadUInt32LittleEndian(b);
    }

    public void Free()
    {
        foreach (var e in _pages) _ram.Allocator.Free(e.Address, Scattered ? 2 * GuestRam.PageSize : e.Length);
    }
}
