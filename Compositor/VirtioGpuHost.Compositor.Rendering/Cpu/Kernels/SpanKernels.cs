namespace VirtioGpuHost.Compositor.Rendering.Cpu.Kernels;

/// <summary>
/// The row kernels over spans, bounds-checked, for callers without pointers (the kernel
/// property tests): every index a kernel could touch is checked before it runs.
/// </summary>
internal static unsafe class SpanKernels
{
    public static void CopyOpaque(KernelIsa isa, Span<uint> dst, ReadOnlySpan<uint> src, SourceLayout layout, byte dim)
    {
        CheckSource(src.Length, dst.Length);
        fixed (uint* d = dst) fixed (uint* s = src) RowKernels.CopyOpaque(isa, d, s, dst.Length, layout, dim);
    }

    public static void CopyOpaqueScaled(KernelIsa isa, Span<uint> dst, ReadOnlySpan<uint> srcRow, ReadOnlySpan<int> xIndex, SourceLayout layout, byte dim)
    {
        CheckIndex(srcRow.Length, xIndex, dst.Length);
        fixed (uint* d = dst) fixed (uint* s = srcRow) fixed (int* x = xIndex) RowKernels.CopyOpaqueScaled(isa, d, s, srcRow.Length, x, dst.Length, layout, dim);
    }

    public static void Blend(KernelIsa isa, Span<uint> dst, ReadOnlySpan<uint> src, byte dim)
    {
        CheckSource(src.Length, dst.Length);
        fixed (uint* d = dst) fixed (uint* s = src) RowKernels.Blend(isa, d, s, dst.Length, dim);
    }

    public static void BlendScaled(KernelIsa isa, Span<uint> dst, ReadOnlySpan<uint> srcRow, ReadOnlySpan<int> xIndex, byte dim)
    {
        CheckIndex(srcRow.Length, xIndex, dst.Length);
        fixed (uint* d = dst) fixed (uint* s = srcRow) fixed (int* x = xIndex) RowKernels.BlendScaled(isa, d, s, srcRow.Length, x, dst.Length, dim);
    }

    public static void Fill(KernelIsa isa, Span<uint> dst, uint color)
    {
        fixed (uint* d = dst) RowKernels.Fill(isa, d, color, dst.Length);
    }

    public static void BlendFill(KernelIsa isa, Span<uint> dst, uint color)
    {
        fixed (uint* d = dst) RowKernels.BlendFill(isa, d, color, dst.Length);
    }

    private static void CheckSource(int sourceLength, int n)
    {
        if (sourceLength < n) throw new ArgumentException($"the source has {sourceLength} pixels, the row needs {n}");
    }

    private static void CheckIndex(int rowLength, ReadOnlySpan<int> xIndex, int n)
    {
        if (xIndex.Length < n) throw new ArgumentException($"the index has {xIndex.Length} entries, the row needs {n}");
        int previous = 0;
        foreach (int x in xIndex[..n])
        {
            if ((uint)x >= (uint)rowLength) throw new ArgumentOutOfRangeException(nameof(xIndex), x, $"outside the {rowLength}-pixel source row");
            if (x < previous) throw new ArgumentException("source indices must not decrease", nameof(xIndex));
            previous = x;
        }
    }
}
