using System.Diagnostics;
using VirtioGpuHost.Backend;
using VirtioGpuHost.Device;
using VirtioGpuHost.Device.Blobs;
using VirtioGpuHost.Device.Wire;
using VirtioGpuHost.FrontEnd;
using VirtioGpuHost.GuestMemory;
using VirtioGpuHost.Interop;
using VirtioGpuHost.TestKit;
using VirtioGpuHost.VhostUser.Wire;

namespace VirtioGpuHost.UnitTests.VhostUser;

/// <summary>
/// Our back-end and the reference front-end together over real sockets: the region negotiated
/// by GpuVm, mappings made by the device's host-visible region on its event loop, seen by the
/// guest access API, QEMU-like ADD_MEM_REG feedback beyond the memory slots, and 10 000
/// map/unmap cycles without fd or mapping growth (both sides live in this process).
/// </summary>
[Collection(ProcessWideCollection.Name)]
public class HostVisibleEndToEndTests(ITestOutputHelper output)
{
    private const ulong Region = 64UL << 20;

    private static (InProcessBackend Backend, GpuVm Vm, VhostUserGpuDevice Device) Connect(GpuVmOptions? options = null)
    {
        var backend = new InProcessBackend();
        backend.Server.HostVisibleSize = Region;
        try
        {
            var vm = GpuVm.Connect(backend.SocketPath, options ?? new GpuVmOptions { HostVisibleSize = Region });
            Assert.True(ProcessResources.WaitUntil(() => backend.Devices.Count > 0, TimeSpan.FromSeconds(10)));
            return (backend, vm, backend.LastDevice);
        }
        catch
        {
            backend.Dispose();
            throw;
        }
    }

    /// <summary>Runs <paramref name="f"/> on the device's event loop and waits for the task it starts.</summary>
    private static T OnLoop<T>(VhostUserGpuDevice device, Func<Task<T>> f, int timeoutSeconds = 30)
    {
        var done = new TaskCompletionSource<Task<T>>(TaskCreationOptions.RunContinuationsAsynchronously);
        device.Services.Loop.Post(() =>
        {
            try { done.SetResult(f()); }
            catch (Exception e) { done.SetException(e); }
        });
        Assert.True(done.Task.Wait(TimeSpan.FromSeconds(10)), "the loop did not run the action");
        var task = done.Task.Result;
        Assert.True(task.Wait(TimeSpan.FromSeconds(timeoutSeconds)), "the task did not complete");
        return task.Result;
    }

    [Fact]
    public void GpuVm_NegotiatesTheRegion_DeviceMapsABlob_GuestWritesReachTheBlob()
    {
        var (backend, vm, device) = Connect();
        using var _ = backend;
        using var __ = vm;
        using var blob = new BlobMemory(0x20000);
        Assert.NotNull(vm.HostVisible);
        Assert.Null(vm.HostVisibleError);
        Assert.Equal(Region, vm.HostVisible!.Size);
        Assert.True((vm.FrontEnd.Protocol & VhostUserProtocolFeatures.Shmem) != 0);
        Assert.NotNull(device.HostVisible);

        Assert.True(OnLoop(device, () => device.HostVisible!.MapAsync(blob.Block, 0, 0x100000, 0x20000, writable: true)));
        Assert.Equal([new HostVisibleMapping(0x100000, 0x20000, 0, true)], vm.HostVisible.Mappings);
        byte[] pattern = Enumerable.Range(0, 4096).Select(i => (byte)(i * 7)).ToArray();
        Assert.Equal(HostVisibleAccess.Mapped, vm.HostVisible.Write(0x100000 + 0x1000, pattern));
        Assert.Equal(pattern, blob.Block.AsSpan(0x1000, 4096).ToArray());
        blob.Block.AsSpan(0, 4).Fill(0xAB);
        var back = new byte[4];
        Assert.Equal(HostVisibleAccess.Mapped, vm.HostVisible.Read(0x100000, back));
        Assert.All(back, b => Assert.Equal(0xAB, b));

        Assert.True(OnLoop(device, () => device.HostVisible!.UnmapAsync(0x100000, 0x20000)));
        Assert.Empty(vm.HostVisible.Mappings);
        Assert.Equal(HostVisibleAccess.Faulted, vm.HostVisible.Read(0x100000, back));
        // Refusals come back as false with the front-end's reason, the connection goes on.
        Assert.False(OnLoop(device, () => device.HostVisible!.UnmapAsync(0x100000, 0x20000)));
        Assert.True(vm.BackendChannel!.Refused("ShmemUnmap", "no mapping with exactly"));
        Assert.Equal((1L, 1L), (device.HostVisible!.MapsSucceeded, device.HostVisible.UnmapsSucceeded));
    }

