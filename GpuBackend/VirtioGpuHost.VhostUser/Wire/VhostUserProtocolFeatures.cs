namespace VirtioGpuHost.VhostUser.Wire;

/// <summary>vhost-user protocol feature bits (vhost-user.rst "Protocol features").</summary>
[Flags]
public enum VhostUserProtocolFeatures : ulong
{
    None = 0,
    Mq = 1UL << 0,
    LogShmfd = 1UL << 1,
    Rarp = 1UL << 2,
    ReplyAck = 1UL << 3,
    Mtu = 1UL << 4,
    BackendReq = 1UL << 5,
    CrossEndian = 1UL << 6,
    CryptoSession = 1UL << 7,
    Pagefault = 1UL << 8,
    Config = 1UL << 9,
    BackendSendFd = 1UL << 10,
    HostNotifier = 1UL << 11,
    InflightShmfd = 1UL << 12,
    ResetDevice = 1UL << 13,
    InbandNotifications = 1UL << 14,
    ConfigureMemSlots = 1UL << 15,
    Status = 1UL << 16,
    XenMmap = 1UL << 17,
    SharedObject = 1UL << 18,
    DeviceState = 1UL << 19,
    GetVringBaseInflight = 1UL << 20,
    GpaAddresses = 1UL << 21,
    /// <summary>SHMEM_MAP/UNMAP + GET_SHMEM_CONFIG: bit 22 in the merged spec (20 and 21 in drafts).</summary>
    Shmem = 1UL << 22,
}

/// <summary>Feature bits that belong to vhost-user rather than to the device.</summary>
public static class VhostUserFeatures
{
    /// <summary>VHOST_USER_F_PROTOCOL_FEATURES: bit 30 of GET_FEATURES, never shown to the guest.</summary>
    public const ulong ProtocolFeatures = 1UL << 30;

    /// <summary>VHOST_F_LOG_ALL (bit 26): offered by libvhost-user; we do not offer dirty logging.</summary>
    public const ulong LogAll = 1UL << 26;
}
