using Microsoft.Extensions.Logging;
using VirtioGpuHost.Device;
using VirtioGpuHost.Device.Display;
using VirtioGpuHost.Device.Wire;
using VirtioGpuHost.GuestMemory;
using VirtioGpuHost.Interop;
using VirtioGpuHost.VhostUser.Display;

namespace VirtioGpuHost.Backend;

/// <summary>
/// Presents the device's scanouts on QEMU's display socket (the vhost-user-gpu protocol):
/// SCANOUT + UPDATE with x8r8g8b8 pixels, cursor messages, and display info / EDID queries.
/// Pixels of B8G8R8X8/B8G8R8A8 resources go to the socket straight from the resource's
/// memory; other formats are converted first (QEMU's C back-end sends them unconverted).
/// </summary>
public sealed class DisplaySocketDisplay : IGpuDisplay, IDisposable
{
    private readonly DisplaySocketClient _client;
    private readonly List<Action> _idleWaiters = new();
    private bool _negotiated;

    // UPDATEs waiting for the display to stop lagging, per scanout: the newest surface and the
    // bounding box of the damage. Nothing is allocated for them until they go out.
    private readonly PendingUpdate?[] _pendingUpdates = new PendingUpdate?[VirtioGpuLimits.MaxScanouts];

    public DisplaySocketDisplay(DisplaySocketClient client)
    {
        _client = client;
        _client.Drained += OnDrained;
    }

    private void OnDrained()
    {
        SendPendingUpdates();
        WakeIdleWaiters();
    }

    public DisplaySocketClient Client => _client;

    /// <summary>
    /// Runs the feature negotiation; the display is busy until it finishes. <paramref name="onNegotiated"/>
    /// runs before anyone waiting for the display is woken.
    /// </summary>
    public async Task NegotiateAsync(Action onNegotiated)
    {
        await _client.NegotiateAsync(GpuDisplayProtocolFeatures.Edid).ConfigureAwait(true);
        _negotiated = true;
        onNegotiated();
        WakeIdleWaiters();
    }

    public bool IsNegotiated => _negotiated;

    // QEMU writes its own max_outputs into the guest's config space.
    public bool OwnsOutputCount => true;

    public Task<byte[]?>? QueryDisplayInfo() => _client.IsClosed ? null : _client.GetDisplayInfoAsync();

    public Task<byte[]?>? QueryEdid(uint scanoutId) =>
        _client.IsClosed || (_client.Features & GpuDisplayProtocolFeatures.Edid) == 0 ? null : _client.GetEdidAsync(scanoutId);

    public bool IsBusy => !_client.IsClosed && (!_negotiated || _client.IsBackpressured || Array.Exists(_pendingUpdates, u => u is not null));

    public void WhenIdle(Action resume)
    {
        if (!IsBusy) resume();
        else _idleWaiters.Add(resume);
    }

    private void WakeIdleWaiters()
    {
        if (IsBusy || _idleWaiters.Count == 0) return;
        var waiters = _idleWaiters.ToArray();
        _idleWaiters.Clear();
        foreach (var w in waiters) w();
    }

    public void ScanoutChanged(uint scanoutId, GpuSurface? surface, VirtioGpuRect source)
    {
        // An UPDATE still waiting belongs to the old surface (or size): it goes.
        _pendingUpdates[scanoutId] = null;
        if (surface is null) _client.SendScanout(scanoutId, 0, 0);
        else _client.SendScanout(scanoutId, source.Width, source.Height);
    }

    /// <summary>
    /// Sends the UPDATE now, or, while the display lags, keeps it (merged with what is already
    /// waiting for that scanout) until the display catches up: one flush of a resource shown on
    /// 16 scanouts never puts 16 full frames in flight at once.
    /// </summary>
    public void ScanoutFlushed(uint scanoutId, GpuSurface surface, VirtioGpuRect source, VirtioGpuRect damage)
    {
        if (_pendingUpdates[scanoutId] is { } waiting && waiting.Source == source)
            damage = Union(waiting.Damage, damage);
        if (_client.IsBackpressured)
        {
            _pendingUpdates[scanoutId] = new PendingUpdate(surface, source, damage);
            return;
        }
        _pendingUpdates[scanoutId] = null;
        SendUpdate(scanoutId, surface, source, damage);
    }

