namespace VirtioGpuHost.Virtio;

/// <summary>
/// Why a queue can no longer be processed. Each is a driver bug or an attack; the queue
/// stops (the device would set DEVICE_NEEDS_RESET) and the error fd is signalled.
/// </summary>
public enum QueueError
{
    None,
    NotReady,
    RingNotInGuestMemory,
    AvailIndexTooFarAhead,
    HeadOutOfRange,
    NextOutOfRange,
    ChainTooLong,
    IndirectNotNegotiated,
    NestedIndirect,
    IndirectWithNext,
    IndirectTableInvalid,
    ReadableAfterWritable,
    BufferNotInGuestMemory,
    BufferTooLarge,
}