    /// <summary>
    /// QEMU 11.1.3 itself crashes when a VM resets with a blob mapped (tests/e2e/qemu11-blob-shmem);
    /// the reference front-end must not: it drops its mappings at the reset, the back-end (seeing
    /// the rings restart at 0) drops its blobs and asks to unmap what it had mapped, the front-end
    /// refuses those unmaps (nothing is mapped any more), and the rebooted guest maps again.
    /// </summary>
    [Fact]
    public void VmResetWithABlobMapped_BothSidesDropTheMapping_AndTheGuestMapsAgain()
    {
        using var backend = new InProcessBackend(new GpuDeviceOptions { Blob = true, VirglCompat = true });
        backend.Server.HostVisibleSize = Region;
        using var vm = GpuVm.Connect(backend.SocketPath, new GpuVmOptions { HostVisibleSize = Region, Blob = true });
        Assert.True(ProcessResources.WaitUntil(() => backend.Devices.Count > 0, TimeSpan.FromSeconds(10)));
        var device = backend.LastDevice;
        var d = vm.Driver;
        const uint Flags = VirtioGpuResourceCreateBlob.FlagUseMappable | VirtioGpuResourceCreateBlob.FlagUseShareable;
        Assert.True(d.CtxCreate(1, 5, "before").IsOk);
        Assert.True(d.CreateBlob(10, VirtioGpuResourceCreateBlob.MemHost3D, Flags, 0x10000, blobId: 1, ctxId: 1).IsOk);
        Assert.Equal(VirtioGpuCtrlType.OkMapInfo, d.MapBlob(10, 0x200000).Type);
        Assert.Single(vm.HostVisible!.Mappings);

        // The guest reboots with the blob still mapped.
        vm.Stop();
        vm.Start(resetRings: true);
        Assert.Empty(vm.HostVisible.Mappings);
        Assert.Equal(HostVisibleAccess.Faulted, vm.HostVisible.Read(0x200000, new byte[16]));

        // The rebooted guest starts over: same ids, same offset.
        Assert.True(d.CtxCreate(1, 5, "after").IsOk);
        Assert.True(d.CreateBlob(10, VirtioGpuResourceCreateBlob.MemHost3D, Flags, 0x10000, blobId: 1, ctxId: 1).IsOk);
        Assert.Equal(VirtioGpuCtrlType.OkMapInfo, d.MapBlob(10, 0x200000).Type);
        byte[] pattern = Enumerable.Range(0, 256).Select(i => (byte)i).ToArray();
        Assert.Equal(HostVisibleAccess.Mapped, vm.HostVisible.Write(0x200000, pattern));
        var hostMemory = OnLoop(device, () => Task.FromResult(((BlobResource)device.Gpu.Resources[10]).HostMemory!));
        Assert.Equal(pattern, hostMemory.AsSpan(0, pattern.Length).ToArray());
        Assert.Equal(1, OnLoop(device, () => Task.FromResult(device.Gpu.MappedBlobs)));
    }

