using Microsoft.Extensions.Logging;
using VirtioGpuHost.Device.Blobs;
using VirtioGpuHost.Device.HostVisible;
using VirtioGpuHost.Device.Wire;
using VirtioGpuHost.GuestMemory;

namespace VirtioGpuHost.Device;

// RESOURCE_MAP_BLOB and RESOURCE_UNMAP_BLOB: blob memory in the VMM's host-visible region.
public sealed partial class GpuDevice
{
    private readonly List<BlobMapping> _mappings = new();

    /// <summary>Blobs mapped into the host-visible region now (confirmed by the VMM).</summary>
    public int MappedBlobs => _mappings.Count(m => m.Mapped);

    /// <summary>
    /// MAP_BLOB (arrives with ctx_id 0: the resource is looked up globally). The range is checked
    /// (page-aligned offset, whole pages inside the region, no overlap with this device's other
    /// mappings) and reserved before the VMM is asked; the answer (OK_MAP_INFO, CACHED: memfd and
    /// guest RAM are ordinary write-back memory) waits for the VMM, the ring with it.
    /// </summary>
    private GpuResponse MapBlob(GpuRequest r)
    {
        const string cmd = "RESOURCE_MAP_BLOB";
        if (!r.TryRead<VirtioGpuResourceMapBlob>(out var c)) return Short(r, cmd, 40);
        if (HostVisible is not { } region) return Fail(VirtioGpuCtrlType.ErrUnspec, cmd, $"resource_id {c.ResourceId}: no host-visible region");
        if (!_resources.TryGetValue(c.ResourceId, out var any)) return Fail(VirtioGpuCtrlType.ErrInvalidResourceId, cmd, $"resource_id {c.ResourceId} does not exist");
        if (any is not BlobResource blob) return Fail(VirtioGpuCtrlType.ErrInvalidParameter, cmd, $"resource_id {c.ResourceId} is not a blob");
        if (!blob.Mappable) return Fail(VirtioGpuCtrlType.ErrInvalidParameter, cmd, $"blob {blob.Id} was not created with USE_MAPPABLE");
        if (blob.Mapping is { } existing) return Fail(VirtioGpuCtrlType.ErrInvalidParameter, cmd, $"blob {blob.Id} is already mapped at {existing}");
        if (c.Offset % PageSize != 0) return Fail(VirtioGpuCtrlType.ErrInvalidParameter, cmd, $"blob {blob.Id}: offset 0x{c.Offset:x} is not page-aligned");
        if (blob.Size > ulong.MaxValue - (PageSize - 1)) return Fail(VirtioGpuCtrlType.ErrInvalidParameter, cmd, $"blob {blob.Id}: size overflows");
        ulong length = (blob.Size + PageSize - 1) & ~(PageSize - 1);
        if (c.Offset > region.Size || length > region.Size - c.Offset)
            return Fail(VirtioGpuCtrlType.ErrInvalidParameter, cmd, $"blob {blob.Id}: [0x{c.Offset:x}, +0x{length:x}) is outside the 0x{region.Size:x}-byte host-visible region");
        // Reservations still waiting for the VMM count too.
        if (_mappings.Count >= _options.MaxBlobMappings)
            return Fail(VirtioGpuCtrlType.ErrOutOfMemory, cmd, $"blob {blob.Id}: limit of {_options.MaxBlobMappings} mapped blobs reached");
        if (_mappings.Find(m => m.Overlaps(c.Offset, length)) is { } other)
            return Fail(VirtioGpuCtrlType.ErrInvalidParameter, cmd, $"blob {blob.Id}: [0x{c.Offset:x}, +0x{length:x}) overlaps blob {other.Blob.Id} at {other}");

        MemoryBlock block;
        ulong blockOffset;
        if (blob.HostMemory is { } host)
        {
            (block, blockOffset) = (host, 0);
        }
        else
        {
            // GUEST: only pages in one piece of one fd-backed region can be handed to the VMM
            // (the ring pages of cross-domain are one page each).
            if (blob.Locate(_memory()) is not { Region: { } guest } p)
                return Fail(VirtioGpuCtrlType.ErrInvalidParameter, cmd, $"blob {blob.Id}: its guest pages are not contiguous in one memory region");
            if (p.Block.Fd is null)
                return Fail(VirtioGpuCtrlType.ErrInvalidParameter, cmd, $"blob {blob.Id}: its memory region has no fd to map");
            if (p.Offset % PageSize != 0 || length > guest.Size - p.Offset)
                return Fail(VirtioGpuCtrlType.ErrInvalidParameter, cmd, $"blob {blob.Id}: its pages are not whole pages of the region (start 0x{guest.GuestStart.Value + p.Offset:x})");
            (block, blockOffset) = (p.Block, p.Offset);
        }

        var mapping = new BlobMapping(blob, region, c.Offset, length);
        _mappings.Add(mapping);
        blob.Mapping = mapping;
        Task<bool> mapped;
        try
        {
            mapped = region.MapAsync(block, blockOffset, c.Offset, length, writable: true);
        }
        catch (Exception e)
        {
            RemoveMapping(mapping);
            _log.LogError(e, "{Conn}: asking the VMM to map blob {Id} failed", Name, blob.Id);
            return Fail(VirtioGpuCtrlType.ErrUnspec, cmd, $"blob {blob.Id}: the map request failed: {e.Message}");
        }
        var answer = FinishMap(mapping, mapped);
        // A ring that stops first answers ERR_UNSPEC: the mapping is then undone once the VMM made it.
        return answer.IsCompleted ? answer.Result : GpuResponse.Later(DeferredResponse.FromTask(answer, GpuResponse.Error(VirtioGpuCtrlType.ErrUnspec),
            abandoned: () => { if (mapping.Live) DropMapping(mapping, unmap: true); }));
    }

