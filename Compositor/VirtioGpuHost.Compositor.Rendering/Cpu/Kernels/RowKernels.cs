namespace VirtioGpuHost.Compositor.Rendering.Cpu.Kernels;

/// <summary>Dispatches one row operation to the kernels of a resolved <see cref="KernelIsa"/>.</summary>
internal static unsafe class RowKernels
{
    public static void CopyOpaque(KernelIsa isa, uint* dst, uint* src, int n, SourceLayout layout, byte dim)
    {
        switch (isa)
        {
            case KernelIsa.Avx512: Avx512Kernels.CopyOpaque(dst, src, n, layout, dim); break;
            case KernelIsa.Avx2: Avx2Kernels.CopyOpaque(dst, src, n, layout, dim); break;
            default: ScalarKernels.CopyOpaque(dst, src, n, layout, dim); break;
        }
    }

    public static void CopyOpaqueScaled(KernelIsa isa, uint* dst, uint* srcRow, int srcWidth, int* xIndex, int n, SourceLayout layout, byte dim)
    {
        switch (isa)
        {
            case KernelIsa.Avx512: Avx512Kernels.CopyOpaqueScaled(dst, srcRow, srcWidth, xIndex, n, layout, dim); break;
            case KernelIsa.Avx2: Avx2Kernels.CopyOpaqueScaled(dst, srcRow, srcWidth, xIndex, n, layout, dim); break;
            default: ScalarKernels.CopyOpaqueScaled(dst, srcRow, srcWidth, xIndex, n, layout, dim); break;
        }
    }

    public static void Blend(KernelIsa isa, uint* dst, uint* src, int n, byte dim)
    {
        switch (isa)
        {
            case KernelIsa.Avx512: Avx512Kernels.Blend(dst, src, n, dim); break;
            case KernelIsa.Avx2: Avx2Kernels.Blend(dst, src, n, dim); break;
            default: ScalarKernels.Blend(dst, src, n, dim); break;
        }
    }

    public static void BlendScaled(KernelIsa isa, uint* dst, uint* srcRow, int srcWidth, int* xIndex, int n, byte dim)
    {
        switch (isa)
        {
            case KernelIsa.Avx512: Avx512Kernels.BlendScaled(dst, srcRow, srcWidth, xIndex, n, dim); break;
            case KernelIsa.Avx2: Avx2Kernels.BlendScaled(dst, srcRow, srcWidth, xIndex, n, dim); break;
            default: ScalarKernels.BlendScaled(dst, srcRow, srcWidth, xIndex, n, dim); break;
        }
    }

    public static void Fill(KernelIsa isa, uint* dst, uint color, int n)
    {
        switch (isa)
        {
            case KernelIsa.Avx512: Avx512Kernels.Fill(dst, color, n); break;
            case KernelIsa.Avx2: Avx2Kernels.Fill(dst, color, n); break;
            default: ScalarKernels.Fill(dst, color, n); break;
        }
    }

    public static void BlendFill(KernelIsa isa, uint* dst, uint color, int n)
    {
        switch (isa)
        {
            case KernelIsa.Avx512: Avx512Kernels.BlendFill(dst, color, n); break;
            case KernelIsa.Avx2: Avx2Kernels.BlendFill(dst, color, n); break;
            default: ScalarKernels.BlendFill(dst, color, n); break;
        }
    }
}
