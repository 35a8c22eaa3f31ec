using System.Runtime.InteropServices;
using VirtioGpuHost.Device.Wire;

namespace VirtioGpuHost.Device;

// GET_CAPSET_INFO and GET_CAPSET (answered from the capset registry; none without blob support).
public sealed partial class GpuDevice
{
    private GpuResponse GetCapsetInfo(GpuRequest r)
    {
        const string cmd = "GET_CAPSET_INFO";
        if (!r.TryRead<VirtioGpuGetCapsetInfo>(out var c)) return Short(r, cmd, 32);
        // QEMU's C back-end answers an unknown index with capset_id 0; an error is what the spec means.
        if (Capsets.ByIndex(c.CapsetIndex) is not { } capset)
            return Fail(VirtioGpuCtrlType.ErrInvalidParameter, cmd, Capsets.Count == 0
                ? "capset_index out of range: this device has no capsets"
                : $"capset_index {c.CapsetIndex} out of range: this device has {Capsets.Count} capsets");
        var info = new VirtioGpuCapsetInfo { CapsetId = capset.Id, CapsetMaxVersion = capset.MaxVersion, CapsetMaxSize = capset.MaxSize };
        var body = new byte[Marshal.SizeOf<VirtioGpuCapsetInfo>()];
        MemoryMarshal.Write(body, in info);
        return GpuResponse.WithBody(VirtioGpuCtrlType.OkCapsetInfo, body);
    }

    private GpuResponse GetCapset(GpuRequest r)
    {
        const string cmd = "GET_CAPSET";
        if (!r.TryRead<VirtioGpuGetCapset>(out var c)) return Short(r, cmd, 32);
        if (Capsets.Count == 0) return Fail(VirtioGpuCtrlType.ErrInvalidParameter, cmd, "this device has no capsets");
        if (Capsets.ById(c.CapsetId) is not { } capset)
            return Fail(VirtioGpuCtrlType.ErrInvalidParameter, cmd, $"capset_id {c.CapsetId} is not reported by this device");
        if (c.CapsetVersion > capset.MaxVersion)
            return Fail(VirtioGpuCtrlType.ErrInvalidParameter, cmd, $"capset_id {c.CapsetId}: capset_version {c.CapsetVersion} is above its max_version {capset.MaxVersion}");
        return GpuResponse.WithBody(VirtioGpuCtrlType.OkCapset, capset.Data(c.CapsetVersion));
    }
}
