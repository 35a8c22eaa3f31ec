using System.Runtime.InteropServices;
using VirtioGpuHost.Device.Blobs;
using VirtioGpuHost.Device.Wire;
using VirtioGpuHost.GuestMemory;

namespace VirtioGpuHost.Device;

// RESOURCE_CREATE_2D, RESOURCE_UNREF, ATTACH/DETACH_BACKING, TRANSFER_TO_HOST_2D.
public sealed partial class GpuDevice
{
    private GpuResponse ResourceCreate2D(GpuRequest r)
    {
        const string cmd = "RESOURCE_CREATE_2D";
        if (!r.TryRead<VirtioGpuResourceCreate2D>(out var c)) return Short(r, cmd, 40);
        if (c.ResourceId == 0) return Fail(VirtioGpuCtrlType.ErrInvalidResourceId, cmd, "resource_id 0 is reserved");
        if (_resources.ContainsKey(c.ResourceId)) return Fail(VirtioGpuCtrlType.ErrInvalidResourceId, cmd, $"resource_id {c.ResourceId} already exists");
        if (!PixelFormats.IsSupported(c.Format)) return Fail(VirtioGpuCtrlType.ErrInvalidParameter, cmd, $"resource_id {c.ResourceId}: format {(uint)c.Format} is not a virtio-gpu format");
        if (c.Width == 0 || c.Height == 0 || c.Width > VirtioGpuLimits.MaxResourceDimension || c.Height > VirtioGpuLimits.MaxResourceDimension)
            return Fail(VirtioGpuCtrlType.ErrInvalidParameter, cmd, $"resource_id {c.ResourceId}: size {c.Width}x{c.Height} must be 1..{VirtioGpuLimits.MaxResourceDimension} in each dimension");
        ulong bytes = (ulong)c.Width * c.Height * PixelFormats.BytesPerPixel;
        if (_resources.Count >= _options.MaxResources)
            return Fail(VirtioGpuCtrlType.ErrOutOfMemory, cmd, $"resource_id {c.ResourceId}: limit of {_options.MaxResources} resources reached");
        // Pixels plus what a resource costs the host besides (a mapping, bookkeeping).
        ulong charge = bytes + ResourceOverheadBytes;
        if (charge > _options.MaxHostMemory - _hostMemoryInUse)
            return Fail(VirtioGpuCtrlType.ErrOutOfMemory, cmd, $"resource_id {c.ResourceId}: {bytes} bytes would exceed the host memory limit ({_hostMemoryInUse} of {_options.MaxHostMemory} in use)");
        MemoryBlock memory;
        try
        {
            memory = MappedBlock.CreateMemFd($"vgh-{Name}-res{c.ResourceId}", bytes, keepFd: false);
        }
        catch (IOException e)
        {
            return Fail(VirtioGpuCtrlType.ErrOutOfMemory, cmd, $"resource_id {c.ResourceId}: host allocation of {bytes} bytes failed: {e.Message}");
        }
        _resources.Add(c.ResourceId, new Resource2D(c.ResourceId, c.Format, c.Width, c.Height, memory) { HostCharge = charge });
        _hostMemoryInUse += charge;
        return GpuResponse.Ok;
    }

    private GpuResponse ResourceUnref(GpuRequest r)
    {
        const string cmd = "RESOURCE_UNREF";
        if (!r.TryRead<VirtioGpuResourceRef>(out var c)) return Short(r, cmd, 32);
        if (!_resources.Remove(c.ResourceId, out var res)) return Fail(VirtioGpuCtrlType.ErrInvalidResourceId, cmd, $"resource_id {c.ResourceId} does not exist");
        for (uint i = 0; i < _scanouts.Length; i++)
        {
            if (_scanouts[i].Resource == res) DisableScanout(i);
        }
        // A mapped blob is unmapped first (the guest should have sent UNMAP_BLOB; Linux does).
        if (res is BlobResource { Mapping: { } m }) DropMapping(m, unmap: true);
        DetachFromContexts(res);
        if (res is BlobResource { Kind: BlobMemory.Host3D }) _hostBlobs--;
        _hostMemoryInUse -= res.HostCharge;
        res.Dispose();
        return GpuResponse.Ok;
    }

