using System.Buffers.Binary;
using VirtioGpuHost.FrontEnd;
using VirtioGpuHost.GuestMemory;
using VirtioGpuHost.Interop;
using VirtioGpuHost.VhostUser.Transport;
using VirtioGpuHost.VhostUser.Wire;
using static Tmds.Linux.LibC;

namespace VirtioGpuHost.UnitTests.VhostUser;

/// <summary>
/// The reference front-end's host-visible region and its back-end channel server, driven by a
/// hand-played back-end: every bad SHMEM_MAP/UNMAP is refused naming its field with the other
/// mappings intact, unmapped ranges fault or read zero, guest access never faults, and nothing
/// the back-end sends crashes the front-end or leaks an fd.
/// </summary>
[Collection(ProcessWideCollection.Name)]
public unsafe class HostVisibleFrontEndTests
{
    private const ulong Size = 16UL << 20;
    private const uint NeedReply = VhostUserHeader.Version | VhostUserHeader.FlagNeedReply;

    private sealed class Setup : IDisposable
    {
        public Setup(UnmappedAccess mode = UnmappedAccess.Fault, ulong size = Size)
        {
            Region = new HostVisibleRegion(size, mode);
            var (mine, theirs) = UnixSocket.CreatePair();
            Server = new BackendChannelServer(mine, replyAck: true, Region);
            UnixSocket.SetReceiveTimeout(theirs, TimeSpan.FromSeconds(10));
            BackEnd = new FramedSocket(theirs);
        }

        public HostVisibleRegion Region { get; }
        public BackendChannelServer Server { get; }
        public FramedSocket BackEnd { get; }

        /// <summary>Sends one request with NEED_REPLY and returns the ack (0 = done).</summary>
        public ulong Request(VhostUserBackendRequest request, ShmemMapRequest r, params FdHandle[] fds)
        {
            var p = new byte[ShmemMapRequest.Size];
            r.Write(p);
            return Raw((uint)request, NeedReply, p, fds);
        }

        public ulong Raw(uint request, uint flags, byte[] payload, params FdHandle[] fds)
        {
            BackEnd.Send(request, flags, payload, fds);
            using var reply = BackEnd.Receive() ?? throw new IOException("the front-end closed the channel");
            Assert.Equal(request, reply.Header.Request);
            Assert.Equal(VhostUserHeader.Version | VhostUserHeader.FlagReply, reply.Header.Flags);
            Assert.Equal(8, reply.Payload.Length);
            Assert.Equal(0, reply.Fds.Count);
            return BinaryPrimitives.ReadUInt64LittleEndian(reply.Payload);
        }

        public ulong Map(ulong shmOffset, ulong length, Blob blob, ulong fdOffset = 0, bool writable = true) =>
            Request(VhostUserBackendRequest.ShmemMap, new ShmemMapRequest(1, fdOffset, shmOffset, length, writable ? 1UL : 0), blob.Fd);

        public ulong Unmap(ulong shmOffset, ulong length) =>
            Request(VhostUserBackendRequest.ShmemUnmap, new ShmemMapRequest(1, 0, shmOffset, length, 0));

        public void Dispose()
        {
            BackEnd.Dispose();
            Server.Dispose();
            Region.Dispose();
        }
    }

    /// <summary>A back-end's blob: a memfd it also has mapped.</summary>
    private sealed class Blob : IDisposable
    {
        /// <param name="shrinkable">A memfd that can still be truncated (the back-end's own memfds are sealed against it).</param>
        public Blob(ulong size = 0x10000, byte fill = 0, bool shrinkable = false)
        {
            Memory = shrinkable
                ? MappedBlock.Map(MemFd.Create("vgh-hvfe-blob", size, allowSealing: false), 0, size)
                : MappedBlock.CreateMemFd("vgh-hvfe-blob", size);
            Memory.AsSpan(0, (int)size).Fill(fill);
        }

        public MappedBlock Memory { get; }
        public FdHandle Fd => Memory.Fd!;
        public Span<byte> Bytes => Memory.AsSpan(0, (int)Memory.Length);
        public void Dispose() => Memory.Release();
    }

