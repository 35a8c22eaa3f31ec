using CsCheck;
using VirtioGpuHost.GuestMemory;

namespace VirtioGpuHost.UnitTests.Memory;

/// <summary>
/// GuestMemoryMap over real native blocks: building snapshots, address translation, bounds-checked
/// access that may span regions, and the reference counting that keeps blocks mapped while any
/// snapshot holding them lives.
/// </summary>
public class GuestMemoryMapTests
{
    /// <summary>Blocks created by a test; the creator's reference is dropped once the map holds them.</summary>
    private static GuestRegion Region(ulong gpa, ulong size, ulong? user = null, byte fill = 0) =>
        Region(gpa, size, out _, user, fill);

    private static GuestRegion Region(ulong gpa, ulong size, out TrackedBlock block, ulong? user = null, byte fill = 0)
    {
        block = TrackedBlock.Allocate(size, fill);
        return new GuestRegion(new GuestAddress(gpa), size, user ?? (ulong)block.Address, 0, block);
    }

    /// <summary>A map of <paramref name="regions"/> holding the only references to their blocks.</summary>
    private static GuestMemoryMap Build(params GuestRegion[] regions)
    {
        var map = GuestMemoryMap.Create(regions);
        foreach (var r in regions) r.Block.Release();
        return map;
    }

    // ---- Create ----

    [Fact]
    public void Create_UnsortedRegions_SortsByGuestAddress()
    {
        using var map = Build(Region(0x30000, 0x1000), Region(0x10000, 0x1000), Region(0x20000, 0x1000));

        Assert.Equal([0x10000UL, 0x20000UL, 0x30000UL], map.Regions.Select(r => r.GuestStart.Value));
        Assert.Equal(0x3000UL, map.TotalSize);
    }

    [Fact]
    public void Create_AdjacentRegions_Accepted()
    {
        using var map = Build(Region(0x0, 0x1000), Region(0x1000, 0x1000));
        Assert.Equal(2, map.Regions.Count);
    }

    public static TheoryData<string, ulong[]> GuestOverlaps => new()
    {
        // (gpa, size) pairs
        { "one byte of overlap", [0x1000, 0x1000, 0x1FFF, 0x1000] },
        { "identical", [0x1000, 0x1000, 0x1000, 0x1000] },
        { "contained", [0x1000, 0x4000, 0x2000, 0x1000] },
        { "overlap with a non-neighbour", [0x0, 0x10000, 0x2000, 0x1000, 0x8000, 0x1000] },
    };

    [Theory]
    [MemberData(nameof(GuestOverlaps))]
    public void Create_OverlappingGuestRanges_Throws(string what, ulong[] pairs)
    {
        var regions = Enumerable.Range(0, pairs.Length / 2).Select(i => Region(pairs[2 * i], pairs[2 * i + 1], out _)).ToArray();
        try
        {
            var e = Assert.Throws<ArgumentException>(() => GuestMemoryMap.Create(regions));
            Assert.Contains("overlap", e.Message);
        }
        finally
        {
            foreach (var r in regions) r.Block.Release();
        }
        Assert.All(regions, r => Assert.Equal(1, ((TrackedBlock)r.Block).Frees));
        _ = what;
    }

    [Fact]
    public void Create_OverlappingFrontEndAddresses_Throws()
    {
        var a = Region(0x10000, 0x2000, user: 0x7000_0000_0000);
        var b = Region(0x90000, 0x1000, user: 0x7000_0000_1000); // guest-disjoint, user-overlapping
        try
        {
            var e = Assert.Throws<ArgumentException>(() => GuestMemoryMap.Create([a, b]));
            Assert.Contains("front-end", e.Message);
        }
        finally { a.Block.Release(); b.Block.Release(); }
    }

    [Fact]
    public void Create_FrontEndAddressesInOtherOrderThanGuest_AcceptedWhenDisjoint()
    {
        using var map = Build(Region(0x10000, 0x1000, user: 0x9000_0000), Region(0x20000, 0x1000, user: 0x1000_0000));
        Assert.True(map.TryTranslateUserAddress(0x1000_0010, 4, out var a));
        Assert.Equal(0x20010UL, a.Value);
    }

