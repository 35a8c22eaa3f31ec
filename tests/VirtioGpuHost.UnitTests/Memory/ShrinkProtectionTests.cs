using Tmds.Linux;
using VirtioGpuHost.GuestMemory;
using VirtioGpuHost.Interop;

namespace VirtioGpuHost.UnitTests.Memory;

/// <summary>
/// A file another process shares with us (guest RAM, a client buffer) that it truncates under our
/// mapping must not crash the process (SIGBUS kills .NET): sealed against shrinking where the kernel
/// allows, else guarded (the fault becomes zero pages). These tests really truncate the file and
/// touch the memory through GuestMemoryMap, the path every guest access takes.
/// </summary>
public class ShrinkProtectionTests
{
    private const ulong Size = 1 << 20;

    private static void SkipWithoutGuard() =>
        Assert.SkipUnless(SigbusGuard.IsAvailable, $"the SIGBUS guard is not available: {SigbusGuard.UnavailableReason}");

    private static unsafe int Truncate(FdHandle fd, ulong size)
    {
        bool added = false;
        fd.DangerousAddRef(ref added);
        try { return LibC.ftruncate(fd.Number, (off_t)(long)size) == 0 ? 0 : LibC.errno; }
        finally { if (added) fd.DangerousRelease(); }
    }

    private static (GuestMemoryMap Map, MappedBlock Block, FdHandle Fd) MapFile(FdHandle fd)
    {
        var owner = fd.Duplicate(); // the "front-end's" copy, which it truncates
        var block = MappedBlock.Map(fd, 0, Size);
        var map = GuestMemoryMap.Create([new GuestRegion(new GuestAddress(0x1000_0000), Size, 0x7000_0000, 0, block)]);
        block.Release(); // the map holds it
        return (map, block, owner);
    }

    [Fact]
    public void SealableMemfd_SealedAtMap_TruncationRefusedByTheKernel()
    {
        var (map, block, owner) = MapFile(MemFd.Create("vgh-sealable", Size));
        using var _ = map;
        using var __ = owner;
        Assert.Equal(ShrinkProtection.Sealed, block.Protection);
        Assert.True(map.TryWrite(new GuestAddress(0x1000_0000 + Size - 4), 0xAABBCCDDu));
        Assert.Equal(1, Truncate(owner, 0)); // EPERM
        Assert.True(map.TryRead(new GuestAddress(0x1000_0000 + Size - 4), out uint v));
        Assert.Equal(0xAABBCCDDu, v);
        Assert.Equal(0, Truncate(owner, 2 * Size)); // growing stays allowed (QEMU never needs it, but it is harmless)
    }

    [Fact]
    public void UnsealableMemfd_TruncatedThenRead_ZerosAndFaulted_NoCrash()
    {
        SkipWithoutGuard();
        var (map, block, owner) = MapFile(MemFd.Create("vgh-unsealable", Size, allowSealing: false));
        using var _ = map;
        using var __ = owner;
        Assert.Equal(ShrinkProtection.Guarded, block.Protection);
        Assert.True(map.TryWrite(new GuestAddress(0x1000_0000), 0x11223344u));
        Assert.False(block.Faulted);
        long before = SigbusGuard.TotalFaults;

        Assert.Equal(0, Truncate(owner, 0));
        var bytes = new byte[64 << 10];
        Assert.True(map.TryRead(new GuestAddress(0x1000_0000 + Size / 2), bytes)); // past the new end: would be SIGBUS
        Assert.All(bytes, b => Assert.Equal(0, b));
        Assert.True(block.Faulted);
        Assert.True(SigbusGuard.TotalFaults > before);

        // The whole mapping is now private zero pages: writes land there, nobody else sees them.
        Assert.True(map.TryWrite(new GuestAddress(0x1000_0000 + 8), 0x55667788u));
        Assert.True(map.TryRead(new GuestAddress(0x1000_0000 + 8), out uint v));
        Assert.Equal(0x55667788u, v);
    }

    [Fact]
    public void TmpfsFile_ShrunkToHalf_WriteAndCopyPastTheEnd_NoCrash()
    {
        SkipWithoutGuard();
        string path = $"/dev/shm/vgh-shrink-{Environment.ProcessId}-{Guid.NewGuid():N}";
        if (!Directory.Exists("/dev/shm")) path = Path.Combine(Path.GetTempPath(), Path.GetFileName(path));
        using (var f = File.Create(path)) f.SetLength((long)Size);
        try
        {
            using var fs = new FileStream(path, FileMode.Open, FileAccess.ReadWrite);
            var fd = new FdHandle((int)fs.SafeFileHandle.DangerousGetHandle(), ownsHandle: false).Duplicate();
            var (map, block, owner) = MapFile(fd);
            using var _ = map;
            using var __ = owner;
            Assert.Equal(ShrinkProtection.Guarded, block.Protection);
            Assert.Equal(0, Truncate(owner, Size / 2));
            // Bulk copy across the new end (the CPU renderer and transfers use the same spans).
            var slices = new List<MemorySlice>();
            Assert.True(map.TryGetSlices(new GuestAddress(0x1000_0000), Size, slices));
            new byte[Size].AsSpan().CopyTo(slices[0].Span);
            Assert.True(block.Faulted);
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void GuardedMapping_Disposed_SlotReusable()
    {
        SkipWithoutGuard();
        // Far more mappings than the guard's table (16384) over time: every slot comes back on unmap.
        for (int i = 0; i < 20000; i++)
        {
            using var fd = MemFd.Create("vgh-slot", 4096, allowSealing: false);
            using var m = MappedMemory.Map(fd, 0, 4096, guard: true);
            Assert.True(m.Guarded, $"mapping {i} was not guarded");
        }
    }

    [Fact]
    public void OwnMemfds_SealedAgainstResizing()
    {
        var block = MappedBlock.CreateMemFd("vgh-own", 8192);
        try
        {
            Assert.Equal(ShrinkProtection.Sealed, block.Protection);
            Assert.Equal(1, Truncate(block.Fd!, 0));
        }
        finally { block.Release(); }
    }
}