    private void SendPendingUpdates()
    {
        for (uint i = 0; i < _pendingUpdates.Length; i++)
        {
            if (_pendingUpdates[i] is not { } u) continue;
            if (_client.IsClosed || _client.IsBackpressured) return;
            _pendingUpdates[i] = null;
            // The surface may have switched buffers since: send the resource's current pixels.
            var current = u.Surface.Source?.AcquireCurrent();
            if (current is null && u.Surface.Source is not null) continue; // the resource is gone
            try { SendUpdate(i, current ?? u.Surface, u.Source, u.Damage); }
            finally { current?.Memory.Release(); }
        }
    }

    private static VirtioGpuRect Union(VirtioGpuRect a, VirtioGpuRect b)
    {
        uint x0 = Math.Min(a.X, b.X), y0 = Math.Min(a.Y, b.Y);
        uint x1 = Math.Max(a.X + a.Width, b.X + b.Width), y1 = Math.Max(a.Y + a.Height, b.Y + b.Height);
        return new VirtioGpuRect(x0, y0, x1 - x0, y1 - y0);
    }

    private sealed record PendingUpdate(GpuSurface Surface, VirtioGpuRect Source, VirtioGpuRect Damage);

    private void SendUpdate(uint scanoutId, GpuSurface surface, VirtioGpuRect source, VirtioGpuRect damage)
    {
        var rect = new VirtioGpuRect(source.X + damage.X, source.Y + damage.Y, damage.Width, damage.Height);
        int rowBytes = checked((int)rect.Width * PixelFormats.BytesPerPixel);
        if (PixelFormats.IsBgrxLayout(surface.Format))
        {
            IoSegment[] rows;
            if (rect.X == 0 && rowBytes == surface.Stride)
            {
                rows = [new IoSegment(surface.Address(0, rect.Y), (nint)rowBytes * (nint)rect.Height)];
            }
            else
            {
                rows = new IoSegment[rect.Height];
                for (uint y = 0; y < rect.Height; y++) rows[y] = new IoSegment(surface.Address(rect.X, rect.Y + y), rowBytes);
            }
            _client.SendUpdate(scanoutId, damage.X, damage.Y, damage.Width, damage.Height, rows, surface.Memory);
            return;
        }
        var scratch = NativeBlock.Allocate((ulong)rowBytes * rect.Height, clear: false);
        try
        {
            for (uint y = 0; y < rect.Height; y++)
                PixelFormats.ConvertRowToBgra(surface.Format, surface.Row(rect, y), scratch.AsSpan((ulong)rowBytes * y, rowBytes), opaque: false);
            _client.SendUpdate(scanoutId, damage.X, damage.Y, damage.Width, damage.Height,
                [new IoSegment(scratch.Address, (nint)rowBytes * (nint)rect.Height)], scratch);
        }
        finally
        {
            scratch.Release(); // the client holds its own reference until the bytes are written
        }
    }

    public void CursorChanged(uint scanoutId, uint x, uint y, uint hotX, uint hotY, ReadOnlySpan<byte> bgra) =>
        _client.SendCursorUpdate(scanoutId, x, y, hotX, hotY, bgra);

    public void CursorMoved(uint scanoutId, uint x, uint y, bool visible) =>
        _client.SendCursorPos(scanoutId, x, y, hide: !visible);

    public void Dispose()
    {
        _client.Drained -= OnDrained;
        _client.Dispose();
        var waiters = _idleWaiters.ToArray();
        _idleWaiters.Clear();
        foreach (var w in waiters) w();
    }
}
