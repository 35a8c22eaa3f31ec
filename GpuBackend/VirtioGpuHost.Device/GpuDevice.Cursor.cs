using VirtioGpuHost.Device.Blobs;
using VirtioGpuHost.Device.Wire;

namespace VirtioGpuHost.Device;

// The cursor queue: UPDATE_CURSOR and MOVE_CURSOR (no response body; used length 0).
public sealed partial class GpuDevice
{
    /// <summary>Executes one cursor-queue command; bad ones are logged and ignored.</summary>
    public void ExecuteCursor(GpuRequest r)
    {
        CommandsExecuted++;
        if (!r.TryRead<VirtioGpuUpdateCursor>(out var c))
        {
            Errors.Report("cursor", $"request is {r.Bytes.Length} bytes, shorter than a cursor command (56 bytes)");
            return;
        }
        string cmd = c.Header.Type == VirtioGpuCtrlType.UpdateCursor ? "UPDATE_CURSOR" : "MOVE_CURSOR";
        if (c.Header.Type is not (VirtioGpuCtrlType.UpdateCursor or VirtioGpuCtrlType.MoveCursor))
        {
            Errors.Report("cursor", $"command type 0x{(uint)c.Header.Type:x} is not a cursor command");
            return;
        }
        if (!IsValidScanout(c.Pos.ScanoutId))
        {
            Errors.Report(cmd, $"scanout_id {c.Pos.ScanoutId} does not exist");
            return;
        }
        if (c.Header.Type == VirtioGpuCtrlType.MoveCursor || c.ResourceId == 0)
        {
            bool visible = c.ResourceId != 0;
            if (_cursor is not null) _cursor = _cursor with { Scanout = c.Pos.ScanoutId, X = c.Pos.X, Y = c.Pos.Y, Visible = visible };
            _display.CursorMoved(c.Pos.ScanoutId, c.Pos.X, c.Pos.Y, visible);
            return;
        }
        if (!_resources.TryGetValue(c.ResourceId, out var any))
        {
            Errors.Report(cmd, $"resource_id {c.ResourceId} does not exist");
            return;
        }
        if (any is Resource2D res && (res.Width != VirtioGpuLimits.CursorSize || res.Height != VirtioGpuLimits.CursorSize))
        {
            Errors.Report(cmd, $"resource_id {c.ResourceId} is {res.Width}x{res.Height}; cursors are 64x64");
            return;
        }
        if (c.HotX >= VirtioGpuLimits.CursorSize || c.HotY >= VirtioGpuLimits.CursorSize)
        {
            Errors.Report(cmd, $"hotspot {c.HotX},{c.HotY} is outside the 64x64 cursor");
            return;
        }
        var bgra = new byte[VirtioGpuLimits.CursorSize * VirtioGpuLimits.CursorSize * 4];
        if (any is Resource2D r2)
        {
            PixelFormats.ConvertRowToBgra(r2.Format, r2.Memory.AsSpan(0, bgra.Length), bgra, opaque: false);
        }
        else
        {
            // A blob cursor (Linux makes dumb buffers GUEST blobs without VIRGL): 64x64 ARGB8888,
            // i.e. B8G8R8A8 bytes, from the start of the blob.
            var blob = (BlobResource)any;
            if (blob.Size < (ulong)bgra.Length || !TryReadBlob(blob, 0, bgra))
            {
                Errors.Report(cmd, $"blob {c.ResourceId} does not hold a 64x64 cursor ({blob.Size} bytes, or not in memory)");
                return;
            }
        }
        _cursor = new CursorState(c.Pos.ScanoutId, c.Pos.X, c.Pos.Y, c.HotX, c.HotY, bgra, Visible: true);
        _display.CursorChanged(c.Pos.ScanoutId, c.Pos.X, c.Pos.Y, c.HotX, c.HotY, bgra);
    }
}