    private static byte[] Read(HostVisibleRegion r, ulong offset, int n, HostVisibleAccess expected)
    {
        var b = new byte[n];
        b.AsSpan().Fill(0xEE);
        Assert.Equal(expected, r.Read(offset, b));
        return b;
    }

    [Fact]
    public void MapWriteReadUnmap_ThroughTheRegion_SharesTheBackEndsPages()
    {
        using var s = new Setup();
        using var blob = new Blob(0x20000, 0x11);
        Assert.Equal(0UL, s.Map(0x100000, 0x10000, blob, fdOffset: 0x10000));
        Assert.Equal([new HostVisibleMapping(0x100000, 0x10000, 0x10000, true)], s.Region.Mappings);
        // The guest sees the back-end's bytes, and the back-end the guest's.
        blob.Bytes[0x10000 + 5] = 0x42;
        Assert.Equal(0x42, Read(s.Region, 0x100005, 1, HostVisibleAccess.Mapped)[0]);
        Assert.Equal(HostVisibleAccess.Mapped, s.Region.Write(0x100000 + 0xfff0, new byte[] { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 }));
        Assert.Equal(16, blob.Bytes[0x10000 + 0xffff]);
        Assert.Equal(HostVisibleAccess.Mapped, s.Region.TryGetSpan(0x100000, 0x10000, out var span));
        Assert.Equal(0x11, span[0]);
        Assert.Equal(0UL, s.Unmap(0x100000, 0x10000));
        Assert.Empty(s.Region.Mappings);
        Assert.Equal((1L, 1L, 0L, 0L), (s.Region.MapsDone, s.Region.UnmapsDone, s.Region.MapsRefused, s.Region.UnmapsRefused));
    }

    public static TheoryData<string, string> BadMaps => new()
    {
        { "outside", "lies outside" },
        { "straddles the end", "lies outside" },
        { "overflowing offset", "lies outside" },
        { "overlaps the start", "overlaps the mapping" },
        { "overlaps the end", "overlaps the mapping" },
        { "inside", "overlaps the mapping" },
        { "same", "overlaps the mapping" },
        { "misaligned shm_offset", "shm_offset" },
        { "misaligned len", "len 0x" },
        { "misaligned fd_offset", "fd_offset" },
        { "len 0", "len is 0" },
        { "unknown shmid", "shmid 7" },
        { "shmid 0", "shmid 0" },
        { "unknown flags", "flags 0x" },
        { "no fd", "fd: 0 attached" },
        { "two fds", "fd: 2 attached" },
        { "fd too small", "fd: the file is" },
        { "fd offset past the file", "fd: the file is" },
        { "fd is an eventfd", "fd: the file is" },
        { "payload of 32 bytes", "payload is 32 bytes" },
        { "payload of 48 bytes", "payload is 48 bytes" },
    };

