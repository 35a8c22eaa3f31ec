using VirtioGpuHost.Compositor.Wayland;
using VirtioGpuHost.Compositor.Wayland.Protocol;
using VirtioGpuHost.Interop;

namespace VirtioGpuHost.Wayland.Tests;

/// <summary>A raw client with the usual globals bound and a toplevel helper.</summary>
internal sealed class XdgClient : IDisposable
{
    public RawClient C { get; }
    public uint Compositor, Shm, Wm;
    public Dictionary<string, (uint Name, uint Version)> Globals { get; }

    public XdgClient(TestServer s)
    {
        C = new RawClient(s.SocketPath);
        Globals = C.Globals();
        Compositor = C.Bind(Globals, "wl_compositor", 4);
        Shm = C.Bind(Globals, "wl_shm", 1);
        Wm = C.Bind(Globals, "xdg_wm_base", 3);
    }

    public uint Surface()
    {
        uint s = C.NewId();
        C.Send(Compositor, WlCompositor.Requests.CreateSurface, s);
        return s;
    }

    /// <summary>surface + xdg_surface + toplevel, initial commit; returns (surface, xdg_surface, toplevel, configure serial).</summary>
    public (uint Surface, uint Xdg, uint Top, uint Serial) Toplevel(string title = "t")
    {
        uint surf = Surface();
        uint xs = C.NewId(), top = C.NewId();
        C.Send(Wm, XdgWmBase.Requests.GetXdgSurface, xs, surf);
        C.Send(xs, XdgSurface.Requests.GetToplevel, top);
        C.Send(top, XdgToplevel.Requests.SetTitle, title);
        C.Send(top, XdgToplevel.Requests.SetAppId, "test.app");
        C.Send(surf, WlSurface.Requests.Commit);
        Assert.True(C.ReadUntil(e => e.ObjectId == xs && e.Opcode == XdgSurface.Events.Configure), "no configure");
        uint serial = C.Events.Last(e => e.ObjectId == xs && e.Opcode == XdgSurface.Events.Configure).U(0);
        return (surf, xs, top, serial);
    }

    /// <summary>A w x h buffer of <paramref name="pixels"/> in its own pool.</summary>
    public uint Buffer(uint[] pixels, int w, int h, WlShm.Format format = WlShm.Format.Argb8888)
    {
        using var fd = RawClient.PoolFile(pixels);
        uint pool = C.CreatePool(Shm, fd, pixels.Length * 4);
        uint buf = C.NewId();
        C.Send(pool, WlShmPool.Requests.CreateBuffer, buf, 0, w, h, w * 4, (uint)format);
        C.Send(pool, WlShmPool.Requests.Destroy);
        return buf;
    }

    public void Dispose() => C.Dispose();
}

public sealed class ShmTests
{
    public static TheoryData<string> Cases() =>
    [
        "pipe instead of memory", "negative pool size", "pool larger than its file", "buffer past the pool end",
        "stride below width", "stride x height overflows", "unknown format", "pool shrink", "pool bytes over the client limit",
    ];

