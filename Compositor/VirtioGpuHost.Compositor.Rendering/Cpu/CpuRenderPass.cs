using VirtioGpuHost.Compositor.Core.Geometry;
using VirtioGpuHost.Compositor.Rendering.Cpu.Kernels;

namespace VirtioGpuHost.Compositor.Rendering.Cpu;

/// <summary>
/// One frame on a <see cref="CpuRenderTarget"/>: calls are recorded (their clip and the pass
/// damage copied, so callers may reuse their regions) and executed by <see cref="Submit"/>:
/// visibility (damage ∩ clip, minus what later opaque calls cover), then the kernels band by
/// band, back to front within each band. Each target has one pass object, reused every frame;
/// a pass must not be used after its Submit.
/// </summary>
public sealed unsafe partial class CpuRenderPass : IRenderPass, IBandWork
{
    private readonly CpuRenderTarget _target;
    private DrawOp[] _ops = new DrawOp[16];
    private int _opCount;
    private readonly RectList _damage = new();
    private readonly RectList _clips = new();
    private bool _open;

    internal CpuRenderPass(CpuRenderTarget target)
    {
        _target = target;
    }

    internal void Begin(Region damage)
    {
        ArgumentNullException.ThrowIfNull(damage);
        if (_open) throw new InvalidOperationException("this target already has a pass that was not submitted");
        _open = true;
        _opCount = 0;
        _damage.Clear();
        _clips.Clear();
        var rects = damage.Rects;
        for (int i = 0; i < rects.Count; i++)
        {
            var r = RectMath.ClipTo(rects[i], _target.Size);
            if (!r.IsEmpty) _damage.Add(r);
        }
    }

    public void FillRect(RectI destination, ColorBgra color, Region clip)
    {
        ArgumentNullException.ThrowIfNull(clip);
        EnsureOpen();
        if (color.Value == 0) return; // transparent black over anything changes nothing
        ref var op = ref NewOp(destination, clip, out bool visible);
        if (!visible) return;
        op.Kind = color.IsOpaque ? OpKind.FillOpaque : OpKind.FillBlend;
        op.Color = color.Value;
        op.Dim = 255;
        _opCount++;
    }

    public void DrawTexture(ITexture texture, RectI source, RectI destination, Region clip, byte dim = 255)
    {
        ArgumentNullException.ThrowIfNull(texture);
        ArgumentNullException.ThrowIfNull(clip);
        EnsureOpen();
        var tex = _target.Owner.OwnTexture(texture);
        ObjectDisposedException.ThrowIf(tex.IsDisposed, tex);
        CheckSource(tex, source);
        ref var op = ref NewOp(destination, clip, out bool visible);
        if (!visible) return;
        op.Texture = tex;
        op.Source = source;
        op.Dim = dim;
        _opCount++;
    }

    /// <summary>Prepares the next op slot (not yet counted): destination ∩ target, clip rects ∩ that.</summary>
    private ref DrawOp NewOp(RectI destination, Region clip, out bool visible)
    {
        if (_opCount == _ops.Length) Array.Resize(ref _ops, _ops.Length * 2);
        ref var op = ref _ops[_opCount];
        op = default;
        op.Destination = destination;
        op.Visible = RectMath.ClipTo(destination, _target.Size);
        visible = false;
        if (op.Visible.IsEmpty || _damage.Count == 0) return ref op;
        op.ClipStart = _clips.Count;
        var rects = clip.Rects;
        for (int i = 0; i < rects.Count; i++)
        {
            var r = RectMath.ClipTo(rects[i], _target.Size).Intersect(op.Visible);
            if (!r.IsEmpty) _clips.Add(r);
        }
        op.ClipCount = _clips.Count - op.ClipStart;
        visible = op.ClipCount > 0;
        return ref op;
    }

    private static void CheckSource(CpuTexture texture, RectI source)
    {
        if (source.IsEmpty || !texture.Size.ToRect().Contains(source))
            throw new ArgumentOutOfRangeException(nameof(source), source, $"the source must be a non-empty rectangle inside the {texture.Size} texture");
    }

    private void EnsureOpen()
    {
        if (!_open) throw new InvalidOperationException("the pass was submitted (begin a new one)");
    }

    public void Submit()
    {
        EnsureOpen();
        try
        {
            BindTextures();
            var stats = ComputeVisibility(_target.Owner.Options.OcclusionCulling);
            BuildSourceTables();
            var (bands, parallel) = Execute(stats.PixelsDrawn);
            _target.LastStats = stats with { Bands = bands, Parallel = parallel };
        }
        finally
        {
            for (int i = 0; i < _opCount; i++) _ops[i].Texture = null;
            _opCount = 0;
            _open = false;
        }
    }

    /// <summary>Reads each texture's current binding (it may have been rebound since the call) and picks the kernel.</summary>
    private void BindTextures()
    {
        for (int i = 0; i < _opCount; i++)
        {
            ref var op = ref _ops[i];
            if (op.Texture is not { } tex) continue;
            var view = tex.View; // throws if disposed since the call
            CheckSource(tex, op.Source);
            op.Base = view.Address;
            op.Stride = view.Stride;
            op.SourceWidth = view.Width;
            op.Layout = view.Layout;
            bool scaled = op.Source.Width != op.Destination.Width;
            op.Kind = view.IsOpaque
                ? scaled ? OpKind.CopyScaled : OpKind.Copy
                : scaled ? OpKind.BlendScaled : OpKind.Blend;
            if (op.Kind == OpKind.Blend) tex.PrepareTiles();
            op.Tiles = op.Kind == OpKind.Blend && tex.Tiles is { } tiles ? (nint)tiles.Classes : 0;
            op.TileColumns = tex.Tiles?.Columns ?? 0;
        }
    }

    /// <summary>Frees the native buffers (the target is being disposed).</summary>
    internal void Release() => _tables.Dispose();

    private KernelIsa Isa => _target.Owner.Isa;
}
