using System.Runtime.InteropServices;
using Silk.NET.OpenGL;
using VirtioGpuHost.Compositor.Core.Geometry;
using VirtioGpuHost.Compositor.Rendering.OpenGL.Native;

namespace VirtioGpuHost.Compositor.Rendering.OpenGL;

/// <summary>
/// One frame on a <see cref="GlRenderTarget"/>: calls are recorded (clips copied and cut to the
/// target), and <see cref="Submit"/> turns them into the compute pass's inputs: per call its pieces
/// (clip ∩ damage, disjoint), its source-x and source-y tables (<see cref="NearestMapping"/>), the
/// 16x16 tiles that touch any piece, batches of ≤ 32 calls with ≤ 16 textures and ≤ 1024 pieces; then one dispatch
/// per batch. Each target has one pass object, reused every frame; it must not be used after Submit.
/// </summary>
public sealed class GlRenderPass : IRenderPass
{
    private readonly GlRenderTarget _target;
    private readonly List<RectI> _damage = [];
    private readonly List<RectI> _clips = [];
    private readonly List<Op> _ops = [];
    private bool _open;

    // Submit's scratch, kept between frames.
    private readonly List<GpuCall> _calls = [];
    private readonly List<GlTexture?> _callTextures = [];
    private readonly List<RectI> _pieces = [];
    private readonly List<int> _tables = [];
    private readonly List<TileOrigin> _tiles = [];
    private bool[] _tileMarks = [];

    internal GlRenderPass(GlRenderTarget target) => _target = target;

    private record struct Op(GlTexture? Texture, RectI Source, RectI Destination, RectI Visible, uint Color, byte Dim, int ClipStart, int ClipCount);

    [StructLayout(LayoutKind.Sequential)]
    private struct GpuCall
    {
        public int X0, Y0, X1, Y1;
        public int Kind, Slot, Layout;
        public uint Dim, Color;
        public int PieceStart, PieceCount, TableX, TableY, Occludes, OffsetX, OffsetY;
    }

    [StructLayout(LayoutKind.Sequential)]
    private record struct TileOrigin(int X, int Y);

    [StructLayout(LayoutKind.Sequential)]
    private record struct GpuRect(int X0, int Y0, int X1, int Y1);

    internal void Begin(Region damage)
    {
        if (_open) throw new InvalidOperationException("this target already has a pass that was not submitted");
        _open = true;
        _ops.Clear();
        _clips.Clear();
        _damage.Clear();
        foreach (var r in damage.Rects)
        {
            var c = ClipToTarget(r);
            if (!c.IsEmpty) _damage.Add(c);
        }
    }

    public void FillRect(RectI destination, ColorBgra color, Region clip)
    {
        ArgumentNullException.ThrowIfNull(clip);
        EnsureOpen();
        if (color.Value == 0) return; // transparent black over anything changes nothing
        Record(null, default, destination, clip, color.Value, 255);
    }

    public void DrawTexture(ITexture texture, RectI source, RectI destination, Region clip, byte dim = 255)
    {
        ArgumentNullException.ThrowIfNull(texture);
        ArgumentNullException.ThrowIfNull(clip);
        EnsureOpen();
        var tex = _target.Owner.Own(texture);
        ObjectDisposedException.ThrowIf(tex.IsDisposed, tex);
        CheckSource(tex, source);
        Record(tex, source, destination, clip, 0, dim);
    }

    private void Record(GlTexture? texture, RectI source, RectI destination, Region clip, uint color, byte dim)
    {
        var visible = ClipToTarget(destination);
        if (visible.IsEmpty || _damage.Count == 0) return;
        int start = _clips.Count;
        foreach (var r in clip.Rects)
        {
            var c = ClipToTarget(r).Intersect(visible);
            if (!c.IsEmpty) _clips.Add(c);
        }
        if (_clips.Count == start) return;
        _ops.Add(new Op(texture, source, destination, visible, color, dim, start, _clips.Count - start));
    }

    /// <summary>r ∩ the target, in 64-bit arithmetic (a rectangle may reach far outside).</summary>
    private RectI ClipToTarget(RectI r)
    {
        if (r.IsEmpty) return default;
        long l = Math.Max(r.X, 0L), t = Math.Max(r.Y, 0L);
        long right = Math.Min((long)r.X + r.Width, _target.Size.Width), bottom = Math.Min((long)r.Y + r.Height, _target.Size.Height);
        return right <= l || bottom <= t ? default : new RectI((int)l, (int)t, (int)(right - l), (int)(bottom - t));
    }

