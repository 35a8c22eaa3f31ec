using VirtioGpuHost.Compositor.Core.Geometry;

namespace VirtioGpuHost.Compositor.Rendering.Labels;

/// <summary>
/// Label textures on one renderer, made once per (kind, text, colours, size) from a
/// <see cref="LabelRenderer"/>. <see cref="EndFrame"/> releases the ones the last frame did not
/// use, so a label that changes text does not leak textures. Not thread-safe (one per output loop).
/// </summary>
public sealed class LabelTextureCache : IDisposable
{
    private readonly record struct Key(bool Overlay, string Text, ColorBgra Background, ColorBgra Foreground, SizeI Size);

    private readonly IRenderer _renderer;
    private readonly LabelRenderer _labels;
    private sealed class Entry(ITexture texture)
    {
        public ITexture Texture { get; } = texture;
        public bool Used { get; set; } = true;
    }

    private readonly Dictionary<Key, Entry> _textures = new();
    private readonly List<Key> _unused = new();

    public LabelTextureCache(IRenderer renderer, LabelRenderer? labels = null)
    {
        _renderer = renderer;
        _labels = labels ?? new LabelRenderer();
    }

    public int Count => _textures.Count;

    public ITexture GetBar(string text, ColorBgra background, ColorBgra foreground, SizeI size) =>
        Get(new Key(false, text, background, foreground, size));

    public ITexture GetOverlay(string text, ColorBgra panel, ColorBgra foreground, SizeI size) =>
        Get(new Key(true, text, panel, foreground, size));

    private ITexture Get(Key key)
    {
        if (_textures.TryGetValue(key, out var entry))
        {
            entry.Used = true;
            return entry.Texture;
        }
        var image = key.Overlay
            ? _labels.RenderOverlay(key.Text, key.Background, key.Foreground, key.Size)
            : _labels.RenderBar(key.Text, key.Background, key.Foreground, key.Size);
        var texture = image.CreateTexture(_renderer);
        _textures[key] = new Entry(texture);
        return texture;
    }

    /// <summary>Disposes the textures not asked for since the previous call.</summary>
    public void EndFrame()
    {
        _unused.Clear();
        foreach (var (key, entry) in _textures)
        {
            if (!entry.Used) _unused.Add(key);
            entry.Used = false;
        }
        foreach (var key in _unused)
        {
            _textures[key].Texture.Dispose();
            _textures.Remove(key);
        }
    }

    public void Dispose()
    {
        foreach (var entry in _textures.Values) entry.Texture.Dispose();
        _textures.Clear();
    }
}
