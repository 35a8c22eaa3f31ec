using Microsoft.Extensions.Logging;
using VirtioGpuHost.Device;
using VirtioGpuHost.Device.Wire;
using VirtioGpuHost.FrontEnd;
using VirtioGpuHost.TestKit;
using static VirtioGpuHost.UnitTests.Device.DeviceTestHelpers;

namespace VirtioGpuHost.UnitTests.Device;

/// <summary>The control queue processor: display backpressure, indirect chains, the error log's rate limit.</summary>
public class QueueProcessingTests
{
    private static byte[] Create(uint id) => Bytes(new VirtioGpuResourceCreate2D
    {
        Header = Header(VirtioGpuCtrlType.ResourceCreate2D), ResourceId = id, Format = VirtioGpuFormat.B8G8R8X8Unorm, Width = 4, Height = 4,
    });

    [Fact]
    public void Backpressure_DisplayBusy_PausesControlQueueUntilIdle()
    {
        using var rig = DeviceRig.Create();
        rig.Display.IsBusy = true;
        var a = rig.Driver.Queue(Create(1));
        var b = rig.Driver.Queue(Create(2));
        rig.Driver.KickControl();
        rig.Driver.KickControl();
        rig.Scheduler.RunPending();
        Assert.Equal(0, rig.ControlDriverQueue.ReadUsedIndex());
        Assert.Empty(rig.Device.Resources);
        Assert.True(rig.ControlProcessor.IsWaiting);

        rig.Display.IsBusy = false;
        rig.Driver.Wait(a).Is(VirtioGpuCtrlType.OkNoData);
        rig.Driver.Wait(b).Is(VirtioGpuCtrlType.OkNoData);
        Assert.Equal([a.Head, b.Head], rig.UsedElements(rig.ControlDriverQueue).Select(e => (ushort)e.Head));
        Assert.False(rig.ControlProcessor.IsWaiting);
        Assert.Equal(2, rig.Device.Resources.Count);
    }

    [Fact]
    public void Backpressure_DisplayBecomesBusyMidway_RestWaits()
    {
        using var rig = DeviceRig.Create();
        var fb = rig.NewFrameBuffer(1, 8, 8, scanout: 0);
        // The display turns busy with the first flush it receives.
        var busyAfterFlush = new BusyAfterFlushDisplay(rig.Display);
        rig.Device.Display = busyAfterFlush; // replays scanout 0 to the new display
        busyAfterFlush.Armed = true;
        int before = rig.ControlDriverQueue.ReadUsedIndex();
        var flush = rig.Driver.Queue(Bytes(rig.Driver.FlushCommand(1, new VirtioGpuRect(0, 0, 8, 8))));
        var create = rig.Driver.Queue(Create(2));
        rig.Driver.KickControl();
        rig.Scheduler.RunPending();
        Assert.Equal(before + 1, rig.ControlDriverQueue.ReadUsedIndex());
        Assert.False(rig.Device.Resources.ContainsKey(2));
        rig.Driver.Wait(flush).Is(VirtioGpuCtrlType.OkNoData);

        busyAfterFlush.Inner.IsBusy = false;
        rig.Driver.Wait(create).Is(VirtioGpuCtrlType.OkNoData);
        Assert.True(rig.Device.Resources.ContainsKey(2));
    }

    /// <summary>Wraps the fake display and, once armed, turns busy after each flush.</summary>
    private sealed class BusyAfterFlushDisplay(FakeDisplay inner) : VirtioGpuHost.Device.Display.IGpuDisplay
    {
        public FakeDisplay Inner => inner;
        public bool Armed { get; set; }
        public bool OwnsOutputCount => inner.OwnsOutputCount;
        public Task<byte[]?>? QueryDisplayInfo() => inner.QueryDisplayInfo();
        public Task<byte[]?>? QueryEdid(uint scanoutId) => inner.QueryEdid(scanoutId);
        public bool IsBusy => inner.IsBusy;
        public void WhenIdle(Action resume) => inner.WhenIdle(resume);
        public void ScanoutChanged(uint scanoutId, VirtioGpuHost.Device.Display.GpuSurface? surface, VirtioGpuRect source) => inner.ScanoutChanged(scanoutId, surface, source);

        public void ScanoutFlushed(uint scanoutId, VirtioGpuHost.Device.Display.GpuSurface surface, VirtioGpuRect source, VirtioGpuRect damage)
        {
            inner.ScanoutFlushed(scanoutId, surface, source, damage);
            if (Armed) inner.IsBusy = true;
        }

