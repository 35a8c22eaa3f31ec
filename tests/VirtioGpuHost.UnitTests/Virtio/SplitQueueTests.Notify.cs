using VirtioGpuHost.TestKit;
using VirtioGpuHost.Virtio;

namespace VirtioGpuHost.UnitTests.Virtio;

/// <summary>The used ring and notification suppression (virtio 1.x §2.7.7, §2.7.10).</summary>
public partial class SplitQueueTests
{
    // ---- AddUsed ----

    [Fact]
    public void AddUsed_PoppedChain_WritesElementAndAdvancesUsedIndex()
    {
        using var rig = SplitQueueRig.Create();
        rig.Driver.Add([rig.Buffer(8)], [rig.Buffer(8)]);
        ushort h2 = rig.Driver.Add([rig.Buffer(8)], [rig.Buffer(64)]);
        var c1 = rig.Pop();
        var c2 = rig.Pop();

        rig.Queue.AddUsed(c2.Head, 40);

        Assert.Equal(1, rig.UsedIndex);
        Assert.Equal(1, rig.Queue.NextUsed);
        Assert.Equal(((uint)h2, 40u), rig.UsedElement(0));
        Assert.Equal(1, rig.Queue.InFlight);

        rig.Queue.AddUsed(c1.Head, 0);

        Assert.Equal(2, rig.UsedIndex);
        Assert.Equal(((uint)c1.Head, 0u), rig.UsedElement(1));
        Assert.Equal(0, rig.Queue.InFlight);
        Assert.True(rig.Driver.TryTakeUsed(out ushort taken, out uint written));
        Assert.Equal((h2, 40u), (taken, written));
    }

    [Fact]
    public void AddUsed_IdFieldHoldingStaleBytes_WritesAll32Bits()
    {
        // used->ring[].id is a le32; a device that stores only 16 bits leaves garbage in the top half.
        using var rig = SplitQueueRig.Create(size: 4);
        rig.UsedElements.Fill(0xFF);
        rig.Driver.Add([rig.Buffer(8)], []);
        var c = rig.Pop();

        rig.Queue.AddUsed(c.Head, 0x01020304);

        Assert.Equal(((uint)c.Head, 0x01020304u), rig.UsedElement(0));
        Assert.Equal(Enumerable.Repeat((byte)0xFF, 8 * 3), rig.UsedElements[8..].ToArray());
    }

    [Fact]
    public void AddUsed_MoreThanQueueSize_WrapsSlotButNotIndex()
    {
        using var rig = SplitQueueRig.Create(size: 2);
        for (uint i = 0; i < 5; i++) rig.Queue.AddUsed((ushort)(i % 2), 100 + i);

        Assert.Equal(5, rig.UsedIndex);
        Assert.Equal((0u, 104u), rig.UsedElement(0)); // slot 0 was written by #0, #2 and #4
        Assert.Equal((1u, 103u), rig.UsedElement(1));
    }

    [Fact]
    public void AddUsed_UsedIndexWrapsAt65536()
    {
        using var rig = SplitQueueRig.Create(size: 4);
        rig.SetUsedIndex(65535);
        Assert.True(rig.Queue.Bind(rig.Memory));

        rig.Queue.AddUsed(2, 7);
        rig.Queue.AddUsed(3, 9);

        Assert.Equal(1, rig.UsedIndex);
        Assert.Equal((2u, 7u), rig.UsedElement(3));  // 65535 % 4
        Assert.Equal((3u, 9u), rig.UsedElement(0));  // 65536 % 4
    }

    [Fact]
    public void AddUsed_NotBound_WritesNothing()
    {
        using var rig = SplitQueueRig.Create();
        rig.Queue.Unbind();

        rig.Queue.AddUsed(1, 1);

        Assert.Equal(0, rig.UsedIndex);
        Assert.Equal((0u, 0u), rig.UsedElement(0));
    }

    [Fact]
    public void AddUsed_NeverTouchesUsedFlags()
    {
        using var rig = SplitQueueRig.Create();
        rig.Driver.Add([rig.Buffer(8)], []);
        rig.Queue.AddUsed(rig.Pop().Head, 8);
        Assert.Equal(0, rig.UsedFlags);
    }

    // ---- EVENT_IDX: avail_event ----

    [Fact]
    public void TryPop_EventIdx_WritesAvailEventAfterEachPop()
    {
        using var rig = SplitQueueRig.Create(eventIdx: true);
        rig.Driver.Add([rig.Buffer(8)], []);
        rig.Driver.Add([rig.Buffer(8)], []);

        rig.Pop();
        Assert.Equal(1, rig.AvailEvent);
        rig.Pop();
        Assert.Equal(2, rig.AvailEvent);
    }

    [Fact]
    public void TryPop_WithoutEventIdx_LeavesAvailEventAlone()
    {
        using var rig = SplitQueueRig.Create(eventIdx: false);
        rig.Driver.Add([rig.Buffer(8)], []);
        rig.Pop();
        Assert.Equal(0, rig.AvailEvent);
    }

