using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace VirtioGpuHost.GuestMemory;

public sealed partial class GuestMemoryMap
{
    public bool TryGetSlices(GuestAddress address, ulong length, List<MemorySlice> slices)
    {
        int start = slices.Count;
        ulong gpa = address.Value;
        ulong remaining = length;
        if (gpa + length < gpa) return false; // wraps around
        while (remaining > 0)
        {
            var r = FindRegion(gpa);
            if (r is null)
            {
                slices.RemoveRange(start, slices.Count - start);
                return false;
            }
            ulong offset = gpa - r.GuestStart.Value;
            ulong chunk = Math.Min(remaining, r.Size - offset);
            nint host = r.Block.Address + (nint)offset;
            while (chunk > 0)
            {
                int piece = (int)Math.Min(chunk, int.MaxValue);
                slices.Add(new MemorySlice(host, piece));
                host += piece;
                chunk -= (ulong)piece;
                gpa += (ulong)piece;
                remaining -= (ulong)piece;
            }
        }
        return true;
    }

    public bool TryRead(GuestAddress address, Span<byte> destination)
    {
        // Fast path: one region (almost always).
        if (TryGetContiguous(address, (ulong)destination.Length, out var slice))
        {
            slice.Span.CopyTo(destination);
            return true;
        }
        var slices = new List<MemorySlice>(2);
        if (!TryGetSlices(address, (ulong)destination.Length, slices)) return false;
        int done = 0;
        foreach (var s in slices)
        {
            s.Span.CopyTo(destination.Slice(done));
            done += s.Length;
        }
        return true;
    }

    public bool TryWrite(GuestAddress address, ReadOnlySpan<byte> source)
    {
        if (TryGetContiguous(address, (ulong)source.Length, out var slice))
        {
            source.CopyTo(slice.Span);
            return true;
        }
        var slices = new List<MemorySlice>(2);
        if (!TryGetSlices(address, (ulong)source.Length, slices)) return false;
        int done = 0;
        foreach (var s in slices)
        {
            source.Slice(done, s.Length).CopyTo(s.Span);
            done += s.Length;
        }
        return true;
    }

    public bool TryRead<T>(GuestAddress address, out T value) where T : unmanaged
    {
        value = default;
        return TryRead(address, MemoryMarshal.AsBytes(new Span<T>(ref value)));
    }

    public bool TryWrite<T>(GuestAddress address, in T value) where T : unmanaged =>
        TryWrite(address, MemoryMarshal.AsBytes(new ReadOnlySpan<T>(in value)));
}