        public void CursorChanged(uint scanoutId, uint x, uint y, uint hotX, uint hotY, ReadOnlySpan<byte> bgra) => inner.CursorChanged(scanoutId, x, y, hotX, hotY, bgra);
        public void CursorMoved(uint scanoutId, uint x, uint y, bool visible) => inner.CursorMoved(scanoutId, x, y, visible);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void IndirectAndEventIdx_FullFrameRoundTrip_PixelsExact(bool indirect)
    {
        using var rig = DeviceRig.Create(indirect: indirect, eventIdx: !indirect);
        var fb = rig.NewFrameBuffer(1, 50, 20, VirtioGpuFormat.X8R8G8B8Unorm, scattered: true, scanout: 0);
        fb.Fill(Colour);
        rig.Driver.Present(1, fb, new VirtioGpuRect(0, 0, 50, 20));
        Assert.Equal(ExpectedConsole(new VirtioGpuRect(0, 0, 50, 20), Colour), rig.Display.Console(0));
        Assert.Empty(rig.Control.Failures);
    }

    [Fact]
    public void Errors_EveryGuestError_CountedOnDevice()
    {
        using var rig = DeviceRig.Create();
        rig.Driver.Unref(1);
        rig.Driver.Flush(1, default);
        rig.Driver.DetachBacking(1);
        Assert.Equal(3L, rig.Device.Errors.Count);
        Assert.Equal(3, rig.Logs.Warnings.Count());
        Assert.All(rig.Logs.Warnings, w => Assert.StartsWith(Connection + ": ", w));
    }

    [Fact]
    public void GuestErrorLog_MoreThanPerSecond_CountedButNotAllLogged()
    {
        var logs = new ListLoggerProvider();
        var log = new GuestErrorLog(logs.CreateLogger("t"), "vm-flood");
        const int total = 200;
        for (int i = 0; i < total; i++) log.Report("RESOURCE_UNREF", $"resource_id {i} does not exist");
        Assert.Equal(total, log.Count);
        var lines = logs.Warnings.ToArray();
        // At most PerSecond lines a second: a burst of 200 cannot be logged whole (even across one window change).
        Assert.InRange(lines.Length, GuestErrorLog.PerSecond, 2 * GuestErrorLog.PerSecond);
        Assert.All(lines, l => Assert.StartsWith("vm-flood: RESOURCE_UNREF: resource_id ", l));
        Assert.Equal("vm-flood: RESOURCE_UNREF: resource_id 0 does not exist", lines[0]);
    }

    [Fact]
    public void GuestErrorLog_AfterSuppression_NextLoggedLineReportsSuppressedCount()
    {
        var logs = new ListLoggerProvider();
        var log = new GuestErrorLog(logs.CreateLogger("t"), "vm-flood");
        const int burst = 100;
        for (int i = 0; i < burst; i++) log.Report("SET_SCANOUT", "scanout_id 99 does not exist");
        Thread.Sleep(TimeSpan.FromMilliseconds(1100)); // let the one-second window pass
        log.Report("SET_SCANOUT", "scanout_id 98 does not exist");
        Assert.Equal(burst + 1, log.Count);

        var lines = logs.Warnings.ToArray();
        var last = lines[^1];
        Assert.StartsWith("vm-flood: SET_SCANOUT: scanout_id 98 does not exist (", last);
        // Every error is accounted for: logged lines plus the suppressed counts they report.
        long reported = lines.Sum(l =>
        {
            var m = System.Text.RegularExpressions.Regex.Match(l, @"\((\d+) similar errors suppressed\)$");
            return m.Success ? long.Parse(m.Groups[1].Value) : 0;
        });
        Assert.True(reported > 0);
        Assert.Equal(log.Count, lines.Length + reported);
    }

    [Fact]
    public void GuestErrorLog_LogLevelIsWarning()
    {
        var logs = new ListLoggerProvider();
        new GuestErrorLog(logs.CreateLogger("t"), "c").Report("X", "y");
        Assert.Equal((LogLevel.Warning, "c: X: y"), Assert.Single(logs.Lines));
    }

    [Fact]
    public void ControlQueue_BufferOutsideGuestMemory_QueueFailsAndStops()
    {
        using var rig = DeviceRig.Create(ramSize: 32UL << 20);
        var cmd = rig.Ram.Allocator.Allocate(4096);
        Create(1).CopyTo(rig.Ram.Span(cmd, 40));
        rig.ControlDriverQueue.Add([new GuestBuffer(cmd, 40)], [new GuestBuffer(new VirtioGpuHost.GuestMemory.GuestAddress(1UL << 40), 24)]);
        rig.Driver.KickControl();
        Assert.Equal([VirtioGpuHost.Virtio.QueueError.BufferNotInGuestMemory], rig.Control.Failures);
        Assert.Equal(0, rig.ControlDriverQueue.ReadUsedIndex());
        Assert.Empty(rig.Device.Resources);
        Assert.Contains(rig.Logs.Lines, l => l.Level == LogLevel.Error && l.Message.Contains(Connection) && l.Message.Contains("BufferNotInGuestMemory"));

        // The broken ring stays stopped until the driver resets the device.
        rig.Driver.Queue(Create(2));
        rig.Driver.KickControl();
        Assert.Empty(rig.Device.Resources);
    }
}