    private async Task<GpuResponse> FinishMap(BlobMapping m, Task<bool> mapped)
    {
        bool ok;
        try { ok = await mapped; }
        catch (Exception e)
        {
            _log.LogWarning(e, "{Conn}: mapping blob {Id} failed", Name, m.Blob.Id);
            ok = false;
        }
        if (!m.Live)
        {
            // Dropped while the VMM was mapping (reset, unref): undo what nobody tracks any more.
            if (ok && m.UnmapWhenDone) FireUnmap(m);
            return GpuResponse.Error(VirtioGpuCtrlType.ErrUnspec);
        }
        if (!ok)
        {
            RemoveMapping(m);
            return Fail(VirtioGpuCtrlType.ErrUnspec, "RESOURCE_MAP_BLOB", $"blob {m.Blob.Id}: the VMM did not map {m}");
        }
        m.Mapped = true;
        var body = new byte[8];
        BitConverter.TryWriteBytes(body, VirtioGpuMapInfo.CacheCached);
        return GpuResponse.WithBody(VirtioGpuCtrlType.OkMapInfo, body);
    }

    /// <summary>UNMAP_BLOB: the record goes at once; the answer waits for the VMM (so a later MAP_BLOB of the range follows a finished unmap).</summary>
    private GpuResponse UnmapBlob(GpuRequest r)
    {
        const string cmd = "RESOURCE_UNMAP_BLOB";
        if (!r.TryRead<VirtioGpuResourceRef>(out var c)) return Short(r, cmd, 32);
        if (HostVisible is null) return Fail(VirtioGpuCtrlType.ErrUnspec, cmd, $"resource_id {c.ResourceId}: no host-visible region");
        if (!_resources.TryGetValue(c.ResourceId, out var any)) return Fail(VirtioGpuCtrlType.ErrInvalidResourceId, cmd, $"resource_id {c.ResourceId} does not exist");
        if (any is not BlobResource { Mapping: { Mapped: true } m } blob)
            return Fail(VirtioGpuCtrlType.ErrInvalidParameter, cmd, $"resource_id {c.ResourceId} is not a mapped blob");
        RemoveMapping(m);
        Task<bool> unmapped;
        try
        {
            unmapped = m.Region.UnmapAsync(m.Offset, m.Length);
        }
        catch (Exception e)
        {
            _log.LogError(e, "{Conn}: asking the VMM to unmap blob {Id} failed", Name, blob.Id);
            return Fail(VirtioGpuCtrlType.ErrUnspec, cmd, $"blob {blob.Id}: the unmap request failed: {e.Message}");
        }
        var answer = FinishUnmap(m, unmapped);
        return answer.IsCompleted ? answer.Result : GpuResponse.Later(DeferredResponse.FromTask(answer, GpuResponse.Error(VirtioGpuCtrlType.ErrUnspec)));
    }

    private async Task<GpuResponse> FinishUnmap(BlobMapping m, Task<bool> unmapped)
    {
        bool ok;
        try { ok = await unmapped; }
        catch (Exception e)
        {
            _log.LogWarning(e, "{Conn}: unmapping blob {Id} failed", Name, m.Blob.Id);
            ok = false;
        }
        return ok ? GpuResponse.Ok : Fail(VirtioGpuCtrlType.ErrUnspec, "RESOURCE_UNMAP_BLOB", $"blob {m.Blob.Id}: the VMM did not unmap {m}");
    }

    private void RemoveMapping(BlobMapping m)
    {
        m.Live = false;
        _mappings.Remove(m);
        if (m.Blob.Mapping == m) m.Blob.Mapping = null;
    }

    /// <summary>Drops a mapping's record; with <paramref name="unmap"/> the VMM is asked to unmap it (not awaited).</summary>
    private void DropMapping(BlobMapping m, bool unmap)
    {
        RemoveMapping(m);
        if (!unmap) return;
        if (m.Mapped) FireUnmap(m);
        else m.UnmapWhenDone = true; // still being mapped: unmapped when that completes
    }

    private void DropMappings(bool unmap)
    {
        foreach (var m in _mappings.ToArray()) DropMapping(m, unmap);
    }

    private void FireUnmap(BlobMapping m)
    {
        try
        {
            m.Region.UnmapAsync(m.Offset, m.Length).ContinueWith(t =>
            {
                if (!t.IsCompletedSuccessfully || !t.Result)
                    _log.LogWarning("{Conn}: the VMM did not unmap blob {Id} at {Range}", Name, m.Blob.Id, m);
            }, TaskScheduler.Default);
        }
        catch (Exception e)
        {
            _log.LogWarning(e, "{Conn}: unmapping blob {Id} at {Range} failed", Name, m.Blob.Id, m);
        }
    }
}
