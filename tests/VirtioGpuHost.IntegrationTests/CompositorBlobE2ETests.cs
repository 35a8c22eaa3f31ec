using System.Diagnostics;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;
using VirtioGpuHost.Compositor;
using VirtioGpuHost.Compositor.Core.Geometry;
using VirtioGpuHost.Compositor.Core.Layout;
using VirtioGpuHost.Compositor.Outputs;
using VirtioGpuHost.Compositor.Rendering.Cpu;
using VirtioGpuHost.Device.Wire;
using VirtioGpuHost.FrontEnd;
using VirtioGpuHost.GuestMemory;
using VirtioGpuHost.TestKit;

namespace VirtioGpuHost.IntegrationTests;

/// <summary>
/// Blob and 2D surfaces of three VMs in one composited output, every VM a reference front-end
/// over its real vhost-user socket: a 2D framebuffer (TRANSFER_TO_HOST_2D), a GUEST blob in
/// guest RAM (SET_SCANOUT_BLOB), and a HOST3D blob the guest maps into its host-visible region
/// (MAP_BLOB → SHMEM_MAP) and draws into through that mapping. The output must show all three
/// pixel-exact, and the blob VMs' copy counters must stay at zero.
/// </summary>
public sealed class CompositorBlobE2ETests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("vgh-blob-").FullName;
    private readonly ListLoggerProvider _logs = new();
    private readonly ILoggerFactory _loggers;

    public CompositorBlobE2ETests() => _loggers = LoggerFactory.Create(b => b.AddProvider(_logs).SetMinimumLevel(LogLevel.Information));

    public void Dispose()
    {
        _loggers.Dispose();
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    // 600x200 output, three zones of 200x200 (label 20, border 2): content 196x176 at x+2, 22.
    private const int W = 196, H = 176;
    private static RectI Content(int zone) => new(zone * 200 + 2, 22, W, H);

    private LayoutConfig Layout()
    {
        string Vm(string name, string cls) => $$"""
            [[vm]]
            name = "{{name}}"
            socket = "{{_dir}}/{{name}}.sock"
            label = "{{name.ToUpperInvariant()}}"
            label_color = "#303030"
            class = "{{cls}}"
            frame_period_ms = 5000
            virgl_compat = true
            host_visible_mib = 16

            """;
        string Zone(int i, string name, string cls) => $$"""
            [[zone]]
            name = "{{name}}"
            output = "main"
            rect = [{{i * 200}}, 0, 200, 200]
            class = "{{cls}}"

            [[placement]]
            vm = "{{name}}"
            zone = "{{name}}"

            """;
        var toml = $$"""
            [layout]
            label_height = 20
            border_width = 2

            [[output]]
            name = "main"
            width = 600
            height = 200

            """ + Zone(0, "twod", "critical") + Zone(1, "guestblob", "normal") + Zone(2, "hostblob", "normal")
            + Vm("twod", "critical") + Vm("guestblob", "normal") + Vm("hostblob", "normal");
        var result = LayoutLoader.Load(toml, "blob-e2e.toml");
        Assert.True(result.Success, result.ToString());
        return result.Layout!;
    }

    private static uint Pixel(int vm, int x, int y) => 0xFF000000 | (uint)(vm * 80 + 40) << 16 | (uint)(x & 0xFF) << 8 | (uint)(y & 0xFF);

    private static GpuVm Connect(string socket, bool blob) =>
        GpuVm.Connect(socket, new GpuVmOptions { RamSize = 32UL << 20, Blob = blob, HostVisibleSize = blob ? 16UL << 20 : 0 });

    [Fact]
    public void TwoDAndBlobSurfacesOfThreeVms_InOneOutput_PixelExact_BlobScanoutsCopyNothing()
    {
        var layout = Layout();
        using var renderer = new CpuRenderer();
        using var host = new CompositorHost(layout, renderer, _loggers, new CompositorHostOptions { FrameClock = false });
        host.Start();
        var full = new VirtioGpuRect(0, 0, W, H);

        // VM 0: a 2D resource, pixels transferred from guest pages.
        using var twod = Connect(layout.Vm("twod")!.Socket, blob: false);
        var fb0 = FrameBuffer.Allocate(twod.Ram, W, H, VirtioGpuFormat.B8G8R8X8Unorm, scattered: true);
        fb0.Fill((x, y) => Pixel(0, (int)x, (int)y));
        twod.Driver.SetUpFrameBuffer(1, fb0, 0);
        twod.Driver.Present(1, fb0, full);

        // VM 1: a GUEST blob over contiguous guest pages, scanned out in place.
        using var guest = Connect(layout.Vm("guestblob")!.Socket, blob: true);
        var fb1 = FrameBuffer.Allocate(guest.Ram, W, H, VirtioGpuFormat.B8G8R8X8Unorm, scattered: false);
        fb1.Fill((x, y) => Pixel(1, (int)x, (int)y));
        GpuDriver.Expect(guest.Driver.CreateBlob(1, VirtioGpuResourceCreateBlob.MemGuest, VirtioGpuResourceCreateBlob.FlagUseShareable, fb1.Length, fb1.Entries), "CREATE_BLOB guest");
        GpuDriver.Expect(guest.Driver.SetScanoutBlob(0, 1, full, W, H, VirtioGpuFormat.B8G8R8X8Unorm, W * 4), "SET_SCANOUT_BLOB");
        GpuDriver.Expect(guest.Driver.Flush(1, full), "RESOURCE_FLUSH");

        // VM 2: a HOST3D blob mapped into the host-visible region; the guest draws through the mapping.
        using var hostVm = Connect(layout.Vm("hostblob")!.Socket, blob: true);
        var d = hostVm.Driver;
        // HOST3D memory is named by the context that provides it: a cross-domain context (capset 5)
        // with a query ring answers GET_IMAGE_REQUIREMENTS with the blob_id to create (as a guest's
        // proxy allocates its buffers).
        GpuDriver.Expect(d.CtxCreate(1, 5, "e2e"), "CTX_CREATE");
        var queryRing = hostVm.Ram.Allocator.Allocate(4096);
        GpuDriver.Expect(d.CreateBlob(10, VirtioGpuResourceCreateBlob.MemGuest, VirtioGpuResourceCreateBlob.FlagUseMappable, 4096, [new GuestBuffer(queryRing, 4096)]), "query ring");
        GpuDriver.Expect(d.CtxAttachResource(1, 10), "attach query ring");
        GpuDriver.Expect(d.Submit3D(1, FrontEnd.CrossDomain.CrossDomainGuestWire.InitLegacy(10, channelType: 0)), "cross-domain INIT (query ring only)");
        GpuDriver.Expect(d.Submit3D(1, FrontEnd.CrossDomain.CrossDomainGuestWire.GetImageRequirements(W, H, FrontEnd.CrossDomain.CrossDomainGuestWire.DrmFormatXrgb8888),
            fence: true, ringIdx: FrontEnd.CrossDomain.CrossDomainGuestWire.QueryRing), "GET_IMAGE_REQUIREMENTS");
        var reqs = FrontEnd.CrossDomain.CrossDomainGuestWire.ImageRequirementsReply.Parse(hostVm.Ram.Span(queryRing, 64));
        Assert.Equal((uint)W * 4, reqs.Stride0);
        ulong size = reqs.Size;
        Assert.True(size >= (ulong)W * H * 4);
        GpuDriver.Expect(d.CreateBlob(2, VirtioGpuResourceCreateBlob.MemHost3D, VirtioGpuResourceCreateBlob.FlagUseMappable | VirtioGpuResourceCreateBlob.FlagUseShareable, size, blobId: reqs.BlobId, ctxId: 1), "CREATE_BLOB host3d");
        const ulong MapAt = 0x10_0000;
        var map = d.MapBlob(2, MapAt);
        Assert.Equal(VirtioGpuCtrlType.OkMapInfo, map.Type);
        var pixels = new uint[W * H];
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) pixels[y * W + x] = Pixel(2, x, y);
        Assert.Equal(HostVisibleAccess.Mapped, hostVm.HostVisible!.Write(MapAt, MemoryMarshal.AsBytes(pixels.AsSpan())));
        GpuDriver.Expect(d.SetScanoutBlob(0, 2, full, W, H, VirtioGpuFormat.B8G8R8X8Unorm, W * 4), "SET_SCANOUT_BLOB host3d");
        GpuDriver.Expect(d.Flush(2, full), "RESOURCE_FLUSH host3d");

        var output = (HeadlessOutput)host.Engine.Output("main")!;
        Assert.True(ComposeUntil(host, () => AllExact(output.Snapshot())), Mismatch(output.Snapshot()));
        Assert.Equal(0, host.Engine.SafetyFailures);

        // The guest keeps drawing through the mapping: a flush shows it, still without copies.
        var stripe = Enumerable.Repeat(0xFFFFFFFFu, W).ToArray();
        Assert.Equal(HostVisibleAccess.Mapped, hostVm.HostVisible!.Write(MapAt + 50UL * W * 4, MemoryMarshal.AsBytes(stripe.AsSpan())));
        GpuDriver.Expect(d.Flush(2, new VirtioGpuRect(0, 50, W, 1)), "RESOURCE_FLUSH stripe");
        var c = Content(2);
        Assert.True(ComposeUntil(host, () => output.Snapshot()[(c.Y + 50) * 600 + c.X + 7] == 0xFFFFFFFF), "the stripe drawn through the mapping never showed");

        Assert.Equal((0UL, 0), host.ScanoutStats("guestblob"));
        Assert.Equal((0UL, 1), host.ScanoutStats("hostblob"));
        Assert.Equal((ulong)W * H * 4, host.ScanoutStats("twod").BytesCopied); // one full 2D transfer
    }

    private static bool AllExact(uint[] snap)
    {
        for (int vm = 0; vm < 3; vm++)
        {
            var c = Content(vm);
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++)
                    if (snap[(c.Y + y) * 600 + c.X + x] != Pixel(vm, x, y)) return false;
        }
        return true;
    }

    private static string Mismatch(uint[] snap)
    {
        for (int vm = 0; vm < 3; vm++)
        {
            var c = Content(vm);
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++)
                    if (snap[(c.Y + y) * 600 + c.X + x] is var got && got != Pixel(vm, x, y))
                        return $"vm {vm} pixel ({x},{y}) is {got:x8}, expected {Pixel(vm, x, y):x8}";
        }
        return "";
    }

    private static bool ComposeUntil(CompositorHost host, Func<bool> condition)
    {
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < TimeSpan.FromSeconds(20))
        {
            host.Engine.ComposeFrame();
            if (condition()) return true;
            Thread.Sleep(16);
        }
        return false;
    }
}
