using VirtioGpuHost.Device.Wire;
using VirtioGpuHost.FrontEnd;
using VirtioGpuHost.Interop;
using VirtioGpuHost.Virtio;
using VirtioGpuHost.VhostUser.Wire;

namespace VirtioGpuHost.UnitTests.VhostUser;

/// <summary>
/// Guest RAM, two driver rings and their eventfds, set up step by step over a raw
/// <see cref="VhostUserFrontEnd"/> (so that a test can leave out or reorder a step, unlike
/// <see cref="GpuVm"/>, which does QEMU's whole sequence).
/// </summary>
internal sealed class RawVm : IDisposable
{
    public const ulong DefaultFeatures =
        VirtioFeatures.Version1 | VirtioFeatures.EventIdx | VirtioFeatures.IndirectDesc | VirtioGpuFeatures.Edid | VhostUserFeatures.ProtocolFeatures;

    public RawVm(VhostUserFrontEnd frontEnd, ulong ramSize = 16UL << 20, ushort controlSize = 64, ushort cursorSize = 16)
    {
        FrontEnd = frontEnd;
        Ram = GuestRam.CreateShared(ramSize);
        Control = new DriverQueue(Ram, 0, controlSize);
        Cursor = new DriverQueue(Ram, 1, cursorSize);
        Driver = new GpuDriver(Ram, Control, Cursor, new EventFdNotifier(q => Kick[q], q => Call[q])) { Timeout = TimeSpan.FromSeconds(10) };
    }

    public VhostUserFrontEnd FrontEnd { get; }
    public GuestRam Ram { get; }
    public DriverQueue Control { get; }
    public DriverQueue Cursor { get; }
    public GpuDriver Driver { get; }
    public FdHandle[] Kick { get; } = [EventFd.Create(), EventFd.Create()];
    public FdHandle[] Call { get; } = [EventFd.Create(), EventFd.Create()];
    public FdHandle[] Err { get; } = [EventFd.Create(), EventFd.Create()];

    public DriverQueue Queue(int index) => index == 0 ? Control : Cursor;

    /// <summary>The guest RAM as one memory region (front-end address = our mapping).</summary>
    public MemoryRegionDescriptor Region => new(Ram.GuestBase.Value, Ram.Size, (ulong)Ram.Block.Address, 0);

    public VringAddress Address(int index)
    {
        var q = Queue(index);
        return new VringAddress((uint)index, 0, Ram.UserAddress(q.Descriptors), Ram.UserAddress(q.Used), Ram.UserAddress(q.Avail), 0);
    }

    public void SetFeatures(ulong features = DefaultFeatures) => Assert.True(FrontEnd.SetFeatures(features), "SET_FEATURES refused");

    public void SetMemTable() => Assert.True(FrontEnd.SetMemTable([(Region, Ram.Fd)]), "SET_MEM_TABLE refused");

    /// <summary>
    /// QEMU's per-ring sequence (NUM, BASE, ADDR, then the fds), with ERR first as QEMU sets it at
    /// init; <paramref name="kick"/> and <paramref name="enable"/> leave out the last steps.
    /// </summary>
    public void SetUpRing(int index, uint baseIndex = 0, bool kick = true, bool enable = true)
    {
        var fe = FrontEnd;
        uint i = (uint)index;
        Assert.True(fe.SetVringFd(VhostUserRequest.SetVringErr, i, Err[index]));
        Assert.True(fe.SetVringNum(i, Queue(index).Size));
        Assert.True(fe.SetVringBase(i, baseIndex));
        Assert.True(fe.SetVringAddr(Address(index)));
        Assert.True(fe.SetVringFd(VhostUserRequest.SetVringCall, i, Call[index]));
        if (kick) Assert.True(fe.SetVringFd(VhostUserRequest.SetVringKick, i, Kick[index]));
        if (enable) Assert.True(fe.SetVringEnable(i, true));
    }

    /// <summary>SET_FEATURES, SET_MEM_TABLE and both rings, started and enabled.</summary>
    public void Start(ulong features = DefaultFeatures)
    {
        SetFeatures(features);
        SetMemTable();
        SetUpRing(0);
        SetUpRing(1);
    }

    /// <summary>True when the device put <paramref name="count"/> or more entries in the control ring's used ring.</summary>
    public bool WaitForUsed(int index, ushort count, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            if ((ushort)(Queue(index).ReadUsedIndex() - count) < 0x8000) return true;
            Poller.WaitReadable(Call[index], 20);
            EventFd.Drain(Call[index]);
        }
        return false;
    }

    public void Dispose()
    {
        foreach (var fd in Kick.Concat(Call).Concat(Err)) fd.Dispose();
        Ram.Dispose();
    }
}