    private static void CheckSource(GlTexture texture, RectI source)
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
            var owner = _target.Owner;
            owner.ThrowIfUnusable();
            foreach (var op in _ops)
                if (op.Texture is { } tex)
                {
                    ObjectDisposedException.ThrowIf(tex.IsDisposed, tex);
                    CheckSource(tex, op.Source); // the texture may have been resized since the call
                }
            Prepare();
            if (_calls.Count == 0) return;
            using var scope = owner.Enter();
            ObjectDisposedException.ThrowIf(_target.IsDisposed, _target);
            Dispatch(owner);
            owner.Check("Submit");
        }
        finally
        {
            _ops.Clear();
            _callTextures.Clear();
            _open = false;
        }
    }

    /// <summary>Pieces, tables and tiles of every call that draws something.</summary>
    private void Prepare()
    {
        _calls.Clear();
        _callTextures.Clear();
        _pieces.Clear();
        _tables.Clear();
        _tiles.Clear();
        var size = _target.Size;
        int tilesX = (size.Width + GlRenderer.TileSize - 1) / GlRenderer.TileSize, tilesY = (size.Height + GlRenderer.TileSize - 1) / GlRenderer.TileSize;
        if (_tileMarks.Length < tilesX * tilesY) _tileMarks = new bool[tilesX * tilesY];
        foreach (var op in _ops)
        {
            int pieceStart = _pieces.Count;
            int x0 = int.MaxValue, y0 = int.MaxValue, x1 = int.MinValue, y1 = int.MinValue;
            for (int i = 0; i < op.ClipCount; i++)
            {
                var clip = _clips[op.ClipStart + i];
                foreach (var d in _damage)
                {
                    var r = clip.Intersect(d);
                    if (r.IsEmpty) continue;
                    _pieces.Add(r);
                    (x0, y0, x1, y1) = (Math.Min(x0, r.X), Math.Min(y0, r.Y), Math.Max(x1, r.Right), Math.Max(y1, r.Bottom));
                    for (int ty = r.Y / GlRenderer.TileSize; ty <= (r.Bottom - 1) / GlRenderer.TileSize; ty++)
                        for (int tx = r.X / GlRenderer.TileSize; tx <= (r.Right - 1) / GlRenderer.TileSize; tx++)
                        {
                            ref bool mark = ref _tileMarks[ty * tilesX + tx];
                            if (mark) continue;
                            mark = true;
                            _tiles.Add(new TileOrigin(tx * GlRenderer.TileSize, ty * GlRenderer.TileSize));
                        }
                }
            }
            if (_pieces.Count == pieceStart) continue;
            var call = new GpuCall { X0 = x0, Y0 = y0, X1 = x1, Y1 = y1, PieceStart = pieceStart, PieceCount = _pieces.Count - pieceStart, Dim = op.Dim };
            if (op.Texture is not { } tex)
            {
                call.Kind = 0;
                call.Color = op.Color;
                call.Occludes = op.Color >> 24 == 255 ? 1 : 0;
            }
            else
            {
                call.Kind = tex.IsOpaque ? 1 : 2;
                call.Layout = (int)tex.Layout;
                call.Occludes = tex.IsOpaque ? 1 : 0;
                long offsetX = (long)op.Source.X - op.Destination.X, offsetY = (long)op.Source.Y - op.Destination.Y;
                if (op.Source.Width == op.Destination.Width && op.Source.Height == op.Destination.Height && int.MinValue < offsetX && offsetX < int.MaxValue
                    && int.MinValue < offsetY && offsetY < int.MaxValue)
                {
                    // 1:1: the mapping is source = destination + offset, no tables.
                    (call.TableX, call.TableY, call.OffsetX, call.OffsetY) = (-1, -1, (int)offsetX, (int)offsetY);
                }
                else
                {
                    call.TableX = _tables.Count;
                    for (int x = x0; x < x1; x++) _tables.Add(NearestMapping.Sample(x, op.Destination.X, op.Destination.Width, op.Source.X, op.Source.Width));
                    call.TableY = _tables.Count;
                    for (int y = y0; y < y1; y++) _tables.Add(NearestMapping.Sample(y, op.Destination.Y, op.Destination.Height, op.Source.Y, op.Source.Height));
                }
            }
            // A call with more pieces than a batch holds is split into calls with disjoint pieces (same pixels).
            for (int start = pieceStart; start < _pieces.Count; start += GlRenderer.MaxPiecesPerBatch)
            {
                call.PieceStart = start;
                call.PieceCount = Math.Min(GlRenderer.MaxPiecesPerBatch, _pieces.Count - start);
                _calls.Add(call);
                _callTextures.Add(op.Texture);
            }
        }
        foreach (var t in _tiles) _tileMarks[t.Y / GlRenderer.TileSize * tilesX + t.X / GlRenderer.TileSize] = false;
    }

    /// <summary>Uploads tiles and tables, then per batch its block (calls with batch-relative pieces), textures and one dispatch.</summary>
    private void Dispatch(GlRenderer owner)
    {
        var gl = owner.Gl;
        GlUnsafe.BufferData(gl, BufferTargetARB.ShaderStorageBuffer, owner.TileBuffer, CollectionsMarshal.AsSpan(_tiles));
        if (_tables.Count == 0) _tables.Add(0);
        GlUnsafe.BufferData(gl, BufferTargetARB.ShaderStorageBuffer, owner.TableBuffer, CollectionsMarshal.AsSpan(_tables));
        gl.BindBufferBase(BufferTargetARB.ShaderStorageBuffer, 0, owner.TileBuffer);
        gl.BindBufferBase(BufferTargetARB.ShaderStorageBuffer, 1, owner.TableBuffer);
        gl.UseProgram(owner.Program);
        gl.BindImageTexture(0, _target.Texture, 0, false, 0, BufferAccessARB.ReadWrite, InternalFormat.Rgba8ui);
        int tileCount = _tiles.Count;
        uint groupsX = (uint)Math.Min(tileCount, 65535), groupsY = (uint)((tileCount + 65534) / 65535);
        gl.Uniform1(2, tileCount);
        gl.Uniform1(3, (int)groupsX);

        var calls = CollectionsMarshal.AsSpan(_calls);
        int first = 0;
        while (first < calls.Length)
        {
            // The batch: as many calls as fit (≤ 32 calls, ≤ 16 textures, ≤ 1024 pieces).
            Array.Clear(_slots);
            int used = 0, pieces = 0, end = first;
            for (; end < calls.Length && end - first < GlRenderer.MaxCallsPerBatch; end++)
            {
                if (pieces + calls[end].PieceCount > GlRenderer.MaxPiecesPerBatch) break;
                int slot = 0;
                if (_callTextures[end] is { } tex)
                {
                    slot = Array.IndexOf(_slots, tex, 0, used);
                    if (slot < 0)
                    {
                        if (used == GlRenderer.MaxTexturesPerBatch) break;
                        slot = used;
                        _slots[used++] = tex;
                    }
                }
                pieces += calls[end].PieceCount;
                calls[end].Slot = slot;
            }
            var block = MemoryMarshal.Cast<int, GpuCall>(_block.AsSpan(0, GlRenderer.MaxCallsPerBatch * 16));
            var blockPieces = MemoryMarshal.Cast<int, GpuRect>(_block.AsSpan(GlRenderer.MaxCallsPerBatch * 16));
            int p = 0;
            for (int k = first; k < end; k++)
            {
                var call = calls[k];
                for (int i = 0; i < call.PieceCount; i++)
                {
                    var r = _pieces[call.PieceStart + i];
                    blockPieces[p + i] = new GpuRect(r.X, r.Y, r.Right, r.Bottom);
                }
                call.PieceStart = p;
                p += call.PieceCount;
                block[k - first] = call;
            }
            GlUnsafe.BufferData<int>(gl, BufferTargetARB.UniformBuffer, owner.BatchBuffer, _block);
            gl.BindBufferBase(BufferTargetARB.UniformBuffer, 0, owner.BatchBuffer);
            for (int s = 0; s < used; s++)
            {
                gl.ActiveTexture(TextureUnit.Texture0 + s);
                gl.BindTexture(TextureTarget.Texture2D, _slots[s]!.Name);
            }
            gl.Uniform1(1, end - first);
            gl.DispatchCompute(groupsX, groupsY, 1);
            gl.MemoryBarrier(MemoryBarrierMask.ShaderImageAccessBarrierBit);
            first = end;
        }
        gl.ActiveTexture(TextureUnit.Texture0);
        gl.MemoryBarrier(MemoryBarrierMask.AllBarrierBits);
    }

    private readonly GlTexture?[] _slots = new GlTexture?[GlRenderer.MaxTexturesPerBatch];

    /// <summary>The uniform block of one batch: 32 calls of 16 ints, then 1024 pieces of 4 ints (std140 = this layout).</summary>
    private readonly int[] _block = new int[GlRenderer.MaxCallsPerBatch * 16 + GlRenderer.MaxPiecesPerBatch * 4];
}
