using VirtioGpuHost.Compositor.Core.Geometry;
using VirtioGpuHost.Compositor.Rendering.Vulkan.Native;

namespace VirtioGpuHost.Compositor.Rendering.Vulkan;

/// <summary>
/// One frame on a <see cref="VulkanRenderTarget"/>: calls are recorded (destination ∩ target,
/// clip rects ∩ that, copied); <see cref="Submit"/> turns them into the composite shader's
/// parameters (calls, their pieces = clip ∩ damage, per-call source coordinate tables computed
/// with <see cref="NearestMapping"/>, and the calls binned per 16x16 tile with occlusion culling)
/// and runs one dispatch over the tiles that some call touches (more only when a pass reads more
/// than <see cref="VulkanDevice.MaxTextures"/> distinct textures or has over 2048 calls). Each
/// target has one pass object.
/// </summary>
public sealed class VulkanRenderPass : IRenderPass
{
    private const int CallWords = 8, Tile = 16, EntryFull = unchecked((int)0x80000000);
    private const int FlagTexture = 1, FlagScaledX = 4, FlagScaledY = 8;
    /// <summary>Calls per dispatch: the shader's uniform block holds 4096 uvec4 (64 KiB), two per call.</summary>
    private const int MaxChunkCalls = 2048;
    /// <summary>Each chunk's calls start 256 bytes aligned (the largest minUniformBufferOffsetAlignment allowed).</summary>
    private const int UniformAlignWords = 64;

    private record struct Entry(int Tile, int Call, bool Full, bool Opaque, int PieceStart, int PieceEnd);

    private struct Op
    {
        public RectI Destination, Visible, Source;
        public int ClipStart, ClipCount;
        public uint Color;
        public byte Dim;
        public VulkanTexture? Texture;
    }

    private readonly VulkanRenderTarget _target;
    private Op[] _ops = new Op[16];
    private int _opCount;
    private readonly List<RectI> _damage = new();
    private readonly List<RectI> _clips = new();
    private int[] _words = new int[4096];
    private int _wordCount;
    private readonly List<RectI> _pieces = new();
    private int[] _pieceStart = [];
    private readonly List<Entry> _entries = new();
    private Entry[] _sorted = [];
    private int[] _tileStamp = [], _tileCounts = [], _tileStarts = [];
    private bool[] _tileFull = [], _tileSimple = [], _callSimple = new bool[64];
    private int _stamp;
    private readonly List<DispatchChunk> _chunks = new();
    private readonly Dictionary<GpuBuffer, int> _slots = new();
    private bool _open;

    internal VulkanRenderPass(VulkanRenderTarget target) => _target = target;

    internal void Begin(Region damage)
    {
        ArgumentNullException.ThrowIfNull(damage);
        if (_open) throw new InvalidOperationException("this target already has a pass that was not submitted");
        _open = true;
        _opCount = 0;
        _damage.Clear();
        _clips.Clear();
        foreach (var r in damage.Rects)
        {
            var c = ClipTo(r, _target.Size);
            if (!c.IsEmpty) _damage.Add(c);
        }
    }

