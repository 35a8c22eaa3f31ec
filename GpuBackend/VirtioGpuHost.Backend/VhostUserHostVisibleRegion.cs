using Microsoft.Extensions.Logging;
using VirtioGpuHost.Device.HostVisible;
using VirtioGpuHost.GuestMemory;
using VirtioGpuHost.VhostUser.Backend;
using VirtioGpuHost.VhostUser.Wire;

namespace VirtioGpuHost.Backend;

/// <summary>
/// The VMM's host-visible region (shmid 1) over vhost-user: MAP_BLOB becomes BACKEND_SHMEM_MAP
/// with the blob's fd on the back-end channel, UNMAP_BLOB becomes BACKEND_SHMEM_UNMAP; both
/// complete asynchronously on the connection's event loop (the loop keeps serving the main
/// socket and the rings while the front-end answers). The channel is looked up at each call:
/// when it is gone (never given, failed, closed) requests fail at once.
/// </summary>
public sealed class VhostUserHostVisibleRegion : IHostVisibleRegion
{
    /// <summary>VIRTIO_GPU_SHM_ID_HOST_VISIBLE.</summary>
    public const byte ShmId = 1;

    private readonly IVhostUserBackendServices _services;
    private readonly ILogger _log;

    public VhostUserHostVisibleRegion(ulong size, IVhostUserBackendServices services, ILogger logger)
    {
        Size = size;
        _services = services;
        _log = logger;
    }

    public ulong Size { get; }

    /// <summary>Counters.</summary>
    public long MapsRequested => Interlocked.Read(ref _mapsRequested);
    public long MapsSucceeded => Interlocked.Read(ref _mapsSucceeded);
    public long UnmapsRequested => Interlocked.Read(ref _unmapsRequested);
    public long UnmapsSucceeded => Interlocked.Read(ref _unmapsSucceeded);
    private long _mapsRequested, _mapsSucceeded, _unmapsRequested, _unmapsSucceeded;

    public Task<bool> MapAsync(MemoryBlock memory, ulong offset, ulong shmOffset, ulong length, bool writable)
    {
        Interlocked.Increment(ref _mapsRequested);
        var channel = _services.BackendChannel;
        if (channel is null || channel.IsClosed)
            return Refuse($"SHMEM_MAP at 0x{shmOffset:x} +0x{length:x}: no back-end channel");
        if (memory.Fd is not { IsClosed: false } fd)
            return Refuse($"SHMEM_MAP at 0x{shmOffset:x} +0x{length:x}: the blob's memory has no fd to share");
        if (!InRange(shmOffset, length))
            return Refuse($"SHMEM_MAP at 0x{shmOffset:x} +0x{length:x}: outside the 0x{Size:x}-byte region");
        if (offset > memory.Length || length > memory.Length - offset)
            return Refuse($"SHMEM_MAP at 0x{shmOffset:x} +0x{length:x}: blob range 0x{offset:x} +0x{length:x} is outside its 0x{memory.Length:x} bytes");
        var request = new ShmemMapRequest(ShmId, memory.FdOffset + offset, shmOffset, length, writable ? ShmemMapRequest.FlagReadWrite : 0);
        return Count(channel.MapAsync(request, fd), map: true);
    }

    public Task<bool> UnmapAsync(ulong shmOffset, ulong length)
    {
        Interlocked.Increment(ref _unmapsRequested);
        var channel = _services.BackendChannel;
        if (channel is null || channel.IsClosed)
            return Refuse($"SHMEM_UNMAP at 0x{shmOffset:x} +0x{length:x}: no back-end channel");
        if (!InRange(shmOffset, length))
            return Refuse($"SHMEM_UNMAP at 0x{shmOffset:x} +0x{length:x}: outside the 0x{Size:x}-byte region");
        return Count(channel.UnmapAsync(new ShmemMapRequest(ShmId, 0, shmOffset, length, 0)), map: false);
    }

    private bool InRange(ulong shmOffset, ulong length) => length != 0 && shmOffset <= Size && length <= Size - shmOffset;

    /// <summary>
    /// The channel's result, counted before the caller sees it (so a caller that saw success also
    /// sees the counter); it completes on the thread pool even when the loop has ended.
    /// </summary>
    private Task<bool> Count(Task<bool> request, bool map) =>
        request.ContinueWith(t =>
        {
            bool ok = t.GetAwaiter().GetResult(); // rethrows the original exception, if any
            if (ok) Interlocked.Increment(ref map ? ref _mapsSucceeded : ref _unmapsSucceeded);
            return ok;
        }, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);

    private Task<bool> Refuse(string what)
    {
        _log.LogWarning("{Conn}: host-visible region: {What}", _services.ConnectionName, what);
        return Task.FromResult(false);
    }
}