    [Theory]
    [MemberData(nameof(Cases))]
    public void BadShmRequests_GetTheirProtocolError(string kind)
    {
        using var s = new TestServer(new WaylandServerOptions { MaxPoolBytesPerClient = 1 << 20 });
        using var x = new XdgClient(s);
        var c = x.C;
        using var file = RawClient.PoolFile(new uint[64 * 64]); // 16 KiB
        uint expectObj = x.Shm;
        uint expectCode = (uint)WlShm.Error.InvalidStride;
        uint pool;
        switch (kind)
        {
            case "pipe instead of memory":
                {
                    var (r, w) = FdFiles.CreatePipe();
                    using (r) using (w) c.CreatePool(x.Shm, r, 4096);
                    expectCode = (uint)WlShm.Error.InvalidFd;
                    break;
                }
            case "negative pool size": c.CreatePool(x.Shm, file, -4096); break;
            case "pool larger than its file": c.CreatePool(x.Shm, file, 1 << 20); expectCode = (uint)WlShm.Error.InvalidFd; break;
            case "buffer past the pool end":
                pool = c.CreatePool(x.Shm, file, 16384);
                c.Send(pool, WlShmPool.Requests.CreateBuffer, c.NewId(), 4, 64, 64, 256, (uint)WlShm.Format.Argb8888);
                expectObj = pool;
                break;
            case "stride below width":
                pool = c.CreatePool(x.Shm, file, 16384);
                c.Send(pool, WlShmPool.Requests.CreateBuffer, c.NewId(), 0, 64, 16, 128, (uint)WlShm.Format.Argb8888);
                expectObj = pool;
                break;
            case "stride x height overflows":
                pool = c.CreatePool(x.Shm, file, 16384);
                c.Send(pool, WlShmPool.Requests.CreateBuffer, c.NewId(), 0, 4, 0x40000, 0x7ffffffc, (uint)WlShm.Format.Argb8888);
                expectObj = pool;
                break;
            case "unknown format":
                pool = c.CreatePool(x.Shm, file, 16384);
                c.Send(pool, WlShmPool.Requests.CreateBuffer, c.NewId(), 0, 8, 8, 32, 0x34325258u /* XR24 fourcc is not one of ours */);
                expectObj = pool;
                expectCode = (uint)WlShm.Error.InvalidFormat;
                break;
            case "pool shrink":
                pool = c.CreatePool(x.Shm, file, 16384);
                c.Send(pool, WlShmPool.Requests.Resize, 8192);
                expectObj = pool;
                expectCode = (uint)WlShm.Error.InvalidFd;
                break;
            case "pool bytes over the client limit":
                {
                    using var big = MemFd.Create("big", 2 << 20);
                    c.CreatePool(x.Shm, big, 2 << 20);
                    expectObj = 1;
                    expectCode = (uint)WlDisplay.Error.NoMemory;
                    break;
                }
            default: throw new ArgumentException(kind);
        }
        var (obj, code, msg) = c.ExpectError();
        Assert.True((expectObj, expectCode) == (obj, code), $"got object {obj} code {code}: {msg}");
        RealClientTests.WaitUntil(() => s.Server.ClientCount == 0, "the client to be dropped");
    }

    [Fact]
    public void PoolGrows_AndBuffersInTheGrownPartWork()
    {
        using var s = new TestServer();
        using var x = new XdgClient(s);
        var c = x.C;
        using var file = RawClient.PoolFile(new uint[64 * 64]);
        uint pool = c.CreatePool(x.Shm, file, 4096);
        c.Send(pool, WlShmPool.Requests.Resize, 16384);
        c.Send(pool, WlShmPool.Requests.CreateBuffer, c.NewId(), 8192, 32, 32, 128, (uint)WlShm.Format.Xrgb8888);
        Assert.True(c.Roundtrip());
    }

    [Fact]
    public void OnlyTheDamagedAreaIsCopied_FromASameSizeBuffer()
    {
        using var s = new TestServer();
        using var x = new XdgClient(s);
        var c = x.C;
        var (surf, xs, _, serial) = x.Toplevel();
        c.Send(xs, XdgSurface.Requests.AckConfigure, serial);
        c.Send(surf, WlSurface.Requests.Attach, x.Buffer([1, 2, 3, 4], 2, 2), 0, 0);
        c.Send(surf, WlSurface.Requests.Commit);
        // The client promises the rest is unchanged: only the damaged pixel is taken from the new buffer.
        c.Send(surf, WlSurface.Requests.Attach, x.Buffer([5, 6, 7, 8], 2, 2), 0, 0);
        c.Send(surf, WlSurface.Requests.DamageBuffer, 1, 1, 1, 1);
        c.Send(surf, WlSurface.Requests.Commit);
        Assert.True(c.Roundtrip());
        var w = Assert.Single(s.Server.Windows);
        Assert.Equal(new uint[] { 1, 2, 3, 8 }, TestKit.PixelSourceReader.ReadAll(w.Pixels));
        Assert.Equal(new(1, 1, 1, 1), w.LastDamage);
    }
}

/// <summary>Counts this process's fds, so nothing else may run meanwhile.</summary>
[CollectionDefinition(DisableParallelization = true)]
public sealed class FdCountingCollection;

