using VirtioGpuHost.Device;
using VirtioGpuHost.Device.Capsets;
using VirtioGpuHost.Device.Contexts;
using VirtioGpuHost.Device.HostVisible;
using VirtioGpuHost.Device.Wire;
using VirtioGpuHost.FrontEnd;
using VirtioGpuHost.GuestMemory;
using VirtioGpuHost.TestKit;

namespace VirtioGpuHost.UnitTests.Device;

/// <summary>A host-visible region that records map/unmap calls and answers at once (or refuses, or later).</summary>
internal sealed class FakeHostVisibleRegion(ulong size = 64UL << 20) : IHostVisibleRegion
{
    public ulong Size => size;
    public List<(MemoryBlock Memory, ulong Offset, ulong ShmOffset, ulong Length, bool Writable)> Maps { get; } = new();
    public List<(ulong ShmOffset, ulong Length)> Unmaps { get; } = new();
    public bool Refuse { get; set; }

    /// <summary>Answer maps only when the test completes <see cref="PendingMaps"/>.</summary>
    public bool Defer { get; set; }
    public List<TaskCompletionSource<bool>> PendingMaps { get; } = new();

    public Task<bool> MapAsync(MemoryBlock memory, ulong offset, ulong shmOffset, ulong length, bool writable)
    {
        Maps.Add((memory, offset, shmOffset, length, writable));
        if (!Defer) return Task.FromResult(!Refuse);
        var t = new TaskCompletionSource<bool>();
        PendingMaps.Add(t);
        return t.Task;
    }

    public Task<bool> UnmapAsync(ulong shmOffset, ulong length)
    {
        Unmaps.Add((shmOffset, length));
        return Task.FromResult(!Refuse);
    }
}

/// <summary>A context implementation that records what it is given; fences on <see cref="HeldRings"/> wait for the test.</summary>
internal sealed class FakeContext(IGpuContextHost host) : IGpuContext
{
    public IGpuContextHost Host { get; } = host;
    public List<byte[]> Submits { get; } = new();
    public List<(byte? Ring, ulong Fence)> Fences { get; } = new();
    public List<uint> Attached { get; } = new();
    public List<uint> Detached { get; } = new();
    public HashSet<byte> HeldRings { get; } = new();
    public GpuContextError? Refuse { get; set; }
    public MemoryBlock? HostBlob { get; set; }
    public bool Disposed { get; private set; }

    public GpuContextError? Submit(ReadOnlySpan<byte> commands)
    {
        Submits.Add(commands.ToArray());
        return Refuse;
    }

    public bool CreateFence(byte? ringIdx, ulong fenceId)
    {
        Fences.Add((ringIdx, fenceId));
        return ringIdx is not byte r || !HeldRings.Contains(r);
    }

    public void ResourceAttached(GpuResource resource) => Attached.Add(resource.Id);
    public void ResourceDetached(GpuResource resource) => Detached.Add(resource.Id);

    public bool TryProvideHostBlob(ulong blobId, ulong size, out MemoryBlock? memory, out GpuContextError? error)
    {
        memory = HostBlob;
        HostBlob = null;
        error = null;
        return true;
    }

    public void Dispose() => Disposed = true;
}

/// <summary>A capset whose contexts are <see cref="FakeContext"/>s (the last one created is kept).</summary>
internal sealed class FakeCapset(uint id = VirtioGpuCapsetId.CrossDomain) : ICapset
{
    public FakeContext? Last { get; private set; }
    public uint Id => id;
    public uint MaxVersion => 2;
    public uint MaxSize => 8;
    public byte[] Data(uint version) => [(byte)version, 1, 2, 3, 4, 5, 6, 7];

    public IGpuContext? CreateContext(IGpuContextHost host) => Last = new FakeContext(host);
}

internal static class BlobTestKit
{
    public const uint Mappable = VirtioGpuResourceCreateBlob.FlagUseMappable;
    public const uint Shareable = VirtioGpuResourceCreateBlob.FlagUseShareable;
    public const uint Guest = VirtioGpuResourceCreateBlob.MemGuest;
    public const uint Host3D = VirtioGpuResourceCreateBlob.MemHost3D;

    public static GpuDeviceOptions Options(IReadOnlyList<ICapset>? capsets = null, ulong maxHostMemory = 256UL << 20) =>
        new() { Blob = true, VirglCompat = true, Capsets = capsets, MaxHostMemory = maxHostMemory };

    /// <summary>A device with blobs, contexts and UUIDs negotiated, guest RAM in a memfd.</summary>
    public static DeviceRig BlobRig(GpuDeviceOptions? options = null, bool sharedRam = true) =>
        DeviceRig.Create(options ?? Options(), sharedRam: sharedRam);

    /// <summary>Creates a cross-domain context <paramref name="ctx"/> (for HOST3D blobs).</summary>
    public static void NewContext(this DeviceRig rig, uint ctx = 1) =>
        rig.Driver.CtxCreate(ctx, VirtioGpuCapsetId.CrossDomain, "test").Is(VirtioGpuCtrlType.OkNoData);

    /// <summary>A HOST3D blob of <paramref name="size"/> bytes in context 1 (created if needed).</summary>
    public static void NewHostBlob(this DeviceRig rig, uint id, ulong size, uint flags = Mappable | Shareable)
    {
        if (!rig.Device.ContextIds.Contains(1u)) rig.NewContext(1);
        rig.Driver.CreateBlob(id, Host3D, flags, size, blobId: 7, ctxId: 1).Is(VirtioGpuCtrlType.OkNoData);
    }

    /// <summary>A GUEST blob over a framebuffer's pages (contiguous or scattered).</summary>
    public static FrameBuffer NewGuestBlob(this DeviceRig rig, uint id, uint width, uint height, bool scattered = false, uint flags = Shareable)
    {
        var fb = FrameBuffer.Allocate(rig.Ram, width, height, VirtioGpuFormat.B8G8R8X8Unorm, scattered);
        rig.Driver.CreateBlob(id, Guest, flags, fb.Length, fb.Entries).Is(VirtioGpuCtrlType.OkNoData);
        return fb;
    }

    public static VirtioGpuHost.Device.Blobs.BlobResource Blob(this DeviceRig rig, uint id) => (VirtioGpuHost.Device.Blobs.BlobResource)rig.Device.Resources[id];
}