    [Theory]
    [MemberData(nameof(BadMaps))]
    public void BadMap_IsRefusedNamingTheField_OtherMappingsIntact(string name, string field)
    {
        int baseline = ProcessResources.OpenFds();
        using (var s = new Setup())
        using (var kept = new Blob(0x10000, 0x5A))
        using (var blob = new Blob(0x10000))
        {
            // An existing mapping at 0x400000..0x410000 that must survive every refusal.
            Assert.Equal(0UL, s.Map(0x400000, 0x10000, kept));
            var ok = new ShmemMapRequest(1, 0, 0x200000, 0x10000, 1);
            using var eventFd = EventFd.Create();
            ulong reply = name switch
            {
                "outside" => s.Request(VhostUserBackendRequest.ShmemMap, ok with { ShmOffset = Size }, blob.Fd),
                "straddles the end" => s.Request(VhostUserBackendRequest.ShmemMap, ok with { ShmOffset = Size - 0x1000 }, blob.Fd),
                "overflowing offset" => s.Request(VhostUserBackendRequest.ShmemMap, ok with { ShmOffset = ulong.MaxValue - 0xfff }, blob.Fd),
                "overlaps the start" => s.Request(VhostUserBackendRequest.ShmemMap, ok with { ShmOffset = 0x3f8000 }, blob.Fd),
                "overlaps the end" => s.Request(VhostUserBackendRequest.ShmemMap, ok with { ShmOffset = 0x40f000 }, blob.Fd),
                "inside" => s.Request(VhostUserBackendRequest.ShmemMap, ok with { ShmOffset = 0x404000, Length = 0x1000 }, blob.Fd),
                "same" => s.Request(VhostUserBackendRequest.ShmemMap, ok with { ShmOffset = 0x400000 }, blob.Fd),
                "misaligned shm_offset" => s.Request(VhostUserBackendRequest.ShmemMap, ok with { ShmOffset = 0x200800 }, blob.Fd),
                "misaligned len" => s.Request(VhostUserBackendRequest.ShmemMap, ok with { Length = 0x8800 }, blob.Fd),
                "misaligned fd_offset" => s.Request(VhostUserBackendRequest.ShmemMap, ok with { FdOffset = 0x10, Length = 0x1000 }, blob.Fd),
                "len 0" => s.Request(VhostUserBackendRequest.ShmemMap, ok with { Length = 0 }, blob.Fd),
                "unknown shmid" => s.Request(VhostUserBackendRequest.ShmemMap, ok with { ShmId = 7 }, blob.Fd),
                "shmid 0" => s.Request(VhostUserBackendRequest.ShmemMap, ok with { ShmId = 0 }, blob.Fd),
                "unknown flags" => s.Request(VhostUserBackendRequest.ShmemMap, ok with { Flags = 3 }, blob.Fd),
                "no fd" => s.Request(VhostUserBackendRequest.ShmemMap, ok),
                "two fds" => s.Request(VhostUserBackendRequest.ShmemMap, ok, blob.Fd, kept.Fd),
                "fd too small" => s.Request(VhostUserBackendRequest.ShmemMap, ok with { Length = 0x20000 }, blob.Fd),
                "fd offset past the file" => s.Request(VhostUserBackendRequest.ShmemMap, ok with { FdOffset = 0x10000, Length = 0x1000 }, blob.Fd),
                "fd is an eventfd" => s.Request(VhostUserBackendRequest.ShmemMap, ok, eventFd),
                "payload of 32 bytes" => s.Raw((uint)VhostUserBackendRequest.ShmemMap, NeedReply, new byte[32], blob.Fd),
                "payload of 48 bytes" => s.Raw((uint)VhostUserBackendRequest.ShmemMap, NeedReply, new byte[48], blob.Fd),
                _ => throw new ArgumentException(name),
            };
            Assert.NotEqual(0UL, reply);
            Assert.True(s.Server.Refused("ShmemMap", field), $"no refusal names '{field}': {string.Join(" | ", s.Server.Errors)}");
            // Nothing else changed: the mapping is there and reads the back-end's bytes; the rest faults.
            Assert.Equal([new HostVisibleMapping(0x400000, 0x10000, 0, true)], s.Region.Mappings);
            Assert.All(Read(s.Region, 0x400000, 0x10000, HostVisibleAccess.Mapped), b => Assert.Equal(0x5A, b));
            Read(s.Region, 0x200000, 16, HostVisibleAccess.Faulted);
            Assert.False(s.Server.Ended);
            Assert.Equal(0UL, s.Unmap(0x400000, 0x10000)); // the channel still works
        }
        ProcessResources.AssertFdsBackTo(baseline, "after the region and channel were disposed");
    }

    public static TheoryData<string, string> BadUnmaps => new()
    {
        { "never mapped", "no mapping with exactly" },
        { "partial: first half", "no mapping with exactly" },
        { "partial: offset inside", "no mapping with exactly" },
        { "larger", "no mapping with exactly" },
        { "unknown shmid", "shmid 2" },
        { "len 0", "len is 0" },
        { "an fd attached", "fd: 1 attached, expected none" },
        { "payload of 8 bytes", "payload is 8 bytes" },
    };