    [Fact]
    public void Empty_HasNoRegions_AndRefusesEverything()
    {
        using var map = GuestMemoryMap.Empty();
        Assert.Empty(map.Regions);
        Assert.Equal(0UL, map.TotalSize);
        Assert.Null(map.FindRegion(0));
        Assert.False(map.TryRead(new GuestAddress(0), new byte[1]));
        Assert.False(map.TryGetContiguous(new GuestAddress(0), 1, out _));
        Assert.Equal("no guest memory", map.ToString());
    }

    // ---- FindRegion ----

    [Fact]
    public void FindRegion_ManyRegionsWithGaps_FindsExactlyTheContainingOne()
    {
        ulong[] starts = [0x1000, 0x5000, 0x9000, 0x20000, 0x100000];
        using var map = Build(starts.Select(s => Region(s, 0x2000)).ToArray());

        foreach (ulong s in starts)
        {
            Assert.Equal(s, map.FindRegion(s)!.GuestStart.Value);
            Assert.Equal(s, map.FindRegion(s + 0x1FFF)!.GuestStart.Value);
            Assert.Null(map.FindRegion(s + 0x2000));
            Assert.Null(map.FindRegion(s - 1));
        }
        Assert.Null(map.FindRegion(0));
        Assert.Null(map.FindRegion(ulong.MaxValue));
    }

    // ---- TryTranslateUserAddress ----

    [Theory]
    [InlineData(0x7f00_0000_0000UL, 0x1000UL, true, 0x40000UL)]           // whole region
    [InlineData(0x7f00_0000_0800UL, 0x800UL, true, 0x40800UL)]            // ends on the last byte
    [InlineData(0x7f00_0000_0FFFUL, 1UL, true, 0x40FFFUL)]
    [InlineData(0x7f00_0000_0800UL, 0x801UL, false, 0UL)]                 // one byte too long
    [InlineData(0x7f00_0000_2000UL, 1UL, false, 0UL)]                     // just past the second region
    [InlineData(0x7eff_ffff_ffffUL, 2UL, false, 0UL)]                     // starts just before
    [InlineData(0x7f00_0000_0000UL, ulong.MaxValue, false, 0UL)]
    public void TryTranslateUserAddress_RangeInOrOutOfRegion(ulong user, ulong length, bool ok, ulong gpa)
    {
        using var map = Build(Region(0x40000, 0x1000, user: 0x7f00_0000_0000), Region(0x80000, 0x1000, user: 0x7f00_0000_1000));
        // The second region is user-adjacent: a range crossing into it still is not one region.
        Assert.Equal(ok, map.TryTranslateUserAddress(user, length, out var a));
        Assert.Equal(gpa, a.Value);
    }

    [Fact]
    public void TryTranslateUserAddress_SecondRegion_UsesItsOwnGuestBase()
    {
        using var map = Build(Region(0x40000, 0x1000, user: 0x7f00_0000_0000), Region(0x80000, 0x1000, user: 0x7f00_0000_1000));
        Assert.True(map.TryTranslateUserAddress(0x7f00_0000_1010, 0x10, out var a));
        Assert.Equal(0x80010UL, a.Value);
    }

    // ---- TryGetContiguous / TryGetSlices ----

    [Fact]
    public void TryGetContiguous_InsideOneRegion_PointsAtTheBlock()
    {
        var region = Region(0x10000, 0x2000, out var block);
        using var map = Build(region);

        Assert.True(map.TryGetContiguous(new GuestAddress(0x10100), 0x100, out var slice));

        Assert.Equal(block.Address + 0x100, slice.Address);
        Assert.Equal(0x100, slice.Length);
    }

    [Theory]
    [InlineData(0x11F00UL, 0x200UL)]   // crosses into the adjacent region
    [InlineData(0xFFFFUL, 2UL)]        // starts before RAM
    [InlineData(0x14000UL, 1UL)]       // past both regions
    [InlineData(0x10000UL, 0x80000000UL)] // longer than int.MaxValue
    public void TryGetContiguous_NotWithinOneRegion_False(ulong gpa, ulong length)
    {
        using var map = Build(Region(0x10000, 0x2000), Region(0x12000, 0x2000));
        Assert.False(map.TryGetContiguous(new GuestAddress(gpa), length, out var slice));
        Assert.Equal(0, slice.Length);
    }