[Collection(typeof(FdCountingCollection))]
public sealed class FdLeakTests
{
    [Fact]
    public void FdsAreClosed_WhenClientsGo()
    {
        using var s = new TestServer();
        using (var warm = new XdgClient(s)) warm.C.Roundtrip();
        RealClientTests.WaitUntil(() => s.Server.ClientCount == 0, "warm-up client gone");
        int before = FdFiles.OpenCount();
        for (int i = 0; i < 5; i++)
        {
            using var x = new XdgClient(s);
            // A pool and a buffer (fds received), then a protocol error ends the client.
            x.Buffer([1, 2, 3, 4], 2, 2);
            var t = x.Toplevel();
            x.C.Send(t.Xdg, XdgSurface.Requests.AckConfigure, t.Serial + 1000);
            x.C.ExpectError();
        }
        RealClientTests.WaitUntil(() => s.Server.ClientCount == 0, "clients gone");
        Assert.Equal(before, FdFiles.OpenCount());
    }
}

public sealed class XdgTests
{
    private static readonly uint[] FourPixels = [0xff0000ff, 0x80000080, 0x00000000, 0xff00ff00];

    [Fact]
    public void Toplevel_MapsAfterAck_CopiesPixels_ReleasesBuffer_AndAnswersFramesAtPresent()
    {
        using var s = new TestServer();
        var changed = new List<WaylandWindow>();
        var unmapped = new List<WaylandWindow>();
        s.Server.WindowChanged += w => { lock (changed) changed.Add(w); };
        s.Server.WindowUnmapped += w => { lock (unmapped) unmapped.Add(w); };
        using var x = new XdgClient(s);
        var c = x.C;
        var (surf, xs, top, serial) = x.Toplevel("hello");
        c.Send(xs, XdgSurface.Requests.AckConfigure, serial);
        uint buf = x.Buffer(FourPixels, 2, 2);
        c.Send(surf, WlSurface.Requests.Attach, buf, 0, 0);
        c.Send(surf, WlSurface.Requests.DamageBuffer, 0, 0, 2, 2);
        uint frame = c.NewId();
        c.Send(surf, WlSurface.Requests.Frame, frame);
        c.Send(surf, WlSurface.Requests.Commit);
        Assert.True(c.ReadUntil(e => e.ObjectId == buf && e.Opcode == WlBuffer.Events.Release), "no wl_buffer.release");
        Assert.True(c.Roundtrip());
        Assert.DoesNotContain(c.Events, e => e.ObjectId == frame); // only at the next output frame

        var w = Assert.Single(s.Server.Windows);
        Assert.Equal(("hello", "test.app", 2, 2), (w.Title, w.AppId, w.Width, w.Height));
        Assert.Equal(FourPixels, TestKit.PixelSourceReader.ReadAll(w.Pixels));
        Assert.Equal(1, w.Commits);

        s.Server.FramePresented(TimeSpan.FromMilliseconds(4321));
        Assert.True(c.ReadUntil(e => e.ObjectId == frame && e.Opcode == WlCallback.Events.Done), "no frame done");
        Assert.Equal(4321u, c.Events.First(e => e.ObjectId == frame).U(0));

        // xrgb8888: alpha forced opaque.
        uint buf2 = x.Buffer([0x00123456, 0x7f654321, 0, 0x01010101], 2, 2, WlShm.Format.Xrgb8888);
        c.Send(surf, WlSurface.Requests.Attach, buf2, 0, 0);
        c.Send(surf, WlSurface.Requests.Damage, 0, 0, 2, 2);
        c.Send(surf, WlSurface.Requests.Commit);
        Assert.True(c.Roundtrip());
        Assert.Equal(new uint[] { 0xff123456, 0xff654321, 0xff000000, 0xff010101 }, TestKit.PixelSourceReader.ReadAll(w.Pixels));

        // A null buffer unmaps.
        c.Send(surf, WlSurface.Requests.Attach, 0u, 0, 0);
        c.Send(surf, WlSurface.Requests.Commit);
        Assert.True(c.Roundtrip());
        Assert.Empty(s.Server.Windows);
        lock (unmapped) Assert.Contains(w, unmapped);
        Assert.Null(w.Pixels.AcquireCurrent());
    }

