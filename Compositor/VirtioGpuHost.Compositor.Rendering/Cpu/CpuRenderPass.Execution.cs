using VirtioGpuHost.Compositor.Rendering.Cpu.Kernels;

namespace VirtioGpuHost.Compositor.Rendering.Cpu;

/// <summary>
/// Runs the kernels: the rows the pieces span are cut into bands of a few rows (small enough to
/// stay in cache while every call is applied to them, back to front). Small frames run on the
/// calling thread; large ones share the bands with the renderer's workers.
/// </summary>
public sealed unsafe partial class CpuRenderPass
{
    private int _bandTop, _bandBottom, _bandRows;
    private KernelIsa _isa;

    private (int Bands, bool Parallel) Execute(long pixels)
    {
        if (pixels == 0) return (0, false);
        int top = int.MaxValue, bottom = int.MinValue;
        foreach (var p in _pieces.AsSpan())
        {
            top = Math.Min(top, p.Y);
            bottom = Math.Max(bottom, p.Bottom);
        }
        var options = _target.Owner.Options;
        _isa = Isa;
        _bandTop = top;
        _bandBottom = bottom;
        _bandRows = options.BandRows > 0 ? options.BandRows : Math.Max(1, 512 * 1024 / _target.Stride);
        int bands = (bottom - top + _bandRows - 1) / _bandRows;
        bool parallel = bands > 1 && pixels >= options.ParallelThresholdPixels
            && _target.Owner.Scheduler is { } scheduler && scheduler.TryRun(this, bands);
        if (!parallel)
            for (int b = 0; b < bands; b++) RunBand(b);
        return (bands, parallel);
    }

    void IBandWork.RunBand(int band) => RunBand(band);

    private void RunBand(int band)
    {
        int y0 = _bandTop + band * _bandRows, y1 = Math.Min(y0 + _bandRows, _bandBottom);
        for (int i = 0; i < _opCount; i++)
        {
            ref var op = ref _ops[i];
            foreach (var p in _pieces.Slice(op.PieceStart, op.PieceCount))
            {
                int ya = Math.Max(p.Y, y0), yb = Math.Min(p.Bottom, y1);
                if (ya < yb) Draw(ref op, p.X, p.Right, ya, yb);
            }
        }
    }

    /// <summary>Applies <paramref name="op"/> to target columns [xa, xb) of rows [ya, yb).</summary>
    private void Draw(ref DrawOp op, int xa, int xb, int ya, int yb)
    {
        int n = xb - xa, stride = _target.Stride;
        byte* dst = (byte*)_target.Pixels + (long)ya * stride + (long)xa * 4;
        var isa = _isa;
        switch (op.Kind)
        {
            case OpKind.FillOpaque:
                for (int y = ya; y < yb; y++, dst += stride) RowKernels.Fill(isa, (uint*)dst, op.Color, n);
                return;
            case OpKind.FillBlend:
                for (int y = ya; y < yb; y++, dst += stride) RowKernels.BlendFill(isa, (uint*)dst, op.Color, n);
                return;
        }

        // Same width: source x runs with destination x; otherwise through the call's table.
        int sx = op.Source.X + (int)((long)xa - op.Destination.X);
        int* xIndex = _tables.Pointer + op.TableOffset + (xa - op.TableX0);
        int previousSy = -1;
        for (int y = ya; y < yb; y++, dst += stride)
        {
            int sy = NearestMapping.Sample(y, op.Destination.Y, op.Destination.Height, op.Source.Y, op.Source.Height);
            byte* srcRow = (byte*)op.Base + (long)sy * op.Stride;
            switch (op.Kind)
            {
                case OpKind.Copy when sy == previousSy:
                case OpKind.CopyScaled when sy == previousSy:
                    // Opaque rows depend on the source row only: an upscaled row repeats the one above.
                    Buffer.MemoryCopy(dst - stride, dst, (long)n * 4, (long)n * 4);
                    break;
                case OpKind.Copy:
                    RowKernels.CopyOpaque(isa, (uint*)dst, (uint*)(srcRow + (long)sx * 4), n, op.Layout, op.Dim);
                    break;
                case OpKind.CopyScaled:
                    RowKernels.CopyOpaqueScaled(isa, (uint*)dst, (uint*)srcRow, op.SourceWidth, xIndex, n, op.Layout, op.Dim);
                    break;
                case OpKind.Blend when op.Tiles != 0:
                    BlendTiled(ref op, (uint*)dst, (uint*)srcRow, sx, n, sy);
                    break;
                case OpKind.Blend:
                    RowKernels.Blend(isa, (uint*)dst, (uint*)(srcRow + (long)sx * 4), n, op.Dim);
                    break;
                case OpKind.BlendScaled:
                    RowKernels.BlendScaled(isa, (uint*)dst, (uint*)srcRow, op.SourceWidth, xIndex, n, op.Dim);
                    break;
            }
            previousSy = sy;
        }
    }

    /// <summary>
    /// A 1:1 blend row split by the texture's tile classes: transparent runs are skipped unread,
    /// opaque runs copied (over anything, an opaque pixel replaces), mixed and unknown runs blended.
    /// </summary>
    private void BlendTiled(ref DrawOp op, uint* dst, uint* srcRow, int sx, int n, int sy)
    {
        byte* classes = (byte*)op.Tiles + (long)(sy >> TileMap.HeightShift) * op.TileColumns;
        int x = sx, end = sx + n;
        while (x < end)
        {
            byte kind = classes[x >> TileMap.WidthShift];
            int runEnd = Math.Min(end, ((x >> TileMap.WidthShift) + 1) << TileMap.WidthShift);
            while (runEnd < end && classes[runEnd >> TileMap.WidthShift] == kind)
                runEnd = Math.Min(end, runEnd + (1 << TileMap.WidthShift));
            if (kind >= TileMap.Mixed) RowKernels.Blend(_isa, dst + (x - sx), srcRow + x, runEnd - x, op.Dim);
            else if (kind == TileMap.Opaque) RowKernels.CopyOpaque(_isa, dst + (x - sx), srcRow + x, runEnd - x, SourceLayout.Bgrx, op.Dim);
            x = runEnd;
        }
    }
}