    [Fact]
    public void TryGetSlices_AcrossThreeRegions_OneSlicePerRegion()
    {
        var r1 = Region(0x10000, 0x1000, out var b1);
        var r2 = Region(0x11000, 0x1000, out var b2);
        var r3 = Region(0x12000, 0x1000, out var b3);
        using var map = Build(r3, r1, r2);
        var slices = new List<MemorySlice>();

        Assert.True(map.TryGetSlices(new GuestAddress(0x10F00), 0x1200, slices));

        Assert.Equal([(b1.Address + 0xF00, 0x100), (b2.Address, 0x1000), (b3.Address, 0x100)], slices.Select(s => (s.Address, s.Length)));
    }

    [Fact]
    public void TryGetSlices_PartlyOutsideRam_FalseAndKeepsEarlierEntries()
    {
        using var map = Build(Region(0x10000, 0x1000), Region(0x12000, 0x1000)); // hole at 0x11000
        var slices = new List<MemorySlice> { new(1234, 5) };

        Assert.False(map.TryGetSlices(new GuestAddress(0x10F00), 0x200, slices));

        Assert.Equal([(1234, 5)], slices.Select(s => ((int)s.Address, s.Length)));
    }

    [Fact]
    public void TryGetSlices_WrapsPast2Pow64_False()
    {
        using var map = Build(Region(0x10000, 0x1000));
        var slices = new List<MemorySlice>();
        Assert.False(map.TryGetSlices(new GuestAddress(0x10000), ulong.MaxValue, slices));
        Assert.False(map.TryGetSlices(new GuestAddress(ulong.MaxValue), 2, slices));
        Assert.Empty(slices);
    }

    [Fact]
    public void TryGetSlices_ZeroLength_TrueWithNoSlices()
    {
        using var map = Build(Region(0x10000, 0x1000));
        var slices = new List<MemorySlice>();
        Assert.True(map.TryGetSlices(new GuestAddress(0x10000), 0, slices));
        Assert.Empty(slices);
    }

    // ---- TryRead / TryWrite ----

    [Fact]
    public void TryWrite_SpanningTwoRegions_SplitsBytesBetweenTheirBlocks()
    {
        var r1 = Region(0x10000, 0x1000, out var b1);
        var r2 = Region(0x11000, 0x1000, out var b2);
        using var map = Build(r1, r2);

        Assert.True(map.TryWrite(new GuestAddress(0x10FFD), [1, 2, 3, 4, 5, 6]));

        Assert.Equal(new byte[] { 1, 2, 3 }, b1.AsSpan(0xFFD, 3).ToArray());
        Assert.Equal(new byte[] { 4, 5, 6 }, b2.AsSpan(0, 3).ToArray());
    }

    [Fact]
    public void TryRead_SpanningTwoRegions_JoinsBytesFromBoth()
    {
        var r1 = Region(0x10000, 0x1000, out var b1);
        var r2 = Region(0x11000, 0x1000, out var b2);
        using var map = Build(r1, r2);
        new byte[] { 9, 8 }.CopyTo(b1.AsSpan(0xFFE, 2));
        new byte[] { 7, 6, 5 }.CopyTo(b2.AsSpan(0, 3));
        var dst = new byte[5];

        Assert.True(map.TryRead(new GuestAddress(0x10FFE), dst));

        Assert.Equal(new byte[] { 9, 8, 7, 6, 5 }, dst);
    }

    public static TheoryData<ulong, int> OutOfRange => new()
    {
        { 0x0FFFF, 2 },                 // starts before RAM
        { 0x11FFF, 2 },                 // runs off the end of RAM
        { 0x12000, 1 },                 // starts at the end
        { 0x50000, 4 },                 // far away
        { ulong.MaxValue - 1, 4 },      // wraps around 2^64
        { ulong.MaxValue, 1 },
    };

    [Theory]
    [MemberData(nameof(OutOfRange))]
    public void TryReadAndTryWrite_OutOfRangeOrWrapping_FalseAndNothingWritten(ulong gpa, int length)
    {
        var r1 = Region(0x10000, 0x1000, out var b1, fill: 0x5A);
        var r2 = Region(0x11000, 0x1000, out var b2, fill: 0x5A);
        using var map = Build(r1, r2);
        var dst = new byte[length];
        Array.Fill(dst, (byte)0x77);

        Assert.False(map.TryRead(new GuestAddress(gpa), dst));
        Assert.False(map.TryWrite(new GuestAddress(gpa), new byte[length]));

        Assert.All(dst, b => Assert.Equal(0x77, b));
        Assert.All(b1.AsSpan(0, 0x1000).ToArray(), b => Assert.Equal(0x5A, b));
        Assert.All(b2.AsSpan(0, 0x1000).ToArray(), b => Assert.Equal(0x5A, b));
    }