    [Fact]
    public void TryPop_FailedChainWithEventIdx_DoesNotAdvanceAvailEvent()
    {
        using var rig = SplitQueueRig.Create(eventIdx: true);
        rig.Driver.PublishHead(200);
        Assert.Equal(QueueError.HeadOutOfRange, rig.PopError());
        Assert.Equal(0, rig.AvailEvent);
    }

    // ---- EVENT_IDX: used_event and ShouldNotify ----

    [Fact]
    public void ShouldNotify_EventIdxFirstCallAfterBind_AlwaysTrue()
    {
        using var rig = SplitQueueRig.Create(eventIdx: true);
        rig.Driver.SetUsedEvent(1000); // "don't interrupt me before 1000"
        rig.Queue.AddUsed(0, 0);

        Assert.True(rig.Queue.ShouldNotify());
    }

    [Fact]
    public void ShouldNotify_EventIdx_FollowsUsedEvent()
    {
        using var rig = SplitQueueRig.Create(eventIdx: true);
        rig.Queue.AddUsed(0, 0);                 // used idx 1
        Assert.True(rig.Queue.ShouldNotify());   // first one always

        rig.Driver.SetUsedEvent(2);              // interrupt when used idx passes 2
        rig.Queue.AddUsed(0, 0);                 // 2
        Assert.False(rig.Queue.ShouldNotify());
        rig.Queue.AddUsed(0, 0);                 // 3: crossed 2 → 3
        Assert.True(rig.Queue.ShouldNotify());

        rig.Driver.SetUsedEvent(4);
        rig.Queue.AddUsed(0, 0);                 // 4
        rig.Queue.AddUsed(0, 0);                 // 5
        rig.Queue.AddUsed(0, 0);                 // 6: the batch 3 → 6 crossed 4
        Assert.True(rig.Queue.ShouldNotify());

        rig.Driver.SetUsedEvent(10);
        rig.Queue.AddUsed(0, 0);                 // 7
        Assert.False(rig.Queue.ShouldNotify());
        Assert.False(rig.Queue.ShouldNotify());  // nothing new
    }

    [Fact]
    public void ShouldNotify_EventIdxNothingPublishedSinceLastNotify_False()
    {
        using var rig = SplitQueueRig.Create(eventIdx: true);
        rig.Queue.AddUsed(0, 0);
        Assert.True(rig.Queue.ShouldNotify());
        rig.Driver.SetUsedEvent(0); // used_event = 0 was already passed

        Assert.False(rig.Queue.ShouldNotify());
    }

    [Fact]
    public void ShouldNotify_EventIdxAcrossIndexWrap_MatchesNeedEvent()
    {
        using var rig = SplitQueueRig.Create(size: 4, eventIdx: true);
        rig.SetUsedIndex(65534);
        Assert.True(rig.Queue.Bind(rig.Memory));
        rig.Queue.AddUsed(0, 0);                 // 65535
        Assert.True(rig.Queue.ShouldNotify());

        rig.Driver.SetUsedEvent(65535);
        rig.Queue.AddUsed(0, 0);                 // 0: crossed 65535 → 0
        Assert.True(rig.Queue.ShouldNotify());

        rig.Driver.SetUsedEvent(1);
        rig.Queue.AddUsed(0, 0);                 // 1: not past 1 yet
        Assert.False(rig.Queue.ShouldNotify());
    }

    [Fact]
    public void ShouldNotify_EventIdx_IgnoresNoInterruptFlag()
    {
        using var rig = SplitQueueRig.Create(eventIdx: true);
        rig.Driver.SetAvailFlags(1);
        rig.Queue.AddUsed(0, 0);
        Assert.True(rig.Queue.ShouldNotify()); // first
        rig.Driver.SetUsedEvent(1);
        rig.Queue.AddUsed(0, 0);               // 2, crossed 1
        Assert.True(rig.Queue.ShouldNotify());
    }

    [Fact]
    public void ShouldNotify_AfterRebind_FirstCallTrueAgain()
    {
        using var rig = SplitQueueRig.Create(eventIdx: true);
        rig.Queue.AddUsed(0, 0);
        Assert.True(rig.Queue.ShouldNotify());
        rig.Driver.SetUsedEvent(100);

        Assert.True(rig.Queue.Bind(rig.Memory));
        rig.Queue.AddUsed(0, 0);

        Assert.True(rig.Queue.ShouldNotify());
    }

    // ---- without EVENT_IDX: avail->flags ----

    [Fact]
    public void ShouldNotify_NoEventIdxFlagsClear_True()
    {
        using var rig = SplitQueueRig.Create(eventIdx: false);
        rig.Driver.SetUsedEvent(1000); // meaningless without EVENT_IDX
        rig.Queue.AddUsed(0, 0);
        Assert.True(rig.Queue.ShouldNotify());
        rig.Queue.AddUsed(0, 0);
        Assert.True(rig.Queue.ShouldNotify());
    }