    public void FillRect(RectI destination, ColorBgra color, Region clip)
    {
        ArgumentNullException.ThrowIfNull(clip);
        EnsureOpen();
        if (color.Value == 0) return; // transparent black over anything changes nothing
        ref var op = ref NewOp(destination, clip, out bool visible);
        if (!visible) return;
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

    private ref Op NewOp(RectI destination, Region clip, out bool visible)
    {
        if (_opCount == _ops.Length) Array.Resize(ref _ops, _ops.Length * 2);
        ref var op = ref _ops[_opCount];
        op = default;
        op.Destination = destination;
        op.Visible = ClipTo(destination, _target.Size);
        visible = false;
        if (op.Visible.IsEmpty || _damage.Count == 0) return ref op;
        op.ClipStart = _clips.Count;
        foreach (var r in clip.Rects)
        {
            var c = ClipTo(r, _target.Size).Intersect(op.Visible);
            if (!c.IsEmpty) _clips.Add(c);
        }
        op.ClipCount = _clips.Count - op.ClipStart;
        visible = op.ClipCount > 0;
        return ref op;
    }

    public void Submit()
    {
        EnsureOpen();
        try
        {
            _target.Owner.ThrowIfLost();
            ObjectDisposedException.ThrowIf(_target.IsDisposed, _target);
            BindTextures();
            if (Build(out var layout)) _target.Owner.Device.Execute(_target.Buffer, _words.AsSpan(0, _wordCount), layout, System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_chunks));
        }
        finally
        {
            for (int i = 0; i < _opCount; i++) _ops[i].Texture = null;
            for (int i = 0; i < _chunks.Count; i++) Array.Clear(_chunks[i].Slots);
            _opCount = 0;
            _open = false;
        }
    }

    /// <summary>Each texture's current binding is used (it may have been rebound since the call); disposed ones throw.</summary>
    private void BindTextures()
    {
        for (int i = 0; i < _opCount; i++)
        {
            if (_ops[i].Texture is not { } tex) continue;
            ObjectDisposedException.ThrowIf(tex.IsDisposed, tex);
            CheckSource(tex, _ops[i].Source);
            tex.PrepareTiles();
        }
    }

    /// <summary>
    /// Writes the parameter words and the dispatch chunks; false when nothing can change. Per
    /// chunk (at most <see cref="VulkanDevice.MaxTextures"/> textures and <see cref="MaxChunkCalls"/>
    /// calls): the calls (aligned for the uniform block), their pieces (clip ∩ damage, so damage
    /// needs no test of its own) and source tables, then the calls binned per 16x16 tile (entries:
    /// the calls touching the tile, flagged when one covers it whole), culled under the topmost
    /// opaque whole-tile call, then one record per tile that has entries.
    /// </summary>
    private bool Build(out PassLayout layout)
    {
        layout = default;
        _wordCount = 0;
        _chunks.Clear();
        if (_damage.Count == 0 || _opCount == 0) return false;
        var size = _target.Size;
        int tilesX = (size.Width + Tile - 1) / Tile, tilesY = (size.Height + Tile - 1) / Tile;
        if (_tileStamp.Length < tilesX * tilesY)
        {
            _tileStamp = new int[tilesX * tilesY];
            _tileFull = new bool[tilesX * tilesY];
            _tileCounts = new int[tilesX * tilesY + 1];
        }

        // pieces of every call: clip ∩ damage (clips are already ∩ visible ∩ target)
        _pieces.Clear();
        if (_pieceStart.Length < _opCount + 1) _pieceStart = new int[_ops.Length + 1];
        for (int i = 0; i < _opCount; i++)
        {
            ref var op = ref _ops[i];
            _pieceStart[i] = _pieces.Count;
            for (int c = 0; c < op.ClipCount; c++)
                foreach (var d in _damage)
                {
                    var r = _clips[op.ClipStart + c].Intersect(d);
                    if (!r.IsEmpty) _pieces.Add(r);
                }
        }
        _pieceStart[_opCount] = _pieces.Count;
        if (_pieces.Count == 0) return false;

        int first = 0;
        while (first < _opCount)
        {
            // the chunk: calls [first, end) with at most MaxTextures distinct textures
            _slots.Clear();
            var slots = new GpuBuffer[VulkanDevice.MaxTextures];
            int end = first, calls = 0;
            for (; end < _opCount && calls < MaxChunkCalls; end++)
            {
                if (_pieceStart[end] == _pieceStart[end + 1]) continue;
                if (_ops[end].Texture is { } t && !_slots.ContainsKey(t.Buffer!))
                {
                    if (_slots.Count == VulkanDevice.MaxTextures) break;
                    slots[_slots.Count] = t.Buffer!;
                    _slots.Add(t.Buffer!, _slots.Count);
                }
                calls++;
            }
            if (calls > 0 && BuildChunk(first, end, calls, tilesX, tilesY, size, slots)) { }
            first = end;
        }
        if (_chunks.Count == 0) return false;
        layout = new PassLayout(size.Width, size.Height);
        return true;
    }

