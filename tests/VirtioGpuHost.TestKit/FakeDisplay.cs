using VirtioGpuHost.Device;
using VirtioGpuHost.Device.Display;
using VirtioGpuHost.Device.Wire;

namespace VirtioGpuHost.TestKit;

/// <summary>
/// A display that records what the device presents: per scanout the source rect and a
/// console of XRGB pixels painted by every flush (like QEMU's console), plus the cursor.
/// Queries can be answered at once, later (the test completes the task), or never.
/// </summary>
public sealed class FakeDisplay : IGpuDisplay
{
    private readonly List<Action> _idle = new();
    private bool _busy;

    private readonly List<GuestMemory.MemoryBlock> _held = new();

    public bool OwnsOutputCount { get; set; }

    /// <summary>Keep a reference on the pixels of every flush (as a display that reads them later does).</summary>
    public bool HoldSurfaceMemory { get; set; }

    /// <summary>Drops the references kept by <see cref="HoldSurfaceMemory"/> (the display has read everything).</summary>
    public void ReleaseHeld()
    {
        foreach (var b in _held) b.Release();
        _held.Clear();
    }

    /// <summary>When set, GET_DISPLAY_INFO / GET_EDID are forwarded here instead of answered by the device.</summary>
    public Func<Task<byte[]?>>? DisplayInfoQuery { get; set; }
    public Func<uint, Task<byte[]?>>? EdidQuery { get; set; }

    public Dictionary<uint, (uint Width, uint Height, uint[] Pixels)> Consoles { get; } = new();
    public List<(uint Scanout, VirtioGpuRect Damage)> Flushes { get; } = new();
    public List<(uint Scanout, bool Enabled, VirtioGpuRect Source)> ScanoutEvents { get; } = new();

    /// <summary>The surface each scanout was last given (ScanoutChanged or ScanoutFlushed); removed when disabled.</summary>
    public Dictionary<uint, GpuSurface> Surfaces { get; } = new();
    public (uint Scanout, uint X, uint Y, uint HotX, uint HotY, byte[] Bgra)? Cursor { get; private set; }
    public (uint Scanout, uint X, uint Y, bool Visible)? CursorPosition { get; private set; }

    public bool IsBusy
    {
        get => _busy;
        set
        {
            _busy = value;
            if (!value)
            {
                var w = _idle.ToArray();
                _idle.Clear();
                foreach (var a in w) a();
            }
        }
    }

    public Task<byte[]?>? QueryDisplayInfo() => DisplayInfoQuery?.Invoke();
    public Task<byte[]?>? QueryEdid(uint scanoutId) => EdidQuery?.Invoke(scanoutId);

    public void WhenIdle(Action resume)
    {
        if (!_busy) resume();
        else _idle.Add(resume);
    }

    public void ScanoutChanged(uint scanoutId, GpuSurface? surface, VirtioGpuRect source)
    {
        ScanoutEvents.Add((scanoutId, surface is not null, source));
        if (surface is null) Surfaces.Remove(scanoutId);
        else Surfaces[scanoutId] = surface;
        if (surface is null) Consoles.Remove(scanoutId);
        else Consoles[scanoutId] = (source.Width, source.Height, new uint[source.Width * source.Height]);
    }

    public void ScanoutFlushed(uint scanoutId, GpuSurface surface, VirtioGpuRect source, VirtioGpuRect damage)
    {
        Flushes.Add((scanoutId, damage));
        Surfaces[scanoutId] = surface;
        if (HoldSurfaceMemory) _held.Add(surface.Memory.AddRef());
        if (!Consoles.TryGetValue(scanoutId, out var c)) throw new InvalidOperationException($"flush on scanout {scanoutId} that was never set");
        if (damage.X + damage.Width > c.Width || damage.Y + damage.Height > c.Height) throw new InvalidOperationException($"damage {damage} outside scanout {c.Width}x{c.Height}");
        var row = new byte[damage.Width * 4];
        for (uint y = 0; y < damage.Height; y++)
        {
            var src = surface.Row(new VirtioGpuRect(source.X + damage.X, source.Y + damage.Y, damage.Width, damage.Height), y);
            PixelFormats.ConvertRowToBgra(surface.Format, src, row, opaque: true);
            for (uint x = 0; x < damage.Width; x++)
                c.Pixels[(damage.Y + y) * c.Width + damage.X + x] = BitConverter.ToUInt32(row, (int)x * 4);
        }
    }

    public void CursorChanged(uint scanoutId, uint x, uint y, uint hotX, uint hotY, ReadOnlySpan<byte> bgra) =>
        Cursor = (scanoutId, x, y, hotX, hotY, bgra.ToArray());

    public void CursorMoved(uint scanoutId, uint x, uint y, bool visible) => CursorPosition = (scanoutId, x, y, visible);

    /// <summary>The console pixel (0xAARRGGBB with alpha forced to 0xFF).</summary>
    public uint Pixel(uint scanout, uint x, uint y)
    {
        var c = Consoles[scanout];
        return c.Pixels[y * c.Width + x];
    }
}