    [Fact]
    public void ShouldNotify_NoEventIdxNoInterruptSet_False()
    {
        using var rig = SplitQueueRig.Create(eventIdx: false);
        rig.Driver.SetAvailFlags(1);
        rig.Queue.AddUsed(0, 0);
        Assert.False(rig.Queue.ShouldNotify());

        rig.Driver.SetAvailFlags(0);
        Assert.True(rig.Queue.ShouldNotify());
    }

    [Fact]
    public void ShouldNotify_NotBound_False()
    {
        using var rig = SplitQueueRig.Create();
        rig.Queue.Unbind();
        Assert.False(rig.Queue.ShouldNotify());
    }

    // ---- NOTIFY_ON_EMPTY ----

    [Fact]
    public void ShouldNotify_NotifyOnEmptyQueueDrained_TrueDespiteNoInterrupt()
    {
        using var rig = SplitQueueRig.Create(eventIdx: false);
        rig.Queue.NotifyOnEmpty = true;
        rig.Driver.SetAvailFlags(1);
        rig.Driver.Add([rig.Buffer(8)], []);
        rig.Queue.AddUsed(rig.Pop().Head, 0);

        Assert.True(rig.Queue.ShouldNotify());
    }

    [Fact]
    public void ShouldNotify_NotifyOnEmptyButMoreAvailable_FollowsNoInterrupt()
    {
        using var rig = SplitQueueRig.Create(eventIdx: false);
        rig.Queue.NotifyOnEmpty = true;
        rig.Driver.SetAvailFlags(1);
        rig.Driver.Add([rig.Buffer(8)], []);
        rig.Driver.Add([rig.Buffer(8)], []);
        rig.Queue.AddUsed(rig.Pop().Head, 0);

        Assert.False(rig.Queue.ShouldNotify());
    }

    [Fact]
    public void ShouldNotify_NotifyOnEmptyOffQueueDrained_FollowsNoInterrupt()
    {
        using var rig = SplitQueueRig.Create(eventIdx: false);
        rig.Driver.SetAvailFlags(1);
        rig.Driver.Add([rig.Buffer(8)], []);
        rig.Queue.AddUsed(rig.Pop().Head, 0);

        Assert.False(rig.Queue.ShouldNotify());
    }

    [Fact]
    public void ShouldNotify_NotifyOnEmptyWithEventIdx_OverridesUsedEvent()
    {
        using var rig = SplitQueueRig.Create(eventIdx: true);
        rig.Queue.NotifyOnEmpty = true;
        rig.Queue.AddUsed(0, 0);
        Assert.True(rig.Queue.ShouldNotify());
        rig.Driver.SetUsedEvent(500);
        rig.Driver.Add([rig.Buffer(8)], []);
        rig.Queue.AddUsed(rig.Pop().Head, 0);

        Assert.True(rig.Queue.ShouldNotify());
    }

    // ---- EnableNotificationAndRecheck ----

    [Fact]
    public void EnableNotificationAndRecheck_EmptyWithEventIdx_WritesAvailEventAndReturnsFalse()
    {
        using var rig = SplitQueueRig.Create(eventIdx: true);
        rig.Queue.NextAvail = 7;
        rig.Driver.SetAvailIndex(7);

        Assert.False(rig.Queue.EnableNotificationAndRecheck());
        Assert.Equal(7, rig.AvailEvent);
    }

    [Fact]
    public void EnableNotificationAndRecheck_DriverAddedMeanwhile_ReturnsTrue()
    {
        using var rig = SplitQueueRig.Create(eventIdx: true);
        Assert.False(rig.Queue.TryPop(out _, out _));
        rig.Driver.Add([rig.Buffer(8)], []); // the race: added after our empty check

        Assert.True(rig.Queue.EnableNotificationAndRecheck());
        Assert.Equal(0, rig.AvailEvent);
        Assert.Equal(0, rig.Pop().Head);
    }

    [Fact]
    public void EnableNotificationAndRecheck_WithoutEventIdx_RechecksOnly()
    {
        using var rig = SplitQueueRig.Create(eventIdx: false);
        Assert.False(rig.Queue.EnableNotificationAndRecheck());
        rig.Driver.Add([rig.Buffer(8)], []);
        Assert.True(rig.Queue.EnableNotificationAndRecheck());
        Assert.Equal(0, rig.AvailEvent);
    }

    [Fact]
    public void EnableNotificationAndRecheck_NotBound_False()
    {
        using var rig = SplitQueueRig.Create(eventIdx: true);
        rig.Driver.Add([rig.Buffer(8)], []);
        rig.Queue.Unbind();
        Assert.False(rig.Queue.EnableNotificationAndRecheck());
    }
}