    private GpuResponse AttachBacking(GpuRequest r)
    {
        const string cmd = "RESOURCE_ATTACH_BACKING";
        if (!r.TryRead<VirtioGpuResourceAttachBacking>(out var c)) return Short(r, cmd, 32);
        if (!TryGet2D(c.ResourceId, cmd, out var res, out var error)) return error;
        if (res.Backing is not null) return Fail(VirtioGpuCtrlType.ErrUnspec, cmd, $"resource_id {c.ResourceId} already has backing");
        if (c.NrEntries > VirtioGpuLimits.MaxBackingEntries)
            return Fail(VirtioGpuCtrlType.ErrInvalidParameter, cmd, $"resource_id {c.ResourceId}: nr_entries {c.NrEntries} exceeds {VirtioGpuLimits.MaxBackingEntries}");
        int needed = 32 + (int)c.NrEntries * 16;
        if (r.Bytes.Length < needed) return Short(r, cmd, needed);
        // The scatter list and its resolved form live on the host: they count against the budget.
        ulong listCharge = c.NrEntries * BackingEntryCostBytes;
        if (listCharge > _options.MaxHostMemory - _hostMemoryInUse)
            return Fail(VirtioGpuCtrlType.ErrOutOfMemory, cmd, $"resource_id {c.ResourceId}: a scatter list of {c.NrEntries} entries would exceed the host memory limit ({_hostMemoryInUse} of {_options.MaxHostMemory} in use)");
        var entries = MemoryMarshal.Cast<byte, VirtioGpuMemEntry>(r.Bytes.AsSpan(32, (int)c.NrEntries * 16)).ToArray();
        var memory = _memory();
        var slices = new List<MemorySlice>();
        for (int i = 0; i < entries.Length; i++)
        {
            slices.Clear();
            if (entries[i].Length > 0 && !memory.TryGetSlices(new GuestAddress(entries[i].Address), entries[i].Length, slices))
                return Fail(VirtioGpuCtrlType.ErrInvalidParameter, cmd, $"resource_id {c.ResourceId}: entry {i} (addr 0x{entries[i].Address:x} length {entries[i].Length}) is not in guest memory");
        }
        res.Backing = entries;
        res.HostCharge += listCharge;
        _hostMemoryInUse += listCharge;
        return GpuResponse.Ok;
    }

    private GpuResponse DetachBacking(GpuRequest r)
    {
        const string cmd = "RESOURCE_DETACH_BACKING";
        if (!r.TryRead<VirtioGpuResourceRef>(out var c)) return Short(r, cmd, 32);
        if (!TryGet2D(c.ResourceId, cmd, out var res, out var error)) return error;
        // The resource exists, so not ERR_INVALID_RESOURCE_ID: QEMU answers ERR_UNSPEC ("no backing storage").
        if (res.Backing is null) return Fail(VirtioGpuCtrlType.ErrUnspec, cmd, $"resource_id {c.ResourceId} has no backing");
        ulong listCharge = (ulong)res.Backing.Length * BackingEntryCostBytes;
        res.HostCharge -= listCharge;
        _hostMemoryInUse -= listCharge;
        res.Backing = null;
        return GpuResponse.Ok;
    }

    private GpuResponse TransferToHost2D(GpuRequest r)
    {
        const string cmd = "TRANSFER_TO_HOST_2D";
        if (!r.TryRead<VirtioGpuTransferToHost2D>(out var c)) return Short(r, cmd, 56);
        if (!_resources.TryGetValue(c.ResourceId, out var any)) return Fail(VirtioGpuCtrlType.ErrInvalidResourceId, cmd, $"resource_id {c.ResourceId} does not exist");
        // Linux sends it for dumb-buffer GUEST blobs too. Nothing to copy: a blob IS the memory the
        // display reads (a scattered one is gathered at RESOURCE_FLUSH, where the display needs it).
        if (any is BlobResource)
        {
            BlobTransfersSkipped++;
            return GpuResponse.Ok;
        }
        var res = (Resource2D)any;
        // The resource exists, so not ERR_INVALID_RESOURCE_ID: QEMU answers ERR_UNSPEC ("no backing storage").
        if (res.Backing is null) return Fail(VirtioGpuCtrlType.ErrUnspec, cmd, $"resource_id {c.ResourceId} has no backing");
        if (!c.Rect.FitsIn(res.Width, res.Height))
            return Fail(VirtioGpuCtrlType.ErrInvalidParameter, cmd, $"resource_id {c.ResourceId}: rect {c.Rect} is outside the {res.Width}x{res.Height} resource");
        if (c.Rect.IsEmpty) return GpuResponse.Ok;

        // Row h of the rect is read at offset + stride*h in the backing (QEMU's rule; the
        // Linux driver puts y*stride + x*4 in offset). Check the last byte before copying.
        ulong rowBytes = (ulong)c.Rect.Width * PixelFormats.BytesPerPixel;
        ulong lastEnd;
        try { lastEnd = checked(c.Offset + (ulong)res.Stride * (c.Rect.Height - 1) + rowBytes); }
        catch (OverflowException) { return Fail(VirtioGpuCtrlType.ErrInvalidParameter, cmd, $"resource_id {c.ResourceId}: offset 0x{c.Offset:x} overflows"); }
        ulong backingLength = res.BackingLength;
        if (lastEnd > backingLength)
            return Fail(VirtioGpuCtrlType.ErrInvalidParameter, cmd, $"resource_id {c.ResourceId}: rect {c.Rect} at offset 0x{c.Offset:x} reads up to byte {lastEnd} of a {backingLength}-byte backing");

        var backing = res.ResolveBacking(_memory());
        if (backing is null)
            return Fail(VirtioGpuCtrlType.ErrUnspec, cmd, $"resource_id {c.ResourceId}: its backing is no longer in guest memory");

        // A compositor takes the published pixels from its own thread (IPixelSource). The transfer
        // writes the spare and publishes it (Resource2D: the lock covers the swap, not the copy, so
        // a frame never waits for this copy).
        ulong dst = (ulong)c.Rect.Y * res.Stride + (ulong)c.Rect.X * PixelFormats.BytesPerPixel;
        ulong copied = rowBytes * c.Rect.Height;
        if (res.TakeSpare(() => AllocateSpare(res)) is { } spare)
        {
            copied += res.CatchUpSpare(c.Rect);
            CopyRect(backing, c.Offset, res, rowBytes, c.Rect.Height, spare.AsSpan(dst, checked((int)(res.Stride * (c.Rect.Height - 1) + rowBytes))));
            lock (res.Sync) res.PublishSpare(c.Rect);
            BufferSwaps++;
        }
        else
        {
            // No second buffer (the budget has no room, or a reader holds both): the published
            // pixels are written in place, without the lock. A reader may then show this VM's own
            // pixels half updated until its next flush; it never waits for the copy (a VM could
            // otherwise stall every frame by filling its budget).
            if (!res.Memory.IsExclusive) InPlaceWritesWhileShared++;
            CopyRect(backing, c.Offset, res, rowBytes, c.Rect.Height, res.Memory.AsSpan(dst, checked((int)(res.Stride * (c.Rect.Height - 1) + rowBytes))));
            res.NoteWrittenInPlace(c.Rect);
        }
        BytesTransferred += rowBytes * c.Rect.Height;
        ScanoutBytesCopied += copied;
        return GpuResponse.Ok;
    }