    [Fact]
    public void MapBlob_ThroughTheDevice_GuestSeesHost3DAndGuestBlobs()
    {
        using var backend = new InProcessBackend(new GpuDeviceOptions { Blob = true, VirglCompat = true });
        backend.Server.HostVisibleSize = Region;
        using var vm = GpuVm.Connect(backend.SocketPath, new GpuVmOptions { HostVisibleSize = Region, Blob = true });
        Assert.True(ProcessResources.WaitUntil(() => backend.Devices.Count > 0, TimeSpan.FromSeconds(10)));
        var device = backend.LastDevice;
        var d = vm.Driver;
        Assert.True(d.CtxCreate(1, 5, "hv").IsOk);

        // HOST3D: the device's memfd, mapped by the reference front-end at the guest's offset.
        Assert.True(d.CreateBlob(10, VirtioGpuResourceCreateBlob.MemHost3D, VirtioGpuResourceCreateBlob.FlagUseMappable | VirtioGpuResourceCreateBlob.FlagUseShareable,
            0x10000, blobId: 1, ctxId: 1).IsOk);
        var map = d.MapBlob(10, 0x200000);
        Assert.Equal(VirtioGpuCtrlType.OkMapInfo, map.Type);
        Assert.Equal(1u, map.MapInfo); // CACHED
        Assert.Equal([new HostVisibleMapping(0x200000, 0x10000, 0, true)], vm.HostVisible!.Mappings);
        byte[] pattern = Enumerable.Range(0, 1000).Select(i => (byte)(i * 13 + 1)).ToArray();
        Assert.Equal(HostVisibleAccess.Mapped, vm.HostVisible.Write(0x200000 + 0x100, pattern));
        var hostMemory = OnLoop(device, () => Task.FromResult(((BlobResource)device.Gpu.Resources[10]).HostMemory!));
        Assert.Equal(pattern, hostMemory.AsSpan(0x100, pattern.Length).ToArray());
        hostMemory.AsSpan(0xff00, 4).Fill(0xC3);
        var seen = new byte[4];
        Assert.Equal(HostVisibleAccess.Mapped, vm.HostVisible.Read(0x200000 + 0xff00, seen));
        Assert.All(seen, b => Assert.Equal(0xC3, b));
        Assert.True(d.UnmapBlob(10).IsOk);
        Assert.Empty(vm.HostVisible.Mappings);
        Assert.Equal(HostVisibleAccess.Faulted, vm.HostVisible.Read(0x200000, seen));

        // GUEST: the guest's own pages (the guest RAM memfd at their offset).
        var pages = vm.Ram.Allocator.Allocate(0x4000);
        Assert.True(d.CreateBlob(11, VirtioGpuResourceCreateBlob.MemGuest, VirtioGpuResourceCreateBlob.FlagUseMappable, 0x4000, [new GuestBuffer(pages, 0x4000)]).IsOk);
        Assert.Equal(VirtioGpuCtrlType.OkMapInfo, d.MapBlob(11, 0x300000).Type);
        Assert.Equal([new HostVisibleMapping(0x300000, 0x4000, pages.Value - vm.Ram.GuestBase.Value, true)], vm.HostVisible.Mappings);
        Assert.Equal(HostVisibleAccess.Mapped, vm.HostVisible.Write(0x300000 + 0x3000, pattern));
        Assert.Equal(pattern, vm.Ram.Span(new GuestAddress(pages.Value + 0x3000), pattern.Length).ToArray());
        // A range the VMM refuses (overlap is checked by the device first; past the region by both).
        Assert.False(d.MapBlob(10, Region - 0x1000).IsOk);
        Assert.True(d.UnmapBlob(11).IsOk);
        Assert.Empty(vm.HostVisible.Mappings);
        Assert.True(device.HostVisible!.MapsSucceeded == 2 && device.HostVisible.UnmapsSucceeded == 2);
    }

    [Fact]
    public void GpuVm_WithoutHostVisibleSize_NegotiatesNoShmem()
    {
        var (backend, vm, device) = Connect(new GpuVmOptions());
        using var _ = backend;
        using var __ = vm;
        Assert.Null(vm.HostVisible);
        Assert.Equal(VhostUserProtocolFeatures.None, vm.FrontEnd.Protocol & VhostUserProtocolFeatures.Shmem);
        Assert.Null(device.HostVisible);
    }

    [Fact]
    public void Feedback_EveryMappingBecomesGuestMemory_BeyondTheSlots_AndGoesAwayOnUnmap()
    {
        var (backend, vm, device) = Connect(new GpuVmOptions { HostVisibleSize = Region, HostVisibleMemoryFeedback = true, UnmappedAccess = UnmappedAccess.Zero });
        using var _ = backend;
        using var __ = vm;
        using var blob = new BlobMemory(0x1000);
        int baseRegions = OnLoop(device, () => Task.FromResult(device.Services.Memory.Regions.Count));
        const int n = 600; // more than the 509 slots reported, as QEMU does
        var ok = OnLoop(device, async () =>
        {
            int good = 0;
            for (int i = 0; i < n; i++)
                if (await device.HostVisible!.MapAsync(blob.Block, 0, (ulong)i * 0x1000, 0x1000, true)) good++;
            return good;
        }, timeoutSeconds: 60);
        Assert.Equal(n, ok);
        Assert.True(ProcessResources.WaitUntil(() => vm.FeedbackSent == n, TimeSpan.FromSeconds(30)), $"{vm.FeedbackSent} ADD_MEM_REG sent");
        Assert.Equal(0, vm.FeedbackRefused);
        Assert.Equal(baseRegions + n, OnLoop(device, () => Task.FromResult(device.Services.Memory.Regions.Count)));
        Assert.False(backend.Logs.Contains("memory slots are in use"));

        var unmapped = OnLoop(device, async () =>
        {
            int good = 0;
            for (int i = 0; i < n; i++)
                if (await device.HostVisible!.UnmapAsync((ulong)i * 0x1000, 0x1000)) good++;
            return good;
        }, timeoutSeconds: 60);
        Assert.Equal(n, unmapped);
        Assert.True(ProcessResources.WaitUntil(() => vm.FeedbackSent == 2 * n, TimeSpan.FromSeconds(30)));
        Assert.Equal(0, vm.FeedbackRefused);
        Assert.Equal(baseRegions, OnLoop(device, () => Task.FromResult(device.Services.Memory.Regions.Count)));
    }