    [Fact]
    public void ReaderHoldingAnImage_NeverSeesItChange()
    {
        using var s = new TestServer();
        using var x = new XdgClient(s);
        var c = x.C;
        var (surf, xs, _, serial) = x.Toplevel();
        c.Send(xs, XdgSurface.Requests.AckConfigure, serial);
        c.Send(surf, WlSurface.Requests.Attach, x.Buffer([1, 2, 3, 4], 2, 2), 0, 0);
        c.Send(surf, WlSurface.Requests.Commit);
        Assert.True(c.Roundtrip());
        var w = Assert.Single(s.Server.Windows);
        var held = w.Pixels.AcquireCurrent()!;
        try
        {
            var before = held.Memory.AsSpan(held.Offset, 16).ToArray();
            for (uint i = 0; i < 3; i++)
            {
                c.Send(surf, WlSurface.Requests.Attach, x.Buffer([10 + i, 20, 30, 40], 2, 2), 0, 0);
                c.Send(surf, WlSurface.Requests.DamageBuffer, 0, 0, 2, 2);
                c.Send(surf, WlSurface.Requests.Commit);
                Assert.True(c.Roundtrip());
            }
            Assert.Equal(before, held.Memory.AsSpan(held.Offset, 16).ToArray());
            Assert.Equal(new uint[] { 12, 20, 30, 40 }, TestKit.PixelSourceReader.ReadAll(w.Pixels));
        }
        finally { held.Memory.Release(); }
    }

    public static TheoryData<string> Errors() =>
    [
        "buffer before the first ack", "ack of a serial never sent", "second role", "xdg_surface destroyed before its toplevel",
        "empty window geometry", "commit before a role object", "attach offset on wl_surface v5",
        "popup with an incomplete positioner", "wm_base destroyed with surfaces", "min size above max size",
    ];

    [Theory]
    [MemberData(nameof(Errors))]
    public void ProtocolErrors_PerSpec(string kind)
    {
        using var s = new TestServer();
        using var x = new XdgClient(s);
        var c = x.C;
        uint obj; uint code;
        switch (kind)
        {
            case "buffer before the first ack":
                {
                    var (surf, xs, _, _) = x.Toplevel();
                    c.Send(surf, WlSurface.Requests.Attach, x.Buffer([1, 2, 3, 4], 2, 2), 0, 0);
                    c.Send(surf, WlSurface.Requests.Commit);
                    (obj, code) = (xs, (uint)XdgSurface.Error.UnconfiguredBuffer);
                    break;
                }
            case "ack of a serial never sent":
                {
                    var (_, xs, _, serial) = x.Toplevel();
                    c.Send(xs, XdgSurface.Requests.AckConfigure, serial + 1000);
                    (obj, code) = (xs, (uint)XdgSurface.Error.InvalidSerial);
                    break;
                }
            case "second role":
                {
                    var (surf, _, _, _) = x.Toplevel();
                    c.Send(x.Wm, XdgWmBase.Requests.GetXdgSurface, c.NewId(), surf);
                    (obj, code) = (x.Wm, (uint)XdgWmBase.Error.Role);
                    break;
                }
            case "xdg_surface destroyed before its toplevel":
                {
                    var (_, xs, _, _) = x.Toplevel();
                    c.Send(xs, XdgSurface.Requests.Destroy);
                    (obj, code) = (xs, (uint)XdgSurface.Error.DefunctRoleObject);
                    break;
                }
            case "empty window geometry":
                {
                    var (_, xs, _, _) = x.Toplevel();
                    c.Send(xs, XdgSurface.Requests.SetWindowGeometry, 0, 0, 0, 10);
                    (obj, code) = (xs, (uint)XdgSurface.Error.InvalidSize);
                    break;
                }
            case "commit before a role object":
                {
                    uint surf = x.Surface(), xs = c.NewId();
                    c.Send(x.Wm, XdgWmBase.Requests.GetXdgSurface, xs, surf);
                    c.Send(surf, WlSurface.Requests.Commit);
                    (obj, code) = (xs, (uint)XdgSurface.Error.NotConstructed);
                    break;
                }
            case "attach offset on wl_surface v5":
                {
                    uint comp5 = c.Bind(x.Globals, "wl_compositor", 5), surf = c.NewId();
                    c.Send(comp5, WlCompositor.Requests.CreateSurface, surf);
                    c.Send(surf, WlSurface.Requests.Attach, 0u, 3, 4);
                    (obj, code) = (surf, (uint)WlSurface.Error.InvalidOffset);
                    break;
                }
            case "popup with an incomplete positioner":
                {
                    var (_, parent, _, _) = x.Toplevel();
                    uint pos = c.NewId(), surf = x.Surface(), xs = c.NewId();
                    c.Send(x.Wm, XdgWmBase.Requests.CreatePositioner, pos);
                    c.Send(pos, XdgPositioner.Requests.SetSize, 10, 10); // no anchor rect
                    c.Send(x.Wm, XdgWmBase.Requests.GetXdgSurface, xs, surf);
                    c.Send(xs, XdgSurface.Requests.GetPopup, c.NewId(), parent, pos);
                    (obj, code) = (x.Wm, (uint)XdgWmBase.Error.InvalidPositioner);
                    break;
                }
            case "wm_base destroyed with surfaces":
                x.Toplevel();
                c.Send(x.Wm, XdgWmBase.Requests.Destroy);
                (obj, code) = (x.Wm, (uint)XdgWmBase.Error.DefunctSurfaces);
                break;
            case "min size above max size":
                {
                    var (surf, _, top, _) = x.Toplevel();
                    c.Send(top, XdgToplevel.Requests.SetMinSize, 100, 100);
                    c.Send(top, XdgToplevel.Requests.SetMaxSize, 50, 50);
                    c.Send(surf, WlSurface.Requests.Commit);
                    (obj, code) = (top, (uint)XdgToplevel.Error.InvalidSize);
                    break;
                }
            default: throw new ArgumentException(kind);
        }
        var (o, cd, msg) = c.ExpectError();
        Assert.True((obj, code) == (o, cd), $"got object {o} code {cd}: {msg}");
    }

