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
    private const int Tile = GlRenderer.TileSize, CallWords = 8, EntryFull = unchecked((int)0x80000000);
    private const int FlagTexture = 1, FlagScaledX = 4, FlagScaledY = 8;
    private int[] _words = new int[4096];
    private int _wordCount;
    private readonly List<RectI> _pieces = [];
    private int[] _pieceStart = [];
    private readonly List<Entry> _entries = [];
    private Entry[] _sorted = [];
    private int[] _tileStamp = [], _tileCounts = [], _tileStarts = [];
    private bool[] _tileFull = [];
    private int _stamp;
    private readonly List<Chunk> _chunks = [];
    private readonly Dictionary<GlTexture, int> _slotOf = [];

    private record struct Entry(int Tile, int Call, bool Full, bool Opaque, int PieceStart, int PieceEnd);

    /// <summary>One dispatch: its calls at <c>CallWord</c> (uniform block), its tile records, its textures.</summary>
    private record struct Chunk(int CallWord, int TileOffset, int TileCount, GlTexture?[] Slots, int SlotCount);

    internal GlRenderPass(GlRenderTarget target) => _target = target;

    private record struct Op(GlTexture? Texture, RectI Source, RectI Destination, RectI Visible, uint Color, byte Dim, int ClipStart, int ClipCount);

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
            if (!Build()) return;
            using var scope = owner.Enter();
            ObjectDisposedException.ThrowIf(_target.IsDisposed, _target);
            Dispatch(owner);
            owner.Check("Submit");
        }
        finally
        {
            _ops.Clear();
            foreach (var c in _chunks) Array.Clear(c.Slots);
            _chunks.Clear();
            _open = false;
        }
    }

    /// <summary>
    /// Writes the parameter words and the dispatch chunks; false when nothing can change. Per chunk
    /// (≤ <see cref="GlRenderer.MaxTexturesPerBatch"/> textures, ≤ <see cref="GlRenderer.MaxCallsPerBatch"/>
    /// calls): the calls (aligned for the uniform block), their pieces (clip ∩ damage) and source
    /// tables, then the calls binned per 16x16 tile (entries: the calls touching the tile, flagged
    /// when one piece holds it whole), culled under the topmost opaque whole-tile call, then one
    /// record per tile that has entries.
    /// </summary>
    private bool Build()
    {
        _wordCount = 0;
        _chunks.Clear();
        if (_damage.Count == 0 || _ops.Count == 0) return false;
        var size = _target.Size;
        int tilesX = (size.Width + Tile - 1) / Tile, tilesY = (size.Height + Tile - 1) / Tile;
        if (_tileStamp.Length < tilesX * tilesY)
        {
            _tileStamp = new int[tilesX * tilesY];
            _tileFull = new bool[tilesX * tilesY];
            _tileCounts = new int[tilesX * tilesY + 1];
        }

        _pieces.Clear();
        if (_pieceStart.Length < _ops.Count + 1) _pieceStart = new int[_ops.Count * 2 + 1];
        for (int i = 0; i < _ops.Count; i++)
        {
            var op = _ops[i];
            _pieceStart[i] = _pieces.Count;
            for (int c = 0; c < op.ClipCount; c++)
                foreach (var d in _damage)
                {
                    var r = _clips[op.ClipStart + c].Intersect(d);
                    if (!r.IsEmpty) _pieces.Add(r);
                }
        }
        _pieceStart[_ops.Count] = _pieces.Count;
        if (_pieces.Count == 0) return false;

        int first = 0;
        while (first < _ops.Count)
        {
            _slotOf.Clear();
            var slots = new GlTexture?[GlRenderer.MaxTexturesPerBatch];
            int end = first, calls = 0;
            for (; end < _ops.Count && calls < GlRenderer.MaxCallsPerBatch; end++)
            {
                if (_pieceStart[end] == _pieceStart[end + 1]) continue;
                if (_ops[end].Texture is { } t && !_slotOf.ContainsKey(t))
                {
                    if (_slotOf.Count == GlRenderer.MaxTexturesPerBatch) break;
                    slots[_slotOf.Count] = t;
                    _slotOf.Add(t, _slotOf.Count);
                }
                calls++;
            }
            if (calls > 0) BuildChunk(first, end, calls, tilesX, tilesY, size, slots);
            first = end;
        }
        return _chunks.Count > 0;
    }

    private void BuildChunk(int first, int end, int calls, int tilesX, int tilesY, SizeI size, GlTexture?[] slots)
    {
        while (_wordCount % GlRenderer.UniformAlignWords != 0) Push(0);
        int callWords = _wordCount;
        Reserve(calls * CallWords);
        _wordCount += calls * CallWords;
        _entries.Clear();
        int k = 0;
        for (int i = first; i < end; i++)
        {
            int p0 = _pieceStart[i], p1 = _pieceStart[i + 1];
            if (p0 == p1) continue;
            var op = _ops[i];
            var b = _pieces[p0];
            for (int p = p0 + 1; p < p1; p++) b = b.Union(_pieces[p]);
            while (_wordCount % 4 != 0) Push(0);
            int pieceIndex = _wordCount / 4;
            for (int p = p0; p < p1; p++)
            {
                var r = _pieces[p];
                Push(r.X, r.Y, r.Right, r.Bottom);
            }
            int flags, colour, offX = 0, offY = 0;
            bool opaque;
            if (op.Texture is { } tex)
            {
                flags = FlagTexture | (int)tex.Layout << 8 | _slotOf[tex] << 16;
                colour = op.Dim;
                opaque = tex.IsOpaque;
                var s = op.Source;
                var dst = op.Destination;
                if (s.Width != dst.Width)
                {
                    flags |= FlagScaledX;
                    offX = _wordCount - b.X;
                    for (int x = b.X; x < b.Right; x++) Push(NearestMapping.Sample(x, dst.X, dst.Width, s.X, s.Width));
                }
                else offX = unchecked((int)((long)s.X - dst.X));
                if (s.Height != dst.Height)
                {
                    flags |= FlagScaledY;
                    offY = _wordCount - b.Y;
                    for (int y = b.Y; y < b.Bottom; y++) Push(NearestMapping.Sample(y, dst.Y, dst.Height, s.Y, s.Height));
                }
                else offY = unchecked((int)((long)s.Y - dst.Y));
            }
            else
            {
                flags = 0;
                colour = unchecked((int)op.Color);
                opaque = op.Color >> 24 == 0xFF;
            }
            int o = callWords + k * CallWords;
            _words[o] = flags;
            _words[o + 1] = colour;
            _words[o + 2] = offX;
            _words[o + 3] = offY;
            _words[o + 4] = b.X | b.Right << 16;
            _words[o + 5] = b.Y | b.Bottom << 16;
            _words[o + 6] = 0;
            _words[o + 7] = 0;

            // bin: every tile under a piece; whole when one piece holds the tile (∩ target)
            int stamp = ++_stamp;
            int firstEntry = _entries.Count;
            for (int p = p0; p < p1; p++)
            {
                var r = _pieces[p];
                for (int ty = r.Y / Tile; ty <= (r.Bottom - 1) / Tile; ty++)
                {
                    int y0 = ty * Tile, y1 = Math.Min(y0 + Tile, size.Height);
                    bool rows = r.Y <= y0 && r.Bottom >= y1;
                    for (int tx = r.X / Tile; tx <= (r.Right - 1) / Tile; tx++)
                    {
                        int x0 = tx * Tile, x1 = Math.Min(x0 + Tile, size.Width);
                        bool whole = rows && r.X <= x0 && r.Right >= x1;
                        int t = ty * tilesX + tx;
                        if (_tileStamp[t] != stamp)
                        {
                            _tileStamp[t] = stamp;
                            _tileFull[t] = whole;
                            _entries.Add(new Entry(t, k, false, opaque, pieceIndex, pieceIndex + (p1 - p0)));
                        }
                        else if (whole) _tileFull[t] = true;
                    }
                }
            }
            var span = CollectionsMarshal.AsSpan(_entries);
            for (int e = firstEntry; e < span.Length; e++) span[e].Full = _tileFull[span[e].Tile];
            k++;
        }

        // entries grouped by tile (stable: call order kept within a tile)
        int tiles = tilesX * tilesY;
        Array.Clear(_tileCounts, 0, tiles + 1);
        foreach (var e in _entries) _tileCounts[e.Tile + 1]++;
        for (int t = 0; t < tiles; t++) _tileCounts[t + 1] += _tileCounts[t];
        if (_sorted.Length < _entries.Count) _sorted = new Entry[Math.Max(_entries.Count, _sorted.Length * 2)];
        foreach (var e in _entries) _sorted[_tileCounts[e.Tile]++] = e;
        // _tileCounts[t] is now the end of tile t's entries (and the start of t + 1's)

        while (_wordCount % 4 != 0) Push(0);
        int tileRecords = 0, start = 0;
        if (_tileStarts.Length < tiles) _tileStarts = new int[tiles];
        var starts = _tileStarts;
        for (int t = 0; t < tiles; t++)
        {
            int stop = _tileCounts[t];
            starts[t] = -1;
            if (stop == start) continue;
            // occlusion: start at the topmost opaque call covering the whole tile
            int from = start;
            for (int e = stop - 1; e >= start; e--)
                if (_sorted[e].Full && _sorted[e].Opaque) { from = e; break; }
            starts[t] = (_wordCount / 4) << 1 | (_sorted[from].Full && _sorted[from].Opaque ? 0 : 1);
            for (int e = from; e < stop; e++)
            {
                ref var en = ref _sorted[e];
                Push(en.Call | (en.Full ? EntryFull : 0), en.PieceStart, en.PieceEnd, 0);
            }
            _tileCounts[t] = stop - from; // entry count from here on
            tileRecords++;
            start = stop;
        }
        if (tileRecords == 0) return;
        int tileOffset = _wordCount;
        for (int t = 0; t < tiles; t++)
        {
            if (starts[t] < 0) continue;
            Push(t % tilesX | (t / tilesX) << 16, starts[t] >> 1, _tileCounts[t], starts[t] & 1);
        }
        _chunks.Add(new Chunk(callWords, tileOffset, tileRecords, slots, _slotOf.Count));
    }

    private void Reserve(int more)
    {
        if (_wordCount + more > _words.Length) Array.Resize(ref _words, Math.Max(_words.Length * 2, _wordCount + more));
    }

    private void Push(int a)
    {
        Reserve(1);
        _words[_wordCount++] = a;
    }

    private void Push(int a, int b, int c, int d)
    {
        Reserve(4);
        _words[_wordCount++] = a;
        _words[_wordCount++] = b;
        _words[_wordCount++] = c;
        _words[_wordCount++] = d;
    }

    /// <summary>Uploads the parameter words (texel buffer + uniform block ranges), then per chunk its textures, block range and one dispatch.</summary>
    private void Dispatch(GlRenderer owner)
    {
        var gl = owner.Gl;
        // the buffer reaches a whole uniform block past every chunk's calls
        int words = Math.Max(_wordCount, _chunks[^1].CallWord + GlRenderer.UniformBlockBytes / 4);
        Reserve(words - _wordCount);
        GlUnsafe.BufferData<int>(gl, BufferTargetARB.UniformBuffer, owner.ParamBuffer, _words.AsSpan(0, words));
        gl.ActiveTexture(TextureUnit.Texture0 + GlRenderer.ParamUnit);
        gl.BindTexture(TextureTarget.TextureBuffer, owner.ParamTexture);
        gl.TexBuffer(TextureTarget.TextureBuffer, SizedInternalFormat.R32ui, owner.ParamBuffer);
        gl.UseProgram(owner.Program);
        gl.BindImageTexture(0, _target.Texture, 0, false, 0, BufferAccessARB.ReadWrite, InternalFormat.R32ui); // RGBA8 viewed as words (compatible by size)
        gl.Uniform1(3, _target.Size.Width);
        gl.Uniform1(4, _target.Size.Height);
        for (int n = 0; n < _chunks.Count; n++)
        {
            var chunk = _chunks[n];
            gl.BindBufferRange(BufferTargetARB.UniformBuffer, 0, owner.ParamBuffer, chunk.CallWord * 4, GlRenderer.UniformBlockBytes);
            for (int s = 0; s < chunk.SlotCount; s++)
            {
                gl.ActiveTexture(TextureUnit.Texture0 + s);
                gl.BindTexture(TextureTarget.Texture2D, chunk.Slots[s]!.Name);
            }
            gl.Uniform1(1, chunk.TileOffset);
            gl.Uniform1(2, chunk.TileCount);
            uint groupsX = (uint)Math.Min(chunk.TileCount, 65535), groupsY = (uint)((chunk.TileCount + 65534) / 65535);
            gl.DispatchCompute(groupsX, groupsY, 1);
            gl.MemoryBarrier(MemoryBarrierMask.ShaderImageAccessBarrierBit);
        }
        gl.ActiveTexture(TextureUnit.Texture0);
        gl.MemoryBarrier(MemoryBarrierMask.AllBarrierBits);
    }
}
