using VirtioGpuHost.GuestMemory;

namespace VirtioGpuHost.Virtio;

/// <summary>A guest buffer piece named by one descriptor.</summary>
public readonly record struct BufferSegment(GuestAddress Address, uint Length);

/// <summary>
/// One popped request: its head index, the device-readable segments (the request) and
/// the device-writable segments (space for the response), in chain order.
/// </summary>
public sealed class DescriptorChain
{
    internal DescriptorChain(ushort head, BufferSegment[] readable, BufferSegment[] writable, ulong readableLength, ulong writableLength)
    {
        Head = head;
        Readable = readable;
        Writable = writable;
        ReadableLength = readableLength;
        WritableLength = writableLength;
    }

    public ushort Head { get; }
    public IReadOnlyList<BufferSegment> Readable { get; }
    public IReadOnlyList<BufferSegment> Writable { get; }
    public ulong ReadableLength { get; }
    public ulong WritableLength { get; }

    /// <summary>
    /// Copies up to <paramref name="destination"/>.Length readable bytes starting at
    /// <paramref name="offset"/>; returns how many were copied, or -1 if guest memory failed.
    /// </summary>
    public int Read(IGuestMemory memory, ulong offset, Span<byte> destination)
    {
        int copied = 0;
        foreach (var seg in Readable)
        {
            if (copied == destination.Length) break;
            if (offset >= seg.Length) { offset -= seg.Length; continue; }
            int n = (int)Math.Min(seg.Length - offset, (ulong)(destination.Length - copied));
            if (!memory.TryRead(new GuestAddress(seg.Address.Value + offset), destination.Slice(copied, n))) return -1;
            copied += n;
            offset = 0;
        }
        return copied;
    }

    /// <summary>
    /// Writes <paramref name="source"/> at the start of the writable segments; returns the
    /// number of bytes written (less than source.Length if the guest gave too little room),
    /// or -1 if guest memory failed.
    /// </summary>
    public int Write(IGuestMemory memory, ReadOnlySpan<byte> source)
    {
        int written = 0;
        foreach (var seg in Writable)
        {
            if (written == source.Length) break;
            int n = (int)Math.Min(seg.Length, (ulong)(source.Length - written));
            if (!memory.TryWrite(seg.Address, source.Slice(written, n))) return -1;
            written += n;
        }
        return written;
    }

    public override string ToString() =>
        $"chain head {Head}: {Readable.Count} readable ({ReadableLength} B), {Writable.Count} writable ({WritableLength} B)";
}
