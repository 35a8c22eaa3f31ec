using System.Runtime.InteropServices;
using VirtioGpuHost.Device.Blobs;
using VirtioGpuHost.Device.Wire;
using VirtioGpuHost.GuestMemory;

namespace VirtioGpuHost.Device;

// RESOURCE_CREATE_BLOB, SET_SCANOUT_BLOB, RESOURCE_FLUSH of a blob, RESOURCE_ASSIGN_UUID.
public sealed partial class GpuDevice
{
    private const ulong PageSize = 4096;

    private GpuResponse CreateBlob(GpuRequest r)
    {
        const string cmd = "RESOURCE_CREATE_BLOB";
        if (!r.TryRead<VirtioGpuResourceCreateBlob>(out var c)) return Short(r, cmd, 56);
        if (c.ResourceId == 0) return Fail(VirtioGpuCtrlType.ErrInvalidResourceId, cmd, "resource_id 0 is reserved");
        if (_resources.ContainsKey(c.ResourceId)) return Fail(VirtioGpuCtrlType.ErrInvalidResourceId, cmd, $"resource_id {c.ResourceId} already exists");
        if ((c.BlobFlags & ~VirtioGpuResourceCreateBlob.KnownFlags) != 0)
            return Fail(VirtioGpuCtrlType.ErrInvalidParameter, cmd, $"resource_id {c.ResourceId}: unknown blob_flags 0x{c.BlobFlags:x}");
        if (c.Size == 0) return Fail(VirtioGpuCtrlType.ErrInvalidParameter, cmd, $"resource_id {c.ResourceId}: size 0");
        if (_resources.Count >= _options.MaxResources)
            return Fail(VirtioGpuCtrlType.ErrOutOfMemory, cmd, $"resource_id {c.ResourceId}: limit of {_options.MaxResources} resources reached");
        return c.BlobMem switch
        {
            VirtioGpuResourceCreateBlob.MemGuest => CreateGuestBlob(r, c),
            VirtioGpuResourceCreateBlob.MemHost3D => CreateHostBlob(c),
            // Host memory that the guest backs with its own pages: only meaningful to a renderer.
            VirtioGpuResourceCreateBlob.MemHost3DGuest => Fail(VirtioGpuCtrlType.ErrInvalidParameter, cmd, $"resource_id {c.ResourceId}: blob_mem HOST3D_GUEST is not supported"),
            _ => Fail(VirtioGpuCtrlType.ErrInvalidParameter, cmd, $"resource_id {c.ResourceId}: blob_mem {c.BlobMem} is not a blob memory type"),
        };
    }

    /// <summary>
    /// GUEST: the scatter list is validated like ATTACH_BACKING's (≤ 16384 entries, each inside
    /// guest RAM, charged to the budget) and must cover size. Sizes need no page alignment (that
    /// takes VIRTIO_GPU_F_BLOB_ALIGNMENT, not offered); MAP_BLOB maps whole pages. blob_id and
    /// ctx_id mean nothing for guest memory and are ignored.
    /// </summary>
    private GpuResponse CreateGuestBlob(GpuRequest r, in VirtioGpuResourceCreateBlob c)
    {
        const string cmd = "RESOURCE_CREATE_BLOB";
        if (c.NrEntries > VirtioGpuLimits.MaxBackingEntries)
            return Fail(VirtioGpuCtrlType.ErrInvalidParameter, cmd, $"resource_id {c.ResourceId}: nr_entries {c.NrEntries} exceeds {VirtioGpuLimits.MaxBackingEntries}");
        int needed = 56 + (int)c.NrEntries * 16;
        if (r.Bytes.Length < needed) return Short(r, cmd, needed);
        ulong charge = c.NrEntries * BackingEntryCostBytes + ResourceOverheadBytes;
        if (charge > _options.MaxHostMemory - _hostMemoryInUse)
            return Fail(VirtioGpuCtrlType.ErrOutOfMemory, cmd, $"resource_id {c.ResourceId}: a scatter list of {c.NrEntries} entries would exceed the host memory limit ({_hostMemoryInUse} of {_options.MaxHostMemory} in use)");
        var entries = MemoryMarshal.Cast<byte, VirtioGpuMemEntry>(r.Bytes.AsSpan(56, (int)c.NrEntries * 16)).ToArray();
        var memory = _memory();
        var slices = new List<MemorySlice>();
        ulong total = 0;
        for (int i = 0; i < entries.Length; i++)
        {
            slices.Clear();
            if (entries[i].Length > 0 && !memory.TryGetSlices(new GuestAddress(entries[i].Address), entries[i].Length, slices))
                return Fail(VirtioGpuCtrlType.ErrInvalidParameter, cmd, $"resource_id {c.ResourceId}: entry {i} (addr 0x{entries[i].Address:x} length {entries[i].Length}) is not in guest memory");
            total += entries[i].Length; // ≤ 16384 × 4 GiB: no overflow
        }
        if (total < c.Size)
            return Fail(VirtioGpuCtrlType.ErrInvalidParameter, cmd, $"resource_id {c.ResourceId}: size {c.Size} exceeds the {total} bytes of its {entries.Length} entries");
        var blob = BlobResource.Guest(c.ResourceId, c.BlobFlags, c.Size, entries);
        blob.HostCharge = charge;
        _resources.Add(c.ResourceId, blob);
        _hostMemoryInUse += charge;
        return GpuResponse.Ok;
    }