    /// <summary>Rows of a transfer from the guest backing into <paramref name="destination"/> (starting at the rect's first pixel, the resource's stride).</summary>
    private static void CopyRect(BackingView backing, ulong offset, Resource2D res, ulong rowBytes, uint height, Span<byte> destination)
    {
        if (rowBytes == res.Stride)
        {
            // Whole rows: source and destination are both contiguous.
            backing.CopyTo(offset, destination[..checked((int)(rowBytes * height))]);
            return;
        }
        for (uint h = 0; h < height; h++)
            backing.CopyTo(offset + (ulong)res.Stride * h, destination.Slice(checked((int)(res.Stride * h)), (int)rowBytes));
    }

    /// <summary>A resource's second buffer, charged to the guest's host memory; null when the budget has no room.</summary>
    private MemoryBlock? AllocateSpare(Resource2D res)
    {
        if (res.SizeBytes > _options.MaxHostMemory - _hostMemoryInUse) return null;
        try
        {
            var spare = MappedBlock.CreateMemFd($"vgh-{Name}-res{res.Id}b", res.SizeBytes, keepFd: false);
            _hostMemoryInUse += res.SizeBytes;
            res.HostCharge += res.SizeBytes;
            return spare;
        }
        catch (IOException) { return null; }
    }

    /// <summary>Transfers written into a resource's spare buffer and published (the usual way; see Resource2D).</summary>
    public long BufferSwaps { get; private set; }

    /// <summary>Transfers that wrote the published pixels while a reader held them (no spare to be had: budget, or both buffers held).</summary>
    public long InPlaceWritesWhileShared { get; private set; }

    /// <summary>What a resource costs besides its pixels (mapping, bookkeeping), charged to the budget.</summary>
    public const ulong ResourceOverheadBytes = 4096;

    /// <summary>What one scatter-list entry costs the host (the entry and its resolved slice).</summary>
    public const ulong BackingEntryCostBytes = 32;

    /// <summary>Bytes copied from guest memory into resources so far.</summary>
    public ulong BytesTransferred { get; private set; }

    /// <summary>
    /// Bytes copied on the way from guest pixels to what the display reads: 2D transfers and blob
    /// gathers. Zero-copy blob scanouts add nothing.
    /// </summary>
    public ulong ScanoutBytesCopied { get; private set; }

    /// <summary>TRANSFER_TO_HOST_2D on blobs, answered OK without copying.</summary>
    public long BlobTransfersSkipped { get; private set; }

    /// <summary>A 2D resource by id: ERR_INVALID_RESOURCE_ID when missing, ERR_INVALID_PARAMETER for a blob.</summary>
    private bool TryGet2D(uint id, string cmd, out Resource2D res, out GpuResponse error)
    {
        res = null!;
        error = default;
        if (!_resources.TryGetValue(id, out var any))
        {
            error = Fail(VirtioGpuCtrlType.ErrInvalidResourceId, cmd, $"resource_id {id} does not exist");
            return false;
        }
        if (any is not Resource2D r2)
        {
            // A GUEST blob's pages are fixed at creation; a HOST3D blob has no guest backing.
            error = Fail(VirtioGpuCtrlType.ErrInvalidParameter, cmd, $"resource_id {id} is a blob, not a 2D resource");
            return false;
        }
        res = r2;
        return true;
    }
}
