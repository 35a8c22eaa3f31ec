namespace VirtioGpuHost.Virtio;

/// <summary>Device-independent virtio feature bits (virtio 1.x §6).</summary>
public static class VirtioFeatures
{
    public const ulong NotifyOnEmpty = 1UL << 24;
    public const ulong AnyLayout = 1UL << 27;
    public const ulong IndirectDesc = 1UL << 28;
    public const ulong EventIdx = 1UL << 29;
    public const ulong Version1 = 1UL << 32;
    public const ulong AccessPlatform = 1UL << 33;
    public const ulong RingPacked = 1UL << 34;
    public const ulong InOrder = 1UL << 35;
    public const ulong RingReset = 1UL << 40;
}
