using VirtioGpuHost.Device.Blobs;
using VirtioGpuHost.Device.Wire;

namespace VirtioGpuHost.Device;

// SET_SCANOUT and RESOURCE_FLUSH.
public sealed partial class GpuDevice
{
    private GpuResponse SetScanout(GpuRequest r)
    {
        const string cmd = "SET_SCANOUT";
        if (!r.TryRead<VirtioGpuSetScanout>(out var c)) return Short(r, cmd, 48);
        if (!IsValidScanout(c.ScanoutId)) return Fail(VirtioGpuCtrlType.ErrInvalidScanoutId, cmd, $"scanout_id {c.ScanoutId} does not exist");
        if (c.ResourceId == 0)
        {
            DisableScanout(c.ScanoutId);
            return GpuResponse.Ok;
        }
        if (!_resources.TryGetValue(c.ResourceId, out var any)) return Fail(VirtioGpuCtrlType.ErrInvalidResourceId, cmd, $"scanout {c.ScanoutId}: resource_id {c.ResourceId} does not exist");
        if (any is not Resource2D res)
            return Fail(VirtioGpuCtrlType.ErrInvalidParameter, cmd, $"scanout {c.ScanoutId}: resource_id {c.ResourceId} is a blob (it has no size or format: use SET_SCANOUT_BLOB)");
        if (c.Rect.IsEmpty || !c.Rect.FitsIn(res.Width, res.Height))
            return Fail(VirtioGpuCtrlType.ErrInvalidParameter, cmd, $"scanout {c.ScanoutId}: rect {c.Rect} is empty or outside the {res.Width}x{res.Height} resource {c.ResourceId}");
        ReleaseBlobView(_scanouts[c.ScanoutId]);
        _scanouts[c.ScanoutId] = new Scanout(res, c.Rect);
        _display.ScanoutChanged(c.ScanoutId, res.Surface, c.Rect);
        // QEMU starts a blank surface on every SCANOUT: send the current pixels at once, so
        // the display never shows black where the resource already has content.
        _display.ScanoutFlushed(c.ScanoutId, res.Surface, c.Rect, new VirtioGpuRect(0, 0, c.Rect.Width, c.Rect.Height));
        return GpuResponse.Ok;
    }

    private void DisableScanout(uint id)
    {
        if (_scanouts[id].Resource is null) return;
        var old = _scanouts[id];
        _scanouts[id] = default;
        _display.ScanoutChanged(id, null, default);
        ReleaseBlobView(old);
    }

    /// <summary>A scanout stops showing a blob: its view's reference (and gather copy) go.</summary>
    private void ReleaseBlobView(Scanout s)
    {
        if (s.Blob is not { } view) return;
        _hostMemoryInUse -= view.GatherCharge;
        view.Dispose();
    }

    private GpuResponse ResourceFlush(GpuRequest r)
    {
        const string cmd = "RESOURCE_FLUSH";
        if (!r.TryRead<VirtioGpuResourceFlush>(out var c)) return Short(r, cmd, 48);
        if (!_resources.TryGetValue(c.ResourceId, out var any)) return Fail(VirtioGpuCtrlType.ErrInvalidResourceId, cmd, $"resource_id {c.ResourceId} does not exist");
        if (any is BlobResource blob) return FlushBlob(blob, c.Rect);
        var res = (Resource2D)any;
        if (!c.Rect.FitsIn(res.Width, res.Height))
            return Fail(VirtioGpuCtrlType.ErrInvalidParameter, cmd, $"resource_id {c.ResourceId}: rect {c.Rect} is outside the {res.Width}x{res.Height} resource");
        for (uint i = 0; i < _scanouts.Length; i++)
        {
            var s = _scanouts[i];
            if (s.Resource != res) continue;
            var damage = c.Rect.Intersect(s.Source);
            if (damage.IsEmpty) continue;
            // Updates are in scanout coordinates (the C back-end sends resource coordinates).
            var local = new VirtioGpuRect(damage.X - s.Source.X, damage.Y - s.Source.Y, damage.Width, damage.Height);
            _display.ScanoutFlushed(i, res.Surface, s.Source, local);
            Flushes++;
        }
        return GpuResponse.Ok;
    }

    /// <summary>Scanout updates sent to the display so far.</summary>
    public long Flushes { get; private set; }
}
