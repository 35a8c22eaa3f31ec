using VirtioGpuHost.Device.Wire;
using VirtioGpuHost.GuestMemory;

namespace VirtioGpuHost.Device;

/// <summary>
/// A resource's backing resolved in the current guest memory: the scatter list as host
/// slices with their offsets, so that a byte range of the backing can be copied out even
/// when it spans entries or regions. Built per transfer and never kept.
/// </summary>
internal sealed class BackingView
{
    private readonly MemorySlice[] _slices;
    private readonly ulong[] _starts; // backing offset of each slice
    private int _hint;

    private BackingView(MemorySlice[] slices, ulong[] starts)
    {
        _slices = slices;
        _starts = starts;
    }

    public static BackingView? Resolve(IGuestMemory memory, VirtioGpuMemEntry[] entries)
    {
        var slices = new List<MemorySlice>(entries.Length);
        foreach (var e in entries)
        {
            if (e.Length == 0) continue;
            if (!memory.TryGetSlices(new GuestAddress(e.Address), e.Length, slices)) return null;
        }
        var starts = new ulong[slices.Count];
        ulong pos = 0;
        for (int i = 0; i < slices.Count; i++)
        {
            starts[i] = pos;
            pos += (ulong)slices[i].Length;
        }
        return new BackingView(slices.ToArray(), starts);
    }

    /// <summary>Copies backing bytes [offset, offset + destination.Length); the caller checked the bounds.</summary>
    public void CopyTo(ulong offset, Span<byte> destination)
    {
        int i = Find(offset);
        int done = 0;
        while (done < destination.Length)
        {
            var s = _slices[i];
            int inSlice = (int)(offset - _starts[i]);
            int n = Math.Min(s.Length - inSlice, destination.Length - done);
            s.Span.Slice(inSlice, n).CopyTo(destination.Slice(done, n));
            done += n;
            offset += (ulong)n;
            i++;
        }
        _hint = Math.Max(0, i - 1);
    }

    private int Find(ulong offset)
    {
        // Transfers walk rows in increasing order, so the previous position is usually right.
        if (_hint < _slices.Length && _starts[_hint] <= offset && offset - _starts[_hint] < (ulong)_slices[_hint].Length) return _hint;
        int lo = 0, hi = _slices.Length - 1;
        while (lo < hi)
        {
            int mid = (lo + hi + 1) >>> 1;
            if (_starts[mid] <= offset) lo = mid; else hi = mid - 1;
        }
        return lo;
    }
}
