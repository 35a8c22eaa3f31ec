using System.Runtime.Intrinsics;

namespace VirtioGpuHost.Compositor.Rendering.Cpu.Kernels;

/// <summary>Which row kernels the CPU renderer runs (tests and benchmarks pin one; normally <see cref="Auto"/>).</summary>
public enum KernelIsa
{
    /// <summary>The widest this machine accelerates: AVX-512 where Vector512 is hardware accelerated, else AVX2, else scalar.</summary>
    Auto,
    Avx512,
    Avx2,
    Scalar,
}

public static class KernelIsaExtensions
{
    /// <summary>
    /// The kernels actually used for <paramref name="requested"/>: never wider than the machine
    /// supports (asking for AVX-512 on an AVX2 machine gives AVX2).
    /// </summary>
    public static KernelIsa Resolve(this KernelIsa requested)
    {
        bool has512 = Avx512Kernels.IsSupported && Avx2Kernels.IsSupported;
        bool has256 = Avx2Kernels.IsSupported;
        if (requested == KernelIsa.Auto) return has512 && Vector512.IsHardwareAccelerated ? KernelIsa.Avx512 : has256 ? KernelIsa.Avx2 : KernelIsa.Scalar;
        if (requested == KernelIsa.Avx512 && has512) return KernelIsa.Avx512;
        if (requested is KernelIsa.Avx512 or KernelIsa.Avx2 && has256) return KernelIsa.Avx2;
        return KernelIsa.Scalar;
    }
}