    [Fact]
    public void Subsurface_Sync_IsAppliedWithTheParent_InStackingOrder()
    {
        using var s = new TestServer();
        using var x = new XdgClient(s);
        var c = x.C;
        var (root, xs, _, serial) = x.Toplevel();
        c.Send(xs, XdgSurface.Requests.AckConfigure, serial);
        uint sub = c.Bind(x.Globals, "wl_subcompositor", 1);
        uint child = x.Surface(), subsurface = c.NewId();
        c.Send(sub, WlSubcompositor.Requests.GetSubsurface, subsurface, child, root);
        c.Send(subsurface, WlSubsurface.Requests.SetPosition, 1, 1);
        c.Send(root, WlSurface.Requests.Attach, x.Buffer(Enumerable.Repeat(0xff0000ffu, 4).ToArray(), 2, 2), 0, 0);
        c.Send(root, WlSurface.Requests.Commit);
        Assert.True(c.Roundtrip());
        var w = Assert.Single(s.Server.Windows);
        Assert.Equal((2, 2), (w.Width, w.Height));

        // The child's commit is cached until the parent commits (sync mode).
        c.Send(child, WlSurface.Requests.Attach, x.Buffer(Enumerable.Repeat(0xff00ff00u, 4).ToArray(), 2, 2), 0, 0);
        c.Send(child, WlSurface.Requests.Commit);
        Assert.True(c.Roundtrip());
        Assert.Equal((2, 2), (w.Width, w.Height));
        c.Send(root, WlSurface.Requests.Commit);
        Assert.True(c.Roundtrip());
        Assert.Equal((3, 3), (w.Width, w.Height));
        const uint R = 0xff0000ff, G = 0xff00ff00, _ = 0;
        Assert.Equal(new uint[] { R, R, _, R, G, G, _, G, G }, TestKit.PixelSourceReader.ReadAll(w.Pixels));

        // Place the child below the parent: the parent covers the overlap.
        c.Send(subsurface, WlSubsurface.Requests.PlaceBelow, root);
        c.Send(root, WlSurface.Requests.Commit);
        Assert.True(c.Roundtrip());
        Assert.Equal(new uint[] { R, R, _, R, R, G, _, G, G }, TestKit.PixelSourceReader.ReadAll(w.Pixels));

        // Desync: the child's commits apply at once.
        c.Send(subsurface, WlSubsurface.Requests.SetDesync);
        c.Send(child, WlSurface.Requests.Attach, x.Buffer(Enumerable.Repeat(0x80000080u, 4).ToArray(), 2, 2), 0, 0);
        c.Send(child, WlSurface.Requests.DamageBuffer, 0, 0, 2, 2);
        c.Send(child, WlSurface.Requests.Commit);
        Assert.True(c.Roundtrip());
        Assert.Equal(new uint[] { R, R, _, R, R, 0x80000080, _, 0x80000080, 0x80000080 }, TestKit.PixelSourceReader.ReadAll(w.Pixels));
        Assert.Equal(new(1, 1, 2, 2), w.LastDamage);
    }