    [Theory]
    [MemberData(nameof(BadUnmaps))]
    public void BadUnmap_IsRefused_TheMappingStays(string name, string field)
    {
        int baseline = ProcessResources.OpenFds();
        using (var s = new Setup())
        using (var kept = new Blob(0x10000, 0x5A))
        {
            Assert.Equal(0UL, s.Map(0x400000, 0x10000, kept));
            var exact = new ShmemMapRequest(1, 0, 0x400000, 0x10000, 0);
            ulong reply = name switch
            {
                "never mapped" => s.Unmap(0x800000, 0x10000),
                "partial: first half" => s.Unmap(0x400000, 0x8000),
                "partial: offset inside" => s.Unmap(0x408000, 0x8000),
                "larger" => s.Unmap(0x400000, 0x20000),
                "unknown shmid" => s.Request(VhostUserBackendRequest.ShmemUnmap, exact with { ShmId = 2 }),
                "len 0" => s.Request(VhostUserBackendRequest.ShmemUnmap, exact with { Length = 0 }),
                "an fd attached" => s.Request(VhostUserBackendRequest.ShmemUnmap, exact, kept.Fd),
                "payload of 8 bytes" => s.Raw((uint)VhostUserBackendRequest.ShmemUnmap, NeedReply, new byte[8]),
                _ => throw new ArgumentException(name),
            };
            Assert.NotEqual(0UL, reply);
            Assert.True(s.Server.Refused("ShmemUnmap", field), $"no refusal names '{field}': {string.Join(" | ", s.Server.Errors)}");
            Assert.Single(s.Region.Mappings);
            Assert.All(Read(s.Region, 0x400000, 0x10000, HostVisibleAccess.Mapped), b => Assert.Equal(0x5A, b));
        }
        ProcessResources.AssertFdsBackTo(baseline, "after the region and channel were disposed");
    }

    [Fact]
    public void UnknownRequestsAndBadHeaders_AreRefused_NeverFatal()
    {
        using var s = new Setup();
        foreach (uint id in new uint[] { 0, 1, 2, 3, 4, 5, 6, 7, 8, 11, 12, 1006, 0xffffffff })
            Assert.Equal(1UL, s.Raw(id, NeedReply, new byte[40]));
        Assert.Equal(1UL, s.Raw((uint)VhostUserBackendRequest.ShmemUnmap, 0xA /* version 2 */, new byte[40]));
        Assert.True(s.Server.Refused("not implemented"));
        Assert.True(s.Server.Refused("header version 2"));
        // No NEED_REPLY: no reply, and the next request is still answered in order.
        s.BackEnd.Send(1234, VhostUserHeader.Version, new byte[3]);
        using var blob = new Blob();
        Assert.Equal(0UL, s.Map(0, 0x10000, blob));
        Assert.False(s.Server.Ended);
    }

    [Fact]
    public void Unmapped_FaultMode_AccessFaultsAndTouchesNothing()
    {
        using var s = new Setup(UnmappedAccess.Fault);
        using var blob = new Blob(0x10000, 0x33);
        Read(s.Region, 0, 16, HostVisibleAccess.Faulted);              // never mapped
        Assert.Equal(0UL, s.Map(0x10000, 0x10000, blob));
        Assert.Equal(0UL, s.Unmap(0x10000, 0x10000));
        var b = Read(s.Region, 0x10000, 16, HostVisibleAccess.Faulted);
        Assert.All(b, x => Assert.Equal(0xEE, x));                     // the buffer is untouched
        Assert.Equal(HostVisibleAccess.Faulted, s.Region.Write(0x10000, new byte[16]));
        Assert.Equal(HostVisibleAccess.Faulted, s.Region.TryGetSpan(0x10000, 16, out _));
        Assert.All(blob.Bytes.ToArray(), x => Assert.Equal(0x33, x));  // the memfd kept its content
        // An access that spans a mapped and an unmapped page faults as a whole.
        Assert.Equal(0UL, s.Map(0x20000, 0x10000, blob));
        Assert.Equal(HostVisibleAccess.Faulted, s.Region.Write(0x2fff0, new byte[32]));
        Assert.All(blob.Bytes.ToArray(), x => Assert.Equal(0x33, x));
        // The pages really are PROT_NONE: the whole range shows as ---p in /proc/self/maps.
        Assert.Contains(MapsLines(s.Region.Address, 0x10000), l => l.Contains(" ---p ", StringComparison.Ordinal));
        Assert.True(s.Region.UnmappedAccesses >= 4);
    }

