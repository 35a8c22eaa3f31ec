namespace VirtioGpuHost.Device;

/// <summary>One output mode the device reports when it answers display queries itself.</summary>
public readonly record struct OutputMode(uint Width, uint Height, uint RefreshHz = 60)
{
    public override string ToString() => $"{Width}x{Height}@{RefreshHz}";

    public static OutputMode Parse(string s)
    {
        var parts = s.Split('@');
        var wh = parts[0].Split('x');
        if (wh.Length != 2 || !uint.TryParse(wh[0], out var w) || !uint.TryParse(wh[1], out var h) || w == 0 || h == 0 || w > 16384 || h > 16384)
            throw new FormatException($"'{s}' is not a mode like 1280x800 or 1920x1080@60");
        uint hz = 60;
        if (parts.Length > 1 && (!uint.TryParse(parts[1], out hz) || hz is < 1 or > 1000))
            throw new FormatException($"'{s}': refresh rate must be 1..1000 Hz");
        return new OutputMode(w, h, hz);
    }
}

/// <summary>Settings of one virtio-gpu device instance.</summary>
public sealed class GpuDeviceOptions
{
    /// <summary>Scanouts reported in the config space (1..16) and answered in GET_DISPLAY_INFO.</summary>
    public int Scanouts { get; init; } = 1;

    /// <summary>Modes per scanout when the device answers display queries itself (the last one repeats).</summary>
    public IReadOnlyList<OutputMode> Modes { get; init; } = [new OutputMode(1280, 800)];

    /// <summary>Offer VIRTIO_GPU_F_EDID.</summary>
    public bool Edid { get; init; } = true;

    /// <summary>Host memory the guest may allocate for resources (QEMU's max_hostmem defaults to 256 MiB).</summary>
    public ulong MaxHostMemory { get; init; } = 256UL << 20;

    /// <summary>Largest number of resources alive at once.</summary>
    public int MaxResources { get; init; } = 16384;

    /// <summary>
    /// Offer VIRTIO_GPU_F_RESOURCE_BLOB, CONTEXT_INIT and RESOURCE_UUID: blob resources (guest
    /// pages or host memfds, scanned out without copies, mappable into the host-visible region),
    /// typed contexts with their capsets (cross-domain), and resource UUIDs.
    /// </summary>
    public bool Blob { get; init; }

    /// <summary>
    /// Also offer VIRTIO_GPU_F_VIRGL. No virgl command is implemented (3D resources, transfers and
    /// virgl contexts are refused); the Linux 6.1 driver needs the bit before it allows HOST3D
    /// blobs and CONTEXT_INIT at all.
    /// </summary>
    public bool VirglCompat { get; init; }

    /// <summary>
    /// Capsets to report with <see cref="Blob"/>, each with its context type; null = cross-domain
    /// (capset 5) without a context implementation (contexts exist, SUBMIT_3D is refused).
    /// </summary>
    public IReadOnlyList<Capsets.ICapset>? Capsets { get; init; }

    /// <summary>Largest number of HOST3D blobs alive at once (each keeps a memfd open).</summary>
    public int MaxHostBlobs { get; init; } = 512;

    /// <summary>Largest number of contexts (CTX_CREATE) alive at once.</summary>
    public int MaxContexts { get; init; } = 64;

    /// <summary>
    /// Largest number of blobs mapped into the host-visible region at once (MAP_BLOB, counted from
    /// the request until UNMAP_BLOB): each is a mapping and, with QEMU 11.1, a memory slot in the VMM.
    /// </summary>
    public int MaxBlobMappings { get; init; } = 1024;

    public OutputMode ModeFor(int scanout) => Modes.Count == 0 ? new OutputMode(1280, 800) : Modes[Math.Min(scanout, Modes.Count - 1)];

    public void Validate()
    {
        if (Scanouts is < 1 or > Wire.VirtioGpuLimits.MaxScanouts)
            throw new ArgumentOutOfRangeException(nameof(Scanouts), $"scanouts must be 1..{Wire.VirtioGpuLimits.MaxScanouts}, got {Scanouts}");
        if (MaxHostMemory == 0) throw new ArgumentOutOfRangeException(nameof(MaxHostMemory));
        if (MaxContexts < 0) throw new ArgumentOutOfRangeException(nameof(MaxContexts));
        if (MaxResources < 1) throw new ArgumentOutOfRangeException(nameof(MaxResources));
        if (MaxBlobMappings < 0) throw new ArgumentOutOfRangeException(nameof(MaxBlobMappings));
        if (MaxHostBlobs < 0) throw new ArgumentOutOfRangeException(nameof(MaxHostBlobs));
        if (VirglCompat && !Blob)
            throw new ArgumentException("VirglCompat only makes sense with Blob: virgl itself is not implemented", nameof(VirglCompat));
    }
}