    private bool BuildChunk(int first, int end, int calls, int tilesX, int tilesY, SizeI size, GpuBuffer[] slots)
    {
        while (_wordCount % UniformAlignWords != 0) Push(0);
        int callWords = _wordCount;
        Reserve(calls * CallWords);
        _wordCount += calls * CallWords;
        _entries.Clear();
        if (_callSimple.Length < calls) _callSimple = new bool[Math.Max(calls, _callSimple.Length * 2)];
        int k = 0;
        for (int i = first; i < end; i++)
        {
            int p0 = _pieceStart[i], p1 = _pieceStart[i + 1];
            if (p0 == p1) continue;
            ref var op = ref _ops[i];
            var b = _pieces[p0];
            for (int p = p0 + 1; p < p1; p++) b = b.Union(_pieces[p]);
            while (_wordCount % 4 != 0) Push(0);
            int pieceIndex = _wordCount / 4;
            for (int p = p0; p < p1; p++)
            {
                var r = _pieces[p];
                Push(r.X, r.Y, r.Right, r.Bottom);
            }
            int flags, colour, offX = 0, offY = 0, baseWord = 0, strideWords = 0;
            bool opaque;
            if (op.Texture is { } tex)
            {
                flags = FlagTexture | (int)tex.Layout << 8 | _slots[tex.Buffer!] << 16;
                colour = op.Dim;
                opaque = tex.Layout != SourceLayout.BgraPremultiplied;
                var s = op.Source;
                var dst = op.Destination;
                if (s.Width != dst.Width)
                {
                    flags |= FlagScaledX;
                    offX = _wordCount - b.X;
                    for (int x = b.X; x < b.Right; x++) Push(NearestMapping.Sample(x, dst.X, dst.Width, s.X, s.Width));
                }
                else
                {
                    offX = unchecked((int)((long)s.X - dst.X));
                }
                if (s.Height != dst.Height)
                {
                    flags |= FlagScaledY;
                    offY = _wordCount - b.Y;
                    for (int y = b.Y; y < b.Bottom; y++) Push(NearestMapping.Sample(y, dst.Y, dst.Height, s.Y, s.Height));
                }
                else
                {
                    offY = unchecked((int)((long)s.Y - dst.Y));
                }
                baseWord = tex.BaseWord;
                strideWords = tex.StrideWords;
            }
            else
            {
                flags = 0;
                colour = unchecked((int)op.Color);
                opaque = op.Color >> 24 == 0xFF;
            }
            // the SIMPLE pipeline's calls: fills, 1:1 undimmed Bgrx or BgraPremultiplied textures
            // whose quads of 4 words start at a multiple of 4 (word index of (x, y) ≡ x mod 4: the
            // shader reads them as one 16-byte access), on a target whose width is a multiple of 4
            _callSimple[k] = size.Width % 4 == 0 && (flags & (FlagScaledX | FlagScaledY)) == 0
                && (op.Texture is null || (op.Dim == 255 && op.Texture.Layout is SourceLayout.Bgrx or SourceLayout.BgraPremultiplied
                    && op.Texture.StrideWords % 4 == 0 && ((op.Texture.BaseWord + (long)offY * op.Texture.StrideWords + offX) & 3) == 0));
            int o = callWords + k * CallWords;
            _words[o] = flags;
            _words[o + 1] = colour;
            _words[o + 2] = offX;
            _words[o + 3] = offY;
            _words[o + 4] = baseWord;
            _words[o + 5] = strideWords;
            _words[o + 6] = b.X | b.Right << 16;
            _words[o + 7] = b.Y | b.Bottom << 16;

            // block classes of a 1:1 premultiplied texture: tiles where it reads only transparent
            // words get no entry, tiles where it reads only opaque ones cull what lies under it
            var classes = (flags & (FlagScaledX | FlagScaledY)) == 0 ? op.Texture?.Tiles : null;
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
                            bool entryOpaque = opaque;
                            if (classes is not null)
                            {
                                // the texture words the call can read in this tile (tile ∩ the call's bounds, moved by the source offset)
                                int cx0 = Math.Max(x0, b.X), cy0 = Math.Max(y0, b.Y);
                                byte cls = classes.ClassOf(new RectI(cx0 + offX, cy0 + offY, Math.Min(x1, b.Right) - cx0, Math.Min(y1, b.Bottom) - cy0));
                                if (cls == TileClasses.Transparent) continue;
                                entryOpaque |= cls == TileClasses.Opaque;
                            }
                            _entries.Add(new Entry(t, k, false, entryOpaque, pieceIndex, pieceIndex + (p1 - p0)));
                        }
                        else if (whole) _tileFull[t] = true;
                    }
                }
            }
            var span = System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_entries);
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
        var starts = _tileStarts;
        if (starts.Length < tiles) starts = _tileStarts = new int[tiles];
        if (_tileSimple.Length < tiles) _tileSimple = new bool[tiles];
        int simpleTiles = 0;
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
            bool simple = true;
            for (int e = from; e < stop; e++) simple &= _sorted[e].Full && _callSimple[_sorted[e].Call];
            for (int e = from; e < stop; e++)
            {
                ref var en = ref _sorted[e];
                if (simple)
                {
                    // SIMPLE entry: the call itself (flags, colour, word of target pixel (0, 0), stride)
                    int o = callWords + en.Call * CallWords;
                    Push(_words[o], _words[o + 1], unchecked(_words[o + 4] + _words[o + 3] * _words[o + 5] + _words[o + 2]), _words[o + 5]);
                }
                else Push(en.Call | (en.Full ? EntryFull : 0), en.PieceStart, en.PieceEnd, 0);
            }
            _tileSimple[t] = simple;
            if (simple) simpleTiles++;
            _tileCounts[t] = stop - from; // entry count from here on
            tileRecords++;
            start = stop;
        }
        if (tileRecords == 0) return false;
        // records: the SIMPLE pipeline's tiles first, then the general ones
        int tileOffset = _wordCount;
        for (int pass = 1; pass >= 0; pass--)
            for (int t = 0; t < tiles; t++)
            {
                if (starts[t] < 0 || _tileSimple[t] != (pass == 1)) continue;
                Push(t % tilesX | (t / tilesX) << 16, starts[t] >> 1, _tileCounts[t], starts[t] & 1);
            }
        _chunks.Add(new DispatchChunk(tileOffset, tileRecords, simpleTiles, callWords, slots, _slots.Count));
        return true;
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

    private static void CheckSource(VulkanTexture texture, RectI source)
    {
        if (source.IsEmpty || !texture.Size.ToRect().Contains(source))
            throw new ArgumentOutOfRangeException(nameof(source), source, $"the source must be a non-empty rectangle inside the {texture.Size} texture");
    }

    private void EnsureOpen()
    {
        if (!_open) throw new InvalidOperationException("the pass was submitted (begin a new one)");
    }

    /// <summary><paramref name="r"/> ∩ (0, 0, size), computed in 64 bits.</summary>
    internal static RectI ClipTo(RectI r, SizeI size)
    {
        if (r.IsEmpty) return default;
        long l = Math.Max(r.X, 0L), t = Math.Max(r.Y, 0L);
        long right = Math.Min((long)r.X + r.Width, size.Width), bottom = Math.Min((long)r.Y + r.Height, size.Height);
        return right <= l || bottom <= t ? default : RectI.FromEdges((int)l, (int)t, (int)right, (int)bottom);
    }
}
