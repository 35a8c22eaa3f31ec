using System.Collections.Concurrent;
using VirtioGpuHost.GuestMemory;
using VirtioGpuHost.Virtio;
using VirtioGpuHost.VhostUser.Backend;
using VirtioGpuHost.VhostUser.Transport;
using VirtioGpuHost.VhostUser.Wire;

namespace VirtioGpuHost.UnitTests.VhostUser;

/// <summary>
/// A small device behind the real handler: two rings whose chains it returns at once
/// (used length 0), a 16-byte config space of 0xA0+offset bytes, one device request id of
/// its own (<see cref="DeviceRequest"/>), and a log of every call it got.
/// </summary>
internal sealed class RecordingDevice : IVhostUserDevice
{
    /// <summary>A request id outside vhost-user.rst's range that this device claims.</summary>
    public const uint DeviceRequest = 1000;

    private readonly byte[] _config = Enumerable.Range(0, 16).Select(i => (byte)(0xA0 + i)).ToArray();

    public ConcurrentQueue<string> Calls { get; } = new();
    public ulong AckedFeatures { get; private set; }
    public int ChainsCompleted;

    public int QueueCount => 2;
    public int MaxQueueSize => 1024;
    public ulong Features => VirtioFeatures.Version1 | VirtioFeatures.EventIdx | VirtioFeatures.IndirectDesc;
    public VhostUserProtocolFeatures ProtocolFeatures => VhostUserProtocolFeatures.Config;
    public IReadOnlyDictionary<byte, ulong> SharedMemoryRegions { get; } = new Dictionary<byte, ulong>();

    public bool Has(string call) => Calls.Contains(call);

    public void Attach(IVhostUserBackendServices services) => Calls.Enqueue("attach");

    public void AcknowledgeFeatures(ulong features)
    {
        AckedFeatures = features;
        Calls.Enqueue($"features 0x{features:x}");
    }

    public bool ReadConfig(uint offset, Span<byte> data)
    {
        if (offset > _config.Length || (uint)data.Length > _config.Length - offset) return false;
        _config.AsSpan((int)offset, data.Length).CopyTo(data);
        return true;
    }

    public bool WriteConfig(uint offset, ReadOnlySpan<byte> data, uint flags)
    {
        if (offset > _config.Length || (uint)data.Length > _config.Length - offset) return false;
        data.CopyTo(_config.AsSpan((int)offset));
        return true;
    }

    public void QueueStarted(VirtqueueContext queue) => Calls.Enqueue($"started {queue.Index}");

    public void QueueKicked(VirtqueueContext queue)
    {
        Calls.Enqueue($"kicked {queue.Index}");
        while (queue.IsReady && queue.Queue.TryPop(out var chain, out _))
        {
            queue.Queue.AddUsed(chain!.Head, 0);
            Interlocked.Increment(ref ChainsCompleted);
            queue.NotifyIfNeeded();
        }
    }

    public void QueueStopping(VirtqueueContext queue) => Calls.Enqueue($"stopping {queue.Index}");

    public void MemoryChanged(GuestMemoryMap memory) => Calls.Enqueue($"memory {memory.Regions.Count}");

    public bool? HandleDeviceRequest(ReceivedMessage message)
    {
        if (message.Header.Request != DeviceRequest) return null;
        Calls.Enqueue("device request");
        return message.Payload.Length == 0;
    }

    public void Reset() => Calls.Enqueue("reset");
}