    [Fact]
    public void Viewport_ScalesTheBuffer_AndBufferScaleHalvesTheSize()
    {
        using var s = new TestServer();
        using var x = new XdgClient(s);
        var c = x.C;
        var (surf, xs, _, serial) = x.Toplevel();
        c.Send(xs, XdgSurface.Requests.AckConfigure, serial);
        uint vp = c.NewId();
        c.Send(c.Bind(x.Globals, "wp_viewporter", 1), WpViewporter.Requests.GetViewport, vp, surf);
        c.Send(vp, WpViewport.Requests.SetDestination, 4, 4);
        c.Send(surf, WlSurface.Requests.Attach, x.Buffer(FourPixels, 2, 2), 0, 0);
        c.Send(surf, WlSurface.Requests.Commit);
        Assert.True(c.Roundtrip());
        var w = Assert.Single(s.Server.Windows);
        Assert.Equal((4, 4), (w.Width, w.Height));
        var p = TestKit.PixelSourceReader.ReadAll(w.Pixels);
        Assert.Equal(FourPixels[0], p[0]);
        Assert.Equal(FourPixels[1], p[3]);
        Assert.Equal(FourPixels[2], p[8]);
        Assert.Equal(FourPixels[3], p[15]);

        c.Send(vp, WpViewport.Requests.SetDestination, -1, -1);
        c.Send(surf, WlSurface.Requests.SetBufferScale, 2);
        c.Send(surf, WlSurface.Requests.Commit);
        Assert.True(c.Roundtrip());
        Assert.Equal((1, 1), (w.Width, w.Height));
    }

    [Fact]
    public void PresentationFeedback_PresentedAtTheFrame_DiscardedWhenReplaced()
    {
        using var s = new TestServer();
        using var x = new XdgClient(s);
        var c = x.C;
        uint pres = c.Bind(x.Globals, "wp_presentation", 1);
        var (surf, xs, _, serial) = x.Toplevel();
        c.Send(xs, XdgSurface.Requests.AckConfigure, serial);
        uint fb1 = c.NewId(), fb2 = c.NewId();
        c.Send(pres, WpPresentation.Requests.Feedback, surf, fb1);
        c.Send(surf, WlSurface.Requests.Attach, x.Buffer(FourPixels, 2, 2), 0, 0);
        c.Send(surf, WlSurface.Requests.Commit);
        c.Send(pres, WpPresentation.Requests.Feedback, surf, fb2);
        c.Send(surf, WlSurface.Requests.Commit);
        Assert.True(c.ReadUntil(e => e.ObjectId == fb1 && e.Opcode == WpPresentationFeedback.Events.Discarded), "fb1 not discarded");
        s.Server.FramePresented(new TimeSpan(0, 0, 0, 7, 250));
        Assert.True(c.ReadUntil(e => e.ObjectId == fb2 && e.Opcode == WpPresentationFeedback.Events.Presented), "fb2 not presented");
        var p = c.Events.First(e => e.ObjectId == fb2 && e.Opcode == WpPresentationFeedback.Events.Presented);
        Assert.Equal((0u, 7u, 250_000_000u), (p.U(0), p.U(1), p.U(2)));
        Assert.Equal(1_000_000_000u / 60, p.U(3));
        Assert.Contains(c.Events, e => e.ObjectId == pres && e.Opcode == WpPresentation.Events.ClockId && e.U(0) == 1);
    }

    [Fact]
    public void Selection_Replaced_CancelsTheOldSource()
    {
        using var s = new TestServer();
        using var x = new XdgClient(s);
        var c = x.C;
        uint ddm = c.Bind(x.Globals, "wl_data_device_manager", 3), seat = c.Bind(x.Globals, "wl_seat", 7);
        uint dev = c.NewId(), src1 = c.NewId(), src2 = c.NewId();
        c.Send(ddm, WlDataDeviceManager.Requests.GetDataDevice, dev, seat);
        c.Send(ddm, WlDataDeviceManager.Requests.CreateDataSource, src1);
        c.Send(src1, WlDataSource.Requests.Offer, "text/plain");
        c.Send(dev, WlDataDevice.Requests.SetSelection, src1, 1u);
        c.Send(ddm, WlDataDeviceManager.Requests.CreateDataSource, src2);
        c.Send(dev, WlDataDevice.Requests.SetSelection, src2, 2u);
        Assert.True(c.ReadUntil(e => e.ObjectId == src1 && e.Opcode == WlDataSource.Events.Cancelled), "old source not cancelled");
        Assert.DoesNotContain(c.Events, e => e.ObjectId == src2 && e.Opcode == WlDataSource.Events.Cancelled);
        Assert.Contains(c.Events, e => e.ObjectId == seat && e.Opcode == WlSeat.Events.Capabilities && e.U(0) == 0);
        Assert.Contains(c.Events, e => e.ObjectId == seat && e.Opcode == WlSeat.Events.Name && e.S(0) == "seat0");
    }