    [Fact]
    public void Unmapped_ZeroMode_ReadsZeroWritesDropped_RemapShowsTheOldContent()
    {
        using var s = new Setup(UnmappedAccess.Zero);
        using var blob = new Blob(0x10000, 0x33);
        Assert.All(Read(s.Region, 0, 16, HostVisibleAccess.Zero), x => Assert.Equal(0, x));
        Assert.Equal(0UL, s.Map(0x10000, 0x10000, blob));
        Assert.Equal(HostVisibleAccess.Mapped, s.Region.Write(0x10000, new byte[] { 7 }));
        Assert.Equal(0UL, s.Unmap(0x10000, 0x10000));
        Assert.All(Read(s.Region, 0x10000, 64, HostVisibleAccess.Zero), x => Assert.Equal(0, x));
        Assert.Equal(HostVisibleAccess.Zero, s.Region.Write(0x10000, new byte[] { 9, 9, 9 }));
        Assert.Equal(7, blob.Bytes[0]);                                 // the write was dropped
        Assert.Equal(0x33, blob.Bytes[1]);
        Assert.True(s.Region.DroppedWrites >= 1);
        // The raw pages read as zero too (PROT_READ anonymous), so even a raw reader never faults.
        Assert.Contains(MapsLines(s.Region.Address + 0x10000, 0x10000), l => l.Contains(" r--p ", StringComparison.Ordinal));
        // Mapped again: the memfd's old content comes back (as with QEMU 11.1).
        Assert.Equal(0UL, s.Map(0x10000, 0x10000, blob));
        Assert.Equal(new byte[] { 7, 0x33 }, Read(s.Region, 0x10000, 2, HostVisibleAccess.Mapped));
        // A span over mapped and unmapped: mapped part read, the rest zero.
        var mixed = Read(s.Region, 0x1fff0, 32, HostVisibleAccess.Zero);
        Assert.All(mixed.AsSpan(0, 16).ToArray(), x => Assert.Equal(0x33, x));
        Assert.All(mixed.AsSpan(16).ToArray(), x => Assert.Equal(0, x));
    }

    [Fact]
    public void ReadOnlyMapping_WritesAreDropped()
    {
        using var s = new Setup();
        using var blob = new Blob(0x10000, 0x44);
        Assert.Equal(0UL, s.Map(0, 0x10000, blob, writable: false));
        Assert.Equal(HostVisibleAccess.ReadOnly, s.Region.Write(0, new byte[] { 1 }));
        Assert.Equal(0x44, blob.Bytes[0]);
        Assert.Equal(0x44, Read(s.Region, 0, 1, HostVisibleAccess.Mapped)[0]);
        Assert.Equal(HostVisibleAccess.ReadOnly, s.Region.TryGetSpan(0, 16, out var span));
        Assert.Equal(0x44, span[0]);
        Assert.Contains(MapsLines(s.Region.Address, 0x10000), l => l.Contains(" r--s ", StringComparison.Ordinal));
    }

    [Fact]
    public void BackEndShrinksItsMemfd_AccessFaultsInsteadOfSigbus()
    {
        using var s = new Setup(UnmappedAccess.Zero);
        using var blob = new Blob(0x10000, 0x21, shrinkable: true);
        Assert.Equal(0UL, s.Map(0, 0x10000, blob));
        Assert.Equal(0, ftruncate(blob.Fd.Number, 0x1000));
        Assert.All(Read(s.Region, 0x8000, 16, HostVisibleAccess.Zero), x => Assert.Equal(0, x));
        Assert.Equal(HostVisibleAccess.Zero, s.Region.Write(0x8000, new byte[16]));
        Assert.Equal(HostVisibleAccess.Zero, s.Region.TryGetSpan(0, 16, out _));
        Assert.Equal(0UL, s.Unmap(0, 0x10000));
    }

