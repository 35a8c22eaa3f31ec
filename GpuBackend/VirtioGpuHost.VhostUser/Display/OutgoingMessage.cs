using System.Buffers;
using System.Runtime.InteropServices;
using VirtioGpuHost.GuestMemory;
using VirtioGpuHost.Interop;

namespace VirtioGpuHost.VhostUser.Display;

/// <summary>
/// One display-socket message being written: a pinned head (header and small payload) and,
/// for an UPDATE, zero-copy pixel segments with a reference on the memory they point into.
/// </summary>
internal sealed class OutgoingMessage(byte[] head, IoSegment[] segments, MemoryBlock? keepAlive)
{
    private long _offset;   // bytes handed to the socket
    private long _filled;   // segment bytes moved into the splice pipe
    private readonly long _total = head.Length + segments.Sum(s => (long)s.Length);

    public IoSegment[] Segments { get; } = segments;
    public long Remaining => _total - _offset;
    public long PixelBytes => _total - head.Length;
    public bool IsUpdate => Segments.Length > 0;
    public bool HoldsMemory => keepAlive is not null;
    public bool NothingSpliced => _filled == 0;

    /// <summary>The head by sendmsg, then the segments by vmsplice + splice (page references).</summary>
    public IoStatus SpliceSome(FdHandle socket, SplicePipe pipe, out long sent)
    {
        sent = 0;
        if (_offset < head.Length)
        {
            var st = UnixSocket.Send(socket, head.AsSpan((int)_offset), default, out int n);
            _offset += n;
            sent += n;
            if (st != IoStatus.Ok || _offset < head.Length) return st;
        }
        while (_offset < _total)
        {
            if (pipe.Buffered == 0)
            {
                long got = pipe.Fill(Segments, _filled);
                _filled += got;
                if (got == 0) return IoStatus.WouldBlock;
            }
            var st = pipe.Drain(socket, out long moved);
            _offset += moved;
            sent += moved;
            if (st != IoStatus.Ok) return st;
        }
        return IoStatus.Ok;
    }

    /// <summary>Head and segments by sendmsg (the kernel copies them).</summary>
    public IoStatus SendSome(FdHandle socket, out long sent)
    {
        nint h = Marshal.UnsafeAddrOfPinnedArrayElement(head, 0);
        var list = ArrayPool<IoSegment>.Shared.Rent(Segments.Length + 1);
        try
        {
            int count = 0;
            long skip = _offset;
            if (skip < head.Length) list[count++] = new IoSegment(h + (nint)skip, (nint)(head.Length - skip));
            skip = Math.Max(0, skip - head.Length);
            foreach (var s in Segments)
            {
                if (skip >= s.Length) { skip -= s.Length; continue; }
                list[count++] = new IoSegment(s.Address + (nint)skip, s.Length - (nint)skip);
                skip = 0;
            }
            var status = UnixSocket.SendVector(socket, list.AsSpan(0, count), default, out sent);
            _offset += sent;
            return status;
        }
        finally
        {
            ArrayPool<IoSegment>.Shared.Return(list);
        }
    }

    /// <summary>Gives back the memory reference (once; later calls do nothing).</summary>
    public void Release()
    {
        keepAlive?.Release();
        keepAlive = null;
    }
}