    [Fact]
    public void TryReadAndTryWrite_RegionAtTopOfAddressSpace_LastByteWorksButNotPast()
    {
        const ulong top = ulong.MaxValue - 0xFFF; // region [top, 2^64 - 1): the last byte is not addressable
        using var map = Build(Region(top, 0xFFF));

        Assert.True(map.TryWrite(new GuestAddress(top + 0xFFE), [0xAB]));
        Assert.True(map.TryRead(new GuestAddress(top + 0xFFE), out byte v));
        Assert.Equal(0xAB, v);
        Assert.False(map.TryRead(new GuestAddress(top + 0xFFE), new byte[2]));
        Assert.False(map.TryRead(new GuestAddress(top + 0xFFF), new byte[1]));
    }

    [Fact]
    public void TryReadT_TryWriteT_RoundTripAcrossRegionBoundary()
    {
        var r1 = Region(0x10000, 0x1000, out var b1);
        var r2 = Region(0x11000, 0x1000, out var b2);
        using var map = Build(r1, r2);

        Assert.True(map.TryWrite(new GuestAddress(0x10FFC), 0x1122334455667788UL));
        Assert.True(map.TryRead(new GuestAddress(0x10FFC), out ulong v));

        Assert.Equal(0x1122334455667788UL, v);
        Assert.Equal(new byte[] { 0x88, 0x77, 0x66, 0x55 }, b1.AsSpan(0xFFC, 4).ToArray());
        Assert.Equal(new byte[] { 0x44, 0x33, 0x22, 0x11 }, b2.AsSpan(0, 4).ToArray());
        Assert.False(map.TryRead(new GuestAddress(0x11FFC), out ulong _));
    }

    [Fact]
    public void TryRead_RandomRangesOverRegionsWithHoles_MatchesAFlatModel()
    {
        // RAM: [0x1000,0x2000) [0x2000,0x2800) [0x3000,0x4000); the model is one array over [0, 0x5000).
        var regions = new (ulong Start, ulong Size)[] { (0x1000, 0x1000), (0x2000, 0x800), (0x3000, 0x1000) };
        var blocks = new TrackedBlock[3];
        var model = new byte[0x5000];
        var present = new bool[0x5000];
        var built = new GuestRegion[3];
        for (int i = 0; i < 3; i++)
        {
            built[i] = Region(regions[i].Start, regions[i].Size, out blocks[i]);
            var span = blocks[i].AsSpan(0, (int)regions[i].Size);
            for (int j = 0; j < span.Length; j++)
            {
                ulong gpa = regions[i].Start + (ulong)j;
                span[j] = model[gpa] = (byte)(gpa * 31 >> 3);
                present[gpa] = true;
            }
        }
        using var map = Build(built);

        Gen.Select(Gen.Int[0, 0x5000], Gen.Int[0, 0x1800]).Sample((start, length) =>
        {
            var dst = new byte[length];
            bool expected = start + length <= 0x5000 && Enumerable.Range(start, length).All(a => present[a]);
            Assert.Equal(expected, map.TryRead(new GuestAddress((ulong)start), dst));
            if (expected) Assert.Equal(model.AsSpan(start, length).ToArray(), dst);
        }, iter: 2000);
    }

    // ---- With / Without ----

    [Fact]
    public void With_DisjointRegion_NewSnapshotHasItOldOneDoesNot()
    {
        using var map = Build(Region(0x10000, 0x1000));
        var extra = Region(0x20000, 0x1000, out var extraBlock);

        using var bigger = map.With(extra);
        extraBlock.Release();

        Assert.Single(map.Regions);
        Assert.Equal(2, bigger.Regions.Count);
        Assert.True(bigger.TryWrite(new GuestAddress(0x20000), [1]));
        Assert.False(map.TryWrite(new GuestAddress(0x20000), [1]));
    }