    [Fact]
    public void GarbageFlood_FrontEndSurvives_NoFdLeaks()
    {
        int baseline = ProcessResources.OpenFds();
        var rng = new Random(1234);
        using (var s = new Setup())
        using (var blob = new Blob(0x10000))
        {
            for (int i = 0; i < 3000; i++)
            {
                uint id = (uint)rng.Next(0, 14);
                int size = rng.Next(4) switch { 0 => 40, 1 => 0, 2 => rng.Next(0, 128), _ => rng.Next(0, 4096) };
                var payload = new byte[size];
                rng.NextBytes(payload);
                if (size >= 40 && rng.Next(2) == 0) payload[0] = 1; // a valid shmid now and then
                var fds = Enumerable.Range(0, rng.Next(0, 4)).Select(_ => rng.Next(2) == 0 ? blob.Fd.Duplicate() : EventFd.Create()).ToArray();
                try
                {
                    ulong ack = s.Raw(id, NeedReply, payload, fds);
                    if (ack == 0) Assert.True(id is 9 or 10);
                }
                finally
                {
                    foreach (var fd in fds) fd.Dispose();
                }
            }
            Assert.False(s.Server.Ended);
            s.Region.UnmapAll();
            // A frame past the size limit breaks the framing: the channel ends, the process goes on.
            s.BackEnd.Send(9, NeedReply, new byte[8192]);
            Assert.True(ProcessResources.WaitUntil(() => s.Server.Ended, TimeSpan.FromSeconds(10)));
        }
        ProcessResources.AssertFdsBackTo(baseline, "after the flood");
    }

    /// <summary>/proc/self/maps lines that overlap [address, +length).</summary>
    internal static List<string> MapsLines(nint address, ulong length)
    {
        ulong lo = (ulong)address, hi = lo + length;
        var lines = new List<string>();
        foreach (var l in File.ReadAllLines("/proc/self/maps"))
        {
            var range = l[..l.IndexOf(' ')].Split('-');
            ulong start = Convert.ToUInt64(range[0], 16), end = Convert.ToUInt64(range[1], 16);
            if (start < hi && end > lo) lines.Add(l);
        }
        return lines;
    }

    [Theory]
    [InlineData(2056, 1, 1, 64UL << 20, 64UL << 20, null)]
    [InlineData(2056, 2, 1, 64UL << 20, 64UL << 20, null)]             // QEMU also accepts highest shmid + 1
    [InlineData(2048, 1, 1, 64UL << 20, 0UL, "reply is 2048 bytes")]
    [InlineData(2056, 3, 1, 64UL << 20, 0UL, "nregions 3")]
    [InlineData(2056, 0, 1, 64UL << 20, 0UL, "nregions 0")]
    [InlineData(2056, 1, 2, 64UL << 20, 0UL, "no region with shmid 1")]
    [InlineData(2056, 1, 1, 0x3000000UL, 0UL, "not a power of two")]
    [InlineData(2056, 1, 1, 0x800UL, 0UL, "not a page multiple")]
    [InlineData(2056, 1, 1, 128UL << 30, 0UL, "exceeds")]
    public void ParseShmemConfig_ValidatesTheReply(int length, uint nregions, int shmid, ulong size, ulong expected, string? error)
    {
        var reply = new byte[length];
        BinaryPrimitives.WriteUInt32LittleEndian(reply, nregions);
        if (8 + 8 * shmid + 8 <= length) BinaryPrimitives.WriteUInt64LittleEndian(reply.AsSpan(8 + 8 * shmid), size);
        var (got, why) = GpuVm.ParseShmemConfig(reply, HostVisibleRegion.MaxSize);
        Assert.Equal(expected, got);
        if (error is null) Assert.Null(why);
        else Assert.Contains(error, why);
    }
}