    [Fact]
    public void Popup_IsPlacedByItsPositioner_AndDrawnIntoTheWindow()
    {
        using var s = new TestServer();
        using var x = new XdgClient(s);
        var c = x.C;
        var (surf, xs, _, serial) = x.Toplevel();
        c.Send(xs, XdgSurface.Requests.AckConfigure, serial);
        c.Send(surf, WlSurface.Requests.Attach, x.Buffer(new uint[100], 10, 10), 0, 0);
        c.Send(surf, WlSurface.Requests.Commit);
        uint pos = c.NewId(), psurf = x.Surface(), pxs = c.NewId(), popup = c.NewId();
        c.Send(x.Wm, XdgWmBase.Requests.CreatePositioner, pos);
        c.Send(pos, XdgPositioner.Requests.SetSize, 4, 4);
        c.Send(pos, XdgPositioner.Requests.SetAnchorRect, 2, 2, 2, 2);
        c.Send(pos, XdgPositioner.Requests.SetAnchor, (uint)XdgPositioner.Anchor.BottomRight);
        c.Send(pos, XdgPositioner.Requests.SetGravity, (uint)XdgPositioner.Gravity.BottomRight);
        c.Send(pos, XdgPositioner.Requests.SetOffset, 1, 0);
        c.Send(x.Wm, XdgWmBase.Requests.GetXdgSurface, pxs, psurf);
        c.Send(pxs, XdgSurface.Requests.GetPopup, popup, xs, pos);
        c.Send(psurf, WlSurface.Requests.Commit);
        Assert.True(c.ReadUntil(e => e.ObjectId == popup && e.Opcode == XdgPopup.Events.Configure), "no popup configure");
        var cfg = c.Events.First(e => e.ObjectId == popup && e.Opcode == XdgPopup.Events.Configure);
        Assert.Equal((5, 4, 4, 4), (cfg.I(0), cfg.I(1), cfg.I(2), cfg.I(3)));
        Assert.True(c.ReadUntil(e => e.ObjectId == pxs && e.Opcode == XdgSurface.Events.Configure));
        c.Send(pxs, XdgSurface.Requests.AckConfigure, c.Events.Last(e => e.ObjectId == pxs).U(0));
        c.Send(psurf, WlSurface.Requests.Attach, x.Buffer(Enumerable.Repeat(0xffffffffu, 16).ToArray(), 4, 4), 0, 0);
        c.Send(psurf, WlSurface.Requests.Commit);
        Assert.True(c.Roundtrip());
        var w = Assert.Single(s.Server.Windows);
        var p = TestKit.PixelSourceReader.ReadAll(w.Pixels);
        Assert.Equal((10, 10), (w.Width, w.Height)); // popups do not grow the window
        Assert.Equal(0xffffffffu, p[4 * 10 + 5]);
        Assert.Equal(0xffffffffu, p[7 * 10 + 8]);
        Assert.Equal(0u, p[3 * 10 + 5]);
        Assert.Equal(0u, p[4 * 10 + 9]);
    }

    [Fact]
    public void Positioner_FlipsAndSlides_IntoTheBounds()
    {
        var p = new Compositor.Wayland.Protocols.PositionerState(20, 10, new IntRect(90, 40, 10, 10), true,
            (uint)XdgPositioner.Anchor.Right, (uint)XdgPositioner.Gravity.Right,
            (uint)(XdgPositioner.ConstraintAdjustment.FlipX | XdgPositioner.ConstraintAdjustment.SlideY), 0, 0);
        var bounds = new IntRect(0, 0, 100, 48);
        var r = Compositor.Wayland.Protocols.PositionerResource.Place(p, bounds);
        Assert.Equal(new IntRect(70, 38, 20, 10), r); // flipped to the left of the anchor, slid up into the bounds
    }
}