    [Fact]
    public void With_OverlappingRegion_ThrowsAndLeavesOriginalUsable()
    {
        using var map = Build(Region(0x10000, 0x1000));
        var overlapping = Region(0x10800, 0x1000, out var block);
        try
        {
            Assert.Throws<ArgumentException>(() => map.With(overlapping));
        }
        finally { block.Release(); }

        Assert.Equal(1, block.Frees);
        Assert.True(map.TryWrite(new GuestAddress(0x10000), [1]));
    }

    [Fact]
    public void Without_MatchingRegion_RemovesItAndCounts()
    {
        using var map = Build(Region(0x10000, 0x1000), Region(0x20000, 0x1000), Region(0x30000, 0x1000));

        using var smaller = map.Without(r => r.GuestStart.Value == 0x20000, out int removed);

        Assert.Equal(1, removed);
        Assert.Equal([0x10000UL, 0x30000UL], smaller.Regions.Select(r => r.GuestStart.Value));
        Assert.False(smaller.TryRead(new GuestAddress(0x20000), new byte[1]));
        Assert.True(map.TryRead(new GuestAddress(0x20000), new byte[1]));
    }

    [Fact]
    public void Without_NoMatch_RemovesNothing()
    {
        using var map = Build(Region(0x10000, 0x1000));
        using var same = map.Without(_ => false, out int removed);
        Assert.Equal(0, removed);
        Assert.Single(same.Regions);
    }

    // ---- reference counting ----

    [Fact]
    public void Dispose_LastSnapshotHoldingBlock_FreesIt()
    {
        var region = Region(0x10000, 0x1000, out var block);
        var map = Build(region);
        Assert.Equal(0, block.Frees);

        map.Dispose();

        Assert.Equal(1, block.Frees);
    }

    [Fact]
    public void Dispose_OlderSnapshotWhileNewerSharesBlock_KeepsBlockUntilNewerIsDisposed()
    {
        var shared = Region(0x10000, 0x1000, out var sharedBlock);
        var removed = Region(0x20000, 0x1000, out var removedBlock);
        var v1 = Build(shared, removed);
        var v2 = v1.Without(r => r.GuestStart.Value == 0x20000, out _);

        v1.Dispose();

        Assert.Equal(0, sharedBlock.Frees);
        Assert.Equal(1, removedBlock.Frees);
        Assert.True(v2.TryWrite(new GuestAddress(0x10000), [42])); // still mapped

        v2.Dispose();

        Assert.Equal(1, sharedBlock.Frees);
    }

    [Fact]
    public void Acquire_LeaseOutlivesOwner_BlockFreedOnlyAfterLease()
    {
        var region = Region(0x10000, 0x1000, out var block);
        var map = Build(region);

        var lease = map.Acquire();
        Assert.Same(map, lease);
        map.Dispose();

        Assert.Equal(0, block.Frees);
        Assert.True(lease.TryWrite(new GuestAddress(0x10000), [1]));

        lease.Dispose();

        Assert.Equal(1, block.Frees);
    }

    [Fact]
    public void Acquire_AfterDispose_ThrowsAndDoesNotResurrect()
    {
        var region = Region(0x10000, 0x1000, out var block);
        var map = Build(region);
        map.Dispose();

        Assert.Throws<ObjectDisposedException>(() => map.Acquire());
        map.Dispose(); // a second Dispose after the failed lease must not free the block again

        Assert.Equal(1, block.Frees);
    }

    [Fact]
    public void Dispose_Twice_FreesOnce()
    {
        var region = Region(0x10000, 0x1000, out var block);
        var map = Build(region);

        map.Dispose();
        map.Dispose();

        Assert.Equal(1, block.Frees);
    }

    [Fact]
    public void Create_WithBlockAlreadyFreed_ThrowsAndLeaksNoReference()
    {
        var live = Region(0x10000, 0x1000, out var liveBlock);
        var dead = Region(0x20000, 0x1000, out var deadBlock);
        deadBlock.Release(); // freed: its only reference is gone

        Assert.Throws<ObjectDisposedException>(() => GuestMemoryMap.Create([live, dead]));

        liveBlock.Release(); // the creator's reference: this must be the last one
        Assert.Equal(1, liveBlock.Frees);
        Assert.Equal(1, deadBlock.Frees);
    }

    [Fact]
    public void ToString_ListsRegions()
    {
        using var map = Build(Region(0x10000, 0x1000, user: 0x7000));
        Assert.Equal("gpa 0x10000+0x1000 uaddr 0x7000 offset 0x0", map.ToString());
    }
}