    /// <summary>
    /// HOST3D: host memory in the context named by hdr.ctx_id (the Linux driver sends the file's
    /// context), which must exist: the context may supply the memory <c>blob_id</c> names, else a
    /// zero-filled memfd of size rounded up to pages, charged to the budget.
    /// </summary>
    private GpuResponse CreateHostBlob(in VirtioGpuResourceCreateBlob c)
    {
        const string cmd = "RESOURCE_CREATE_BLOB";
        uint id = c.ResourceId;
        if (!_contexts.TryGetValue(c.Header.CtxId, out var ctx))
            return Fail(VirtioGpuCtrlType.ErrInvalidContextId, cmd, $"resource_id {id}: HOST3D blob in ctx_id {c.Header.CtxId}, which does not exist");
        if (c.NrEntries != 0)
            return Fail(VirtioGpuCtrlType.ErrInvalidParameter, cmd, $"resource_id {id}: a HOST3D blob has no guest pages, but nr_entries is {c.NrEntries}");
        if (c.Size > ulong.MaxValue - (PageSize - 1))
            return Fail(VirtioGpuCtrlType.ErrInvalidParameter, cmd, $"resource_id {id}: size 0x{c.Size:x} overflows when rounded up to pages");
        ulong bytes = (c.Size + PageSize - 1) & ~(PageSize - 1);
        ulong charge = bytes + ResourceOverheadBytes;
        if (bytes > _options.MaxHostMemory || charge > _options.MaxHostMemory - _hostMemoryInUse)
            return Fail(VirtioGpuCtrlType.ErrOutOfMemory, cmd, $"resource_id {id}: {bytes} bytes would exceed the host memory limit ({_hostMemoryInUse} of {_options.MaxHostMemory} in use)");
        if (_hostBlobs >= _options.MaxHostBlobs)
            return Fail(VirtioGpuCtrlType.ErrOutOfMemory, cmd, $"resource_id {id}: limit of {_options.MaxHostBlobs} HOST3D blobs reached (each holds an fd)");

        MemoryBlock? memory = null;
        if (ctx.Impl is { } impl)
        {
            if (!impl.TryProvideHostBlob(c.BlobId, c.Size, out memory, out var refused))
                return Fail(refused?.Type ?? VirtioGpuCtrlType.ErrInvalidParameter, cmd, $"resource_id {id}: ctx {ctx.ContextId} refused blob_id {c.BlobId}: {refused?.Detail}");
            if (memory is not null && (memory.Length < c.Size || memory.Fd is null))
            {
                memory.Release();
                return Fail(VirtioGpuCtrlType.ErrInvalidParameter, cmd, $"resource_id {id}: blob_id {c.BlobId} names less than {c.Size} bytes of shareable memory");
            }
        }
        if (memory is null)
        {
            try
            {
                // The fd is kept: MAP_BLOB hands it to the VMM, a context to the compositor.
                memory = MappedBlock.CreateMemFd($"vgh-{Name}-blob{id}", bytes, keepFd: true);
            }
            catch (IOException e)
            {
                return Fail(VirtioGpuCtrlType.ErrOutOfMemory, cmd, $"resource_id {id}: host allocation of {bytes} bytes failed: {e.Message}");
            }
        }
        var blob = BlobResource.Host(id, c.BlobFlags, c.BlobId, c.Size, ctx.ContextId, memory);
        blob.HostCharge = charge;
        _resources.Add(id, blob);
        _hostMemoryInUse += charge;
        _hostBlobs++;
        return GpuResponse.Ok;
    }