    [Fact]
    public void TenThousandMapUnmapCycles_NoFdOrMappingGrowth()
    {
        const int cycles = 10_000;
        var (backend, vm, device) = Connect(new GpuVmOptions { HostVisibleSize = Region, UnmappedAccess = UnmappedAccess.Fault });
        using var _ = backend;
        using var __ = vm;
        using var blob = new BlobMemory(0x10000);
        // Warm up (JIT, first buffers), then measure.
        Cycle(device, 200, blob, out var warmUp);
        Assert.Equal(200, warmUp.Length);
        int fds = ProcessResources.OpenFds();
        int mapsLines = File.ReadAllLines("/proc/self/maps").Length;
        int regionLines = HostVisibleFrontEndTests.MapsLines(vm.HostVisible!.Address, Region).Count;
        int memfdLines = MemfdLines();

        var sw = Stopwatch.StartNew();
        Cycle(device, cycles, blob, out var mapUs);
        sw.Stop();

        int fdsAfter = ProcessResources.OpenFds();
        int mapsAfter = File.ReadAllLines("/proc/self/maps").Length;
        int regionAfter = HostVisibleFrontEndTests.MapsLines(vm.HostVisible.Address, Region).Count;
        int memfdAfter = MemfdLines();
        Array.Sort(mapUs);
        output.WriteLine($"{cycles} map+unmap cycles in {sw.Elapsed.TotalMilliseconds:F0} ms; SHMEM_MAP round trip (device → back-end channel → reference front-end mmap → ack → device): " +
                         $"mean {mapUs.Average():F1} µs, p50 {mapUs[cycles / 2]:F1} µs, p99 {mapUs[cycles * 99 / 100]:F1} µs, max {mapUs[^1]:F1} µs");
        output.WriteLine($"fds {fds} → {fdsAfter}; /proc/self/maps lines: vgh memfd mappings {memfdLines} → {memfdAfter}, inside the region {regionLines} → {regionAfter}, " +
                         $"whole process {mapsLines} → {mapsAfter} (the runtime's heaps and thread stacks included)");
        Assert.Equal(regionLines, regionAfter);
        Assert.Equal(memfdLines, memfdAfter);
        Assert.True(fdsAfter <= fds, $"fds grew from {fds} to {fdsAfter}");
        Assert.Equal(cycles + 200L, vm.HostVisible.MapsDone);
        Assert.Equal(cycles + 200L, vm.HostVisible.UnmapsDone);
        Assert.Empty(vm.HostVisible.Mappings);
    }

    private static int MemfdLines() => File.ReadAllLines("/proc/self/maps").Count(l => l.Contains("/memfd:vgh-", StringComparison.Ordinal)); // ours (the runtime maps memfd:doublemapper for code)

    private static void Cycle(VhostUserGpuDevice device, int cycles, BlobMemory blob, out double[] mapUs)
    {
        var times = new double[cycles];
        int good = OnLoop(device, async () =>
        {
            int ok = 0;
            for (int i = 0; i < cycles; i++)
            {
                ulong at = (ulong)(i % 512) * 0x10000;
                long t0 = Stopwatch.GetTimestamp();
                bool mapped = await device.HostVisible!.MapAsync(blob.Block, 0, at, 0x10000, writable: true);
                times[i] = Stopwatch.GetElapsedTime(t0).TotalMicroseconds;
                if (mapped && await device.HostVisible.UnmapAsync(at, 0x10000)) ok++;
            }
            return ok;
        }, timeoutSeconds: 300);
        Assert.Equal(cycles, good);
        mapUs = times;
    }

    /// <summary>A back-end blob: a memfd-backed block (what the device engineer's HOST3D blobs are).</summary>
    private sealed class BlobMemory(ulong size) : IDisposable
    {
        public MappedBlock Block { get; } = MappedBlock.CreateMemFd("vgh-hve2e-blob", size);
        public void Dispose() => Block.Release();
    }
}
