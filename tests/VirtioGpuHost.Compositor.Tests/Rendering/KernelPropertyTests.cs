using CsCheck;
using VirtioGpuHost.Compositor.Core.Geometry;
using VirtioGpuHost.Compositor.Rendering;
using VirtioGpuHost.Compositor.Rendering.Cpu.Kernels;

namespace VirtioGpuHost.Compositor.Tests.Rendering;

/// <summary>
/// Every SIMD row kernel against the scalar reference kernels: random lengths (tails and
/// sub-vector rows included), misaligned starts, layouts, dims and pixels built so that whole
/// vectors are transparent, opaque, translucent or out-of-range. Whole buffers are compared,
/// so a write outside the row fails too.
/// </summary>
public class KernelPropertyTests
{
    private const int Iterations = 1500;

    public static TheoryData<KernelIsa> VectorIsas => new() { KernelIsa.Avx2, KernelIsa.Avx512 };

    private static void Require(KernelIsa isa)
    {
        if (isa.Resolve() != isa) Assert.Skip($"this CPU has no {isa} (it resolves to {isa.Resolve()})");
    }

    private static readonly Gen<byte> GenDim = Gen.Frequency((3, Gen.Const((byte)255)), (3, Gen.Byte), (1, Gen.Const((byte)0)));

    private static readonly Gen<(int N, int DstOffset, int SrcOffset, int Seed)> GenRow =
        Gen.Select(Gen.Frequency((1, Gen.Int[0, 17]), (3, Gen.Int[0, 200])), Gen.Int[0, 15], Gen.Int[0, 15], Gen.Int);

    private static uint[] Pixels(int length, int seed, int row = 0)
    {
        var noise = RenderTestKit.Noise(seed);
        var a = new uint[length];
        for (int i = 0; i < length; i++) a[i] = noise(i, row);
        return a;
    }

    /// <summary>Runs <paramref name="kernel"/> with the scalar reference and with <paramref name="isa"/> on copies of one buffer.</summary>
    private static void AssertSame(KernelIsa isa, uint[] dst, int offset, int n, Action<KernelIsa, Span<uint>> kernel)
    {
        var expected = (uint[])dst.Clone();
        var actual = (uint[])dst.Clone();
        kernel(KernelIsa.Scalar, expected.AsSpan(offset, n));
        kernel(isa, actual.AsSpan(offset, n));
        Assert.Equal(expected, actual);
    }

    [Theory]
    [MemberData(nameof(VectorIsas))]
    public void CopyOpaque_RandomRows_MatchesScalar(KernelIsa isa)
    {
        Require(isa);
        Gen.Select(GenRow, Gen.Enum<SourceLayout>(), GenDim).Sample((row, layout, dim) =>
        {
            var src = Pixels(row.SrcOffset + row.N, row.Seed);
            var dst = Pixels(row.DstOffset + row.N + 16, row.Seed + 1);
            AssertSame(isa, dst, row.DstOffset, row.N, (k, d) => SpanKernels.CopyOpaque(k, d, src.AsSpan(row.SrcOffset, row.N), layout, dim));
        }, iter: Iterations);
    }

    [Theory]
    [MemberData(nameof(VectorIsas))]
    public void Blend_RandomRows_MatchesScalar(KernelIsa isa)
    {
        Require(isa);
        Gen.Select(GenRow, GenDim).Sample((row, dim) =>
        {
            var src = Pixels(row.SrcOffset + row.N, row.Seed);
            var dst = Pixels(row.DstOffset + row.N + 16, row.Seed + 1);
            AssertSame(isa, dst, row.DstOffset, row.N, (k, d) => SpanKernels.Blend(k, d, src.AsSpan(row.SrcOffset, row.N), dim));
        }, iter: Iterations);
    }

    /// <summary>Source-x tables as the renderer builds them (a window of a scaled call), or arbitrary non-decreasing indices (any jumps).</summary>
    private static readonly Gen<(int[] Index, int RowLength)> GenIndex =
        Gen.Select(Gen.Int[1, 120], Gen.Int[1, 300], Gen.Int[0, 299], Gen.Int[0, 119], Gen.Int, Gen.Bool).Select(t =>
        {
            var (srcLen, dstLen, dstFrom, srcFrom, seed, mapped) = t;
            srcFrom %= srcLen;
            int n = Math.Max(0, dstLen - dstFrom % dstLen);
            var index = new int[n];
            var random = new Random(seed);
            for (int k = 0; k < n; k++)
                index[k] = mapped
                    ? NearestMapping.Sample(dstFrom % dstLen + k, 0, dstLen, srcFrom, srcLen - srcFrom)
                    : random.Next(srcLen);
            if (!mapped) Array.Sort(index);
            return (index, srcLen);
        });

    [Theory]
    [MemberData(nameof(VectorIsas))]
    public void CopyOpaqueScaled_RandomTables_MatchesScalar(KernelIsa isa)
    {
        Require(isa);
        Gen.Select(GenIndex, Gen.Int[0, 15], Gen.Int, Gen.Enum<SourceLayout>(), GenDim).Sample((table, offset, seed, layout, dim) =>
        {
            var srcRow = Pixels(table.RowLength, seed);
            int n = table.Index.Length;
            var dst = Pixels(offset + n + 16, seed + 1);
            AssertSame(isa, dst, offset, n, (k, d) => SpanKernels.CopyOpaqueScaled(k, d, srcRow, table.Index, layout, dim));
        }, iter: Iterations);
    }

    [Theory]
    [MemberData(nameof(VectorIsas))]
    public void BlendScaled_RandomTables_MatchesScalar(KernelIsa isa)
    {
        Require(isa);
        Gen.Select(GenIndex, Gen.Int[0, 15], Gen.Int, GenDim).Sample((table, offset, seed, dim) =>
        {
            var srcRow = Pixels(table.RowLength, seed);
            int n = table.Index.Length;
            var dst = Pixels(offset + n + 16, seed + 1);
            AssertSame(isa, dst, offset, n, (k, d) => SpanKernels.BlendScaled(k, d, srcRow, table.Index, dim));
        }, iter: Iterations);
    }

    private static readonly Gen<uint> GenColor = Gen.Frequency(
        (2, Gen.UInt.Select(c => c | 0xFF000000u)),
        (3, Gen.Select(Gen.Byte, Gen.Byte, Gen.Byte, Gen.Byte).Select(t => ColorBgra.FromStraight(t.Item1, t.Item2, t.Item3, t.Item4).Value)),
        (1, Gen.UInt),
        (1, Gen.Const(0u)));

    [Theory]
    [MemberData(nameof(VectorIsas))]
    public void Fill_RandomRows_MatchesScalar(KernelIsa isa)
    {
        Require(isa);
        Gen.Select(GenRow, GenColor).Sample((row, color) =>
        {
            var dst = Pixels(row.DstOffset + row.N + 16, row.Seed);
            AssertSame(isa, dst, row.DstOffset, row.N, (k, d) => SpanKernels.Fill(k, d, color));
        }, iter: Iterations);
    }

    [Theory]
    [MemberData(nameof(VectorIsas))]
    public void BlendFill_RandomRows_MatchesScalar(KernelIsa isa)
    {
        Require(isa);
        Gen.Select(GenRow, GenColor).Sample((row, color) =>
        {
            var dst = Pixels(row.DstOffset + row.N + 16, row.Seed);
            AssertSame(isa, dst, row.DstOffset, row.N, (k, d) => SpanKernels.BlendFill(k, d, color));
        }, iter: Iterations);
    }
}