    private int _hostBlobs;

    private GpuResponse SetScanoutBlob(GpuRequest r)
    {
        const string cmd = "SET_SCANOUT_BLOB";
        if (!r.TryRead<VirtioGpuSetScanoutBlob>(out var c)) return Short(r, cmd, 96);
        uint sid = c.ScanoutId;
        if (!IsValidScanout(sid)) return Fail(VirtioGpuCtrlType.ErrInvalidScanoutId, cmd, $"scanout_id {sid} does not exist");
        if (c.ResourceId == 0)
        {
            DisableScanout(sid);
            return GpuResponse.Ok;
        }
        if (!_resources.TryGetValue(c.ResourceId, out var any)) return Fail(VirtioGpuCtrlType.ErrInvalidResourceId, cmd, $"scanout {sid}: resource_id {c.ResourceId} does not exist");
        if (any is not BlobResource blob) return Fail(VirtioGpuCtrlType.ErrInvalidParameter, cmd, $"scanout {sid}: resource_id {c.ResourceId} is not a blob (use SET_SCANOUT)");
        if (!PixelFormats.IsSupported(c.Format)) return Fail(VirtioGpuCtrlType.ErrInvalidParameter, cmd, $"scanout {sid}: format {(uint)c.Format} is not a virtio-gpu format");
        if (c.Width == 0 || c.Height == 0 || c.Width > VirtioGpuLimits.MaxResourceDimension || c.Height > VirtioGpuLimits.MaxResourceDimension)
            return Fail(VirtioGpuCtrlType.ErrInvalidParameter, cmd, $"scanout {sid}: size {c.Width}x{c.Height} must be 1..{VirtioGpuLimits.MaxResourceDimension} in each dimension");
        // Every format here is one plane: planes 1-3 must be unused.
        for (int p = 1; p < 4; p++)
        {
            if (c.Strides[p] != 0 || c.Offsets[p] != 0)
                return Fail(VirtioGpuCtrlType.ErrInvalidParameter, cmd, $"scanout {sid}: plane {p} has stride {c.Strides[p]} offset {c.Offsets[p]}, but the format has one plane");
        }
        uint stride = c.Strides[0], offset = c.Offsets[0];
        ulong rowBytes = (ulong)c.Width * PixelFormats.BytesPerPixel;
        if (stride < rowBytes || stride % 4 != 0)
            return Fail(VirtioGpuCtrlType.ErrInvalidParameter, cmd, $"scanout {sid}: stride {stride} must be a multiple of 4 and at least width*4 = {rowBytes}");
        ulong end = offset + (ulong)stride * (c.Height - 1) + rowBytes; // < 2^32 + 2^46 + 2^16: no overflow
        if (end > blob.Size)
            return Fail(VirtioGpuCtrlType.ErrInvalidParameter, cmd, $"scanout {sid}: {c.Width}x{c.Height} at offset {offset} stride {stride} reaches byte {end} of the {blob.Size}-byte blob {c.ResourceId}");
        if (c.Rect.IsEmpty || !c.Rect.FitsIn(c.Width, c.Height))
            return Fail(VirtioGpuCtrlType.ErrInvalidParameter, cmd, $"scanout {sid}: rect {c.Rect} is empty or outside the {c.Width}x{c.Height} framebuffer");

        var old = _scanouts[sid];
        var view = old.Blob is { } v && v.Blob == blob && v.Offset == offset && v.Width == c.Width && v.Height == c.Height && v.Stride == stride && v.Format == c.Format
            ? v // the same framebuffer with a new source rect: keep its view
            : new BlobScanout(blob, offset, c.Width, c.Height, stride, c.Format);
        if (BindBlobView(view) is { } error)
        {
            if (view != old.Blob) ReleaseBlobView(new Scanout(blob, default) { Blob = view });
            return Fail(VirtioGpuCtrlType.ErrUnspec, cmd, $"scanout {sid}: blob {c.ResourceId}: {error}");
        }
        if (view.IsGathered) CountGather(view.Gather(_memory(), c.Rect));
        _scanouts[sid] = new Scanout(blob, c.Rect) { Blob = view };
        _display.ScanoutChanged(sid, view.Surface, c.Rect);
        // As for SET_SCANOUT: the display starts blank, so it gets the current pixels at once.
        _display.ScanoutFlushed(sid, view.Surface, c.Rect, new VirtioGpuRect(0, 0, c.Rect.Width, c.Rect.Height));
        if (old.Blob != view) ReleaseBlobView(old);
        return GpuResponse.Ok;
    }

