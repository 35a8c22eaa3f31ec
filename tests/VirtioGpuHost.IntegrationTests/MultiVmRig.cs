using System.Diagnostics;
using Microsoft.Extensions.Logging;
using VirtioGpuHost.Compositor;
using VirtioGpuHost.Compositor.Core.Geometry;
using VirtioGpuHost.Compositor.Core.Layout;
using VirtioGpuHost.Compositor.Outputs;
using VirtioGpuHost.Compositor.Rendering.Cpu;
using VirtioGpuHost.Device.Wire;
using VirtioGpuHost.FrontEnd;
using VirtioGpuHost.TestKit;

namespace VirtioGpuHost.IntegrationTests;

/// <summary>
/// A compositor host serving <c>n</c> VMs (named vm0..vmN-1, blob devices with a 16 MiB
/// host-visible region), each in its own 200x200 zone of one output row, in step mode (frames are
/// composed by the test). Shared by the isolation, guest-memory-shrink and soak tests.
/// </summary>
public sealed class MultiVmRig : IDisposable
{
    public const int ZoneSize = 200, W = 196, H = 176; // content of a zone: label 20, border 2
    private readonly string _dir = Directory.CreateTempSubdirectory("vgh-multi-").FullName;
    private readonly ILoggerFactory _loggers;
    private readonly CpuRenderer _renderer = new();

    public MultiVmRig(int vms, string extraVmKeys = "", bool frameClock = false)
    {
        Logs = new ListLoggerProvider();
        _loggers = LoggerFactory.Create(b => b.AddProvider(Logs).SetMinimumLevel(LogLevel.Information));
        var toml = new System.Text.StringBuilder($$"""
            [layout]
            label_height = 20
            border_width = 2

            [[output]]
            name = "main"
            width = {{vms * ZoneSize}}
            height = {{ZoneSize}}

            """);
        for (int i = 0; i < vms; i++)
        {
            toml.Append($$"""
                [[zone]]
                name = "z{{i}}"
                output = "main"
                rect = [{{i * ZoneSize}}, 0, {{ZoneSize}}, {{ZoneSize}}]
                class = "normal"

                [[vm]]
                name = "vm{{i}}"
                socket = "{{_dir}}/vm{{i}}.sock"
                label = "VM{{i}}"
                label_color = "#303030"
                class = "normal"
                frame_period_ms = 60000
                virgl_compat = true
                host_visible_mib = 16
                fallback = "color:#101010"
                {{extraVmKeys}}

                [[placement]]
                vm = "vm{{i}}"
                zone = "z{{i}}"

                """);
        }
        var result = LayoutLoader.Load(toml.ToString(), "multi-vm.toml");
        Assert.True(result.Success, result.ToString());
        Layout = result.Layout!;
        Host = new CompositorHost(Layout, _renderer, _loggers, new CompositorHostOptions { FrameClock = frameClock });
        Host.Start();
        Output = (HeadlessOutput)Host.Engine.Output("main")!;
    }

    public ListLoggerProvider Logs { get; }
    public LayoutConfig Layout { get; }
    public CompositorHost Host { get; }
    public HeadlessOutput Output { get; }
    public int Width => Layout.Outputs[0].Width;

    public string Socket(int vm) => Layout.Vm($"vm{vm}")!.Socket;

    public static RectI Content(int zone) => new(zone * ZoneSize + 2, 22, W, H);

    public GpuVm Connect(int vm, ulong ram = 16UL << 20) =>
        GpuVm.Connect(Socket(vm), new GpuVmOptions { RamSize = ram, Blob = true, HostVisibleSize = 16UL << 20 });

    /// <summary>The pixels of a zone's content rectangle in the last composed frame.</summary>
    public uint[] ZonePixels(int zone)
    {
        var snap = Output.Snapshot();
        var c = Content(zone);
        var pixels = new uint[W * H];
        for (int y = 0; y < H; y++) snap.AsSpan((c.Y + y) * Width + c.X, W).CopyTo(pixels.AsSpan(y * W));
        return pixels;
    }

    public bool ComposeUntil(Func<bool> condition, double seconds = 20)
    {
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < TimeSpan.FromSeconds(seconds))
        {
            Host.Engine.ComposeFrame();
            if (condition()) return true;
            Thread.Sleep(5);
        }
        return false;
    }

    public bool ZoneShows(int zone, Func<int, int, uint> expected)
    {
        var p = ZonePixels(zone);
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
                if (p[y * W + x] != expected(x, y)) return false;
        return true;
    }

    /// <summary>A full-content 2D framebuffer on scanout 0, filled and presented.</summary>
    public static FrameBuffer Draw2D(GpuVm vm, uint resourceId, Func<uint, uint, uint> pixel)
    {
        var fb = FrameBuffer.Allocate(vm.Ram, W, H, VirtioGpuFormat.B8G8R8X8Unorm, scattered: true);
        fb.Fill(pixel);
        vm.Driver.SetUpFrameBuffer(resourceId, fb, 0);
        vm.Driver.Present(resourceId, fb, new VirtioGpuRect(0, 0, W, H));
        return fb;
    }

    public void Dispose()
    {
        Host.Dispose();
        _renderer.Dispose();
        _loggers.Dispose();
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }
}
