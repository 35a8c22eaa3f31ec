using VirtioGpuHost.Compositor.Core.Geometry;
using VirtioGpuHost.Compositor.Rendering.Vulkan.Native;

namespace VirtioGpuHost.Compositor.Rendering.Vulkan;

/// <summary>
/// One frame on a <see cref="VulkanRenderTarget"/>: calls are recorded (destination ∩ target,
/// clip rects ∩ that, copied); <see cref="Submit"/> turns them into the composite shader's
/// parameters (pass damage, the 16x16 tiles under it that some call touches, calls, clips, and
/// per-call source coordinate tables computed with <see cref="NearestMapping"/>) and runs one
/// dispatch over the tiles (more only when a pass reads more than
/// <see cref="VulkanDevice.MaxTextures"/> distinct textures). Each target has one pass object.
/// </summary>
public sealed class VulkanRenderPass : IRenderPass
{
    private const int CallWords = 12, Tile = 16;
    private const int FlagTexture = 1, FlagScaledX = 4, FlagScaledY = 8;

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
    private bool[] _damagedTiles = [], _drawnTiles = [];
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
        }
    }

    /// <summary>Writes the parameter words and the dispatch chunks; false when nothing can change.</summary>
    private bool Build(out PassLayout layout)
    {
        layout = default;
        _wordCount = 0;
        _chunks.Clear();
        if (_damage.Count == 0 || _opCount == 0) return false;
        var size = _target.Size;
        var damageBounds = _damage[0];
        foreach (var d in _damage) damageBounds = damageBounds.Union(d);

        int damageOffset = _wordCount;
        foreach (var d in _damage) Push(d.X, d.Y, d.Right, d.Bottom);

        // tiles: under the damage and under some call's bounds
        int tilesX = (size.Width + Tile - 1) / Tile, tilesY = (size.Height + Tile - 1) / Tile;
        if (_damagedTiles.Length < tilesX * tilesY)
        {
            _damagedTiles = new bool[tilesX * tilesY];
            _drawnTiles = new bool[tilesX * tilesY];
        }
        else
        {
            Array.Clear(_damagedTiles, 0, tilesX * tilesY);
            Array.Clear(_drawnTiles, 0, tilesX * tilesY);
        }
        foreach (var d in _damage) MarkTiles(_damagedTiles, d, tilesX);

        // calls (bounds = visible ∩ clips' bounds ∩ damage bounds); clips and tables come after
        int callOffset = _wordCount;
        int calls = 0;
        var bounds = new RectI[_opCount];
        for (int i = 0; i < _opCount; i++)
        {
            ref var op = ref _ops[i];
            var b = _clips[op.ClipStart];
            for (int c = 1; c < op.ClipCount; c++) b = b.Union(_clips[op.ClipStart + c]);
            bounds[i] = b.Intersect(damageBounds);
            if (bounds[i].IsEmpty) continue;
            MarkTiles(_drawnTiles, bounds[i], tilesX);
            calls++;
        }
        if (calls == 0) return false;
        Reserve(calls * CallWords);
        int callWordsStart = _wordCount;
        _wordCount += calls * CallWords;
        while (_wordCount % 4 != 0) Push(0);

        int tileOffset = _wordCount;
        int tileCount = 0;
        for (int ty = 0; ty < tilesY; ty++)
            for (int tx = 0; tx < tilesX; tx++)
                if (_damagedTiles[ty * tilesX + tx] && _drawnTiles[ty * tilesX + tx])
                {
                    Push(tx | ty << 16);
                    tileCount++;
                }
        if (tileCount == 0) return false;
        while (_wordCount % 4 != 0) Push(0);

        int k = 0;
        GpuBuffer[]? slots = null;
        int chunkStart = 0;
        _slots.Clear();
        for (int i = 0; i < _opCount; i++)
        {
            if (bounds[i].IsEmpty) continue;
            ref var op = ref _ops[i];
            var b = bounds[i];
            int clipStart = _wordCount / 4;
            for (int c = 0; c < op.ClipCount; c++)
            {
                var r = _clips[op.ClipStart + c];
                Push(r.X, r.Y, r.Right, r.Bottom);
            }
            int flags, colour, offX = 0, offY = 0, baseWord = 0, strideWords = 0;
            if (op.Texture is { } tex)
            {
                var buffer = tex.Buffer!;
                if (!_slots.TryGetValue(buffer, out int slot))
                {
                    if (_slots.Count == VulkanDevice.MaxTextures)
                    {
                        _chunks.Add(new DispatchChunk(chunkStart, k, slots!, _slots.Count));
                        chunkStart = k;
                        _slots.Clear();
                        slots = null;
                    }
                    slots ??= new GpuBuffer[VulkanDevice.MaxTextures];
                    slot = _slots.Count;
                    _slots.Add(buffer, slot);
                    slots[slot] = buffer;
                }
                flags = FlagTexture | (int)tex.Layout << 8 | slot << 16;
                colour = op.Dim;
                var s = op.Source;
                var dst = op.Destination;
                if (s.Width != dst.Width)
                {
                    flags |= FlagScaledX;
                    offX = _wordCount;
                    for (int x = b.X; x < b.Right; x++) Push(NearestMapping.Sample(x, dst.X, dst.Width, s.X, s.Width));
                }
                else
                {
                    offX = unchecked((int)((long)s.X - dst.X));
                }
                if (s.Height != dst.Height)
                {
                    flags |= FlagScaledY;
                    offY = _wordCount;
                    for (int y = b.Y; y < b.Bottom; y++) Push(NearestMapping.Sample(y, dst.Y, dst.Height, s.Y, s.Height));
                }
                else
                {
                    offY = unchecked((int)((long)s.Y - dst.Y));
                }
                while (_wordCount % 4 != 0) Push(0);
                baseWord = tex.BaseWord;
                strideWords = tex.StrideWords;
            }
            else
            {
                flags = 0;
                colour = unchecked((int)op.Color);
            }
            int o = callWordsStart + k * CallWords;
            _words[o] = flags;
            _words[o + 1] = colour;
            _words[o + 2] = b.X;
            _words[o + 3] = b.Y;
            _words[o + 4] = b.Right;
            _words[o + 5] = b.Bottom;
            _words[o + 6] = clipStart;
            _words[o + 7] = op.ClipCount;
            _words[o + 8] = offX;
            _words[o + 9] = offY;
            _words[o + 10] = baseWord;
            _words[o + 11] = strideWords;
            k++;
        }
        _chunks.Add(new DispatchChunk(chunkStart, k, slots ?? [], _slots.Count));
        layout = new PassLayout(size.Width, size.Height, damageOffset, _damage.Count, tileOffset, tileCount, callWordsStart);
        return true;
    }

    private static void MarkTiles(bool[] tiles, RectI r, int tilesX)
    {
        for (int ty = r.Y / Tile; ty <= (r.Bottom - 1) / Tile; ty++)
            for (int tx = r.X / Tile; tx <= (r.Right - 1) / Tile; tx++)
                tiles[ty * tilesX + tx] = true;
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