    /// <summary>
    /// RESOURCE_FLUSH of a blob: the rect is in the pixel coordinates of each scanout's
    /// framebuffer (clipped to its source rect). Zero-copy views are re-resolved in the current
    /// memory snapshot (the memory table may have changed); gathered ones copy the rect.
    /// </summary>
    private GpuResponse FlushBlob(BlobResource blob, VirtioGpuRect rect)
    {
        string? error = null;
        for (uint i = 0; i < _scanouts.Length; i++)
        {
            var s = _scanouts[i];
            if (s.Resource != blob || s.Blob is not { } view) continue;
            var damage = rect.Intersect(s.Source);
            if (damage.IsEmpty) continue;
            if (BindBlobView(view) is { } e)
            {
                error ??= $"scanout {i}: {e}";
                continue;
            }
            if (view.IsGathered) CountGather(view.Gather(_memory(), damage));
            var local = new VirtioGpuRect(damage.X - s.Source.X, damage.Y - s.Source.Y, damage.Width, damage.Height);
            _display.ScanoutFlushed(i, view.Surface, s.Source, local);
            Flushes++;
        }
        return error is null ? GpuResponse.Ok : Fail(VirtioGpuCtrlType.ErrUnspec, "RESOURCE_FLUSH", $"blob {blob.Id}: {error}");
    }

    /// <summary>(Re)binds a blob view in the current memory, keeping the gather copy's charge in the budget.</summary>
    private string? BindBlobView(BlobScanout view)
    {
        ulong before = view.GatherCharge;
        var error = view.Bind(_memory(), size =>
        {
            if (size > _options.MaxHostMemory - _hostMemoryInUse) return null;
            try { return MappedBlock.CreateMemFd($"vgh-{Name}-gather{view.Blob.Id}", size, keepFd: false); }
            catch (IOException) { return null; }
        });
        _hostMemoryInUse = _hostMemoryInUse - before + view.GatherCharge;
        return error;
    }

    private void CountGather(ulong bytes)
    {
        BlobGatherBytes += bytes;
        ScanoutBytesCopied += bytes;
    }

    /// <summary>Copies blob bytes [offset, offset + destination.Length) (the caller checked the range); false if not in memory.</summary>
    private bool TryReadBlob(BlobResource blob, ulong offset, Span<byte> destination)
    {
        var memory = _memory();
        if (blob.Locate(memory) is { } p)
        {
            p.Block.AsSpan(p.Offset + offset, destination.Length).CopyTo(destination);
            return true;
        }
        if (blob.ResolveScattered(memory) is not { } view) return false;
        view.CopyTo(offset, destination);
        return true;
    }

    /// <summary>Bytes copied from scattered GUEST blobs into their gather copies (part of <see cref="ScanoutBytesCopied"/>).</summary>
    public ulong BlobGatherBytes { get; private set; }

    /// <summary>
    /// RESOURCE_ASSIGN_UUID: the spec means it for shareable resources, but any existing resource
    /// gets one (QEMU does the same); a random (v4) UUID, the same on every call for the
    /// resource's life.
    /// </summary>
    private GpuResponse AssignUuid(GpuRequest r)
    {
        const string cmd = "RESOURCE_ASSIGN_UUID";
        if (!r.TryRead<VirtioGpuResourceRef>(out var c)) return Short(r, cmd, 32);
        if (!_resources.TryGetValue(c.ResourceId, out var res)) return Fail(VirtioGpuCtrlType.ErrInvalidResourceId, cmd, $"resource_id {c.ResourceId} does not exist");
        res.Uuid ??= Guid.NewGuid();
        return GpuResponse.WithBody(VirtioGpuCtrlType.OkResourceUuid, res.Uuid.Value.ToByteArray(bigEndian: true));
    }
}
