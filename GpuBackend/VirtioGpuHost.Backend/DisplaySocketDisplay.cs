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

    public DisplaySocketDisplay(DisplaySocketClient client)
    {
        _client = client;
        _client.Drained += WakeIdleWaiters;
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

    public bool IsBusy => !_client.IsClosed && (!_negotiated || _client.IsBackpressured);

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
        if (surface is null) _client.SendScanout(scanoutId, 0, 0);
        else _client.SendScanout(scanoutId, source.Width, source.Height);
    }

    public void ScanoutFlushed(uint scanoutId, GpuSurface surface, VirtioGpuRect source, VirtioGpuRect damage)
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
        var scratch = NativeBlock.Allocate((ulong)rowBytes * rect.Height);
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
        _client.Drained -= WakeIdleWaiters;
        _client.Dispose();
        var waiters = _idleWaiters.ToArray();
        _idleWaiters.Clear();
        foreach (var w in waiters) w();
    }
}
