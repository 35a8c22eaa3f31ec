using BenchmarkDotNet.Attributes;
using VirtioGpuHost.Compositor.Core.Geometry;
using VirtioGpuHost.Compositor.Rendering;
using VirtioGpuHost.Compositor.Rendering.Cpu;
using VirtioGpuHost.Device;
using VirtioGpuHost.Device.Display;
using VirtioGpuHost.Device.Wire;
using VirtioGpuHost.FrontEnd;
using VirtioGpuHost.TestKit;

namespace VirtioGpuHost.Benchmarks;

/// <summary>
/// One 1920x1080 full-damage frame from guest to output, the blob issue's comparison: the guest
/// changes its framebuffer, submits its commands through the real split queue and device, and a
/// compositor-like display draws the flushed surface onto a 1080p output with the CPU renderer
/// (zero-copy import of whatever memory the device presents).
/// <list type="bullet">
/// <item>2D: TRANSFER_TO_HOST_2D (guest pages → the resource's host memfd) + RESOURCE_FLUSH.</item>
/// <item>blob: RESOURCE_FLUSH of a GUEST blob scanned out with SET_SCANOUT_BLOB: the compositor reads guest RAM.</item>
/// </list>
/// Bytes copied per frame (the device's ScanoutBytesCopied + BlobGatherBytes) are printed at the end of each run.
/// </summary>
public class ScanoutPathBenchmarks
{
    private const uint W = 1920, H = 1080;
    private DeviceRig _rig = null!;
    private FrameBuffer _fb = null!;
    private CompositingDisplay _display = null!;
    private byte[] _transfer = null!, _flush = null!;
    private readonly byte[] _marker = new byte[64];
    private int _frame;
    private ulong _copied0;
    private TimeSpan _cpu0;
    private int _frames0;

    [Params("2d", "blob")]
    public string Path { get; set; } = "2d";

    [GlobalSetup]
    public void Setup()
    {
        _rig = DeviceRig.Create(new GpuDeviceOptions { Blob = true, MaxHostMemory = 512UL << 20 }, ramSize: 64UL << 20);
        _display = new CompositingDisplay();
        _rig.Device.Display = _display;
        _fb = FrameBuffer.Allocate(_rig.Ram, W, H, VirtioGpuFormat.B8G8R8X8Unorm, scattered: false);
        _fb.Fill((x, y) => 0xFF000000 | x << 8 | y);
        var d = _rig.Driver;
        var full = new VirtioGpuRect(0, 0, W, H);
        if (Path == "2d")
        {
            d.SetUpFrameBuffer(1, _fb, 0);
            _transfer = Bytes(d.TransferCommand(1, full, 0));
        }
        else
        {
            GpuDriver.Expect(d.CreateBlob(1, VirtioGpuResourceCreateBlob.MemGuest, VirtioGpuResourceCreateBlob.FlagUseShareable, _fb.Length, _fb.Entries), "CREATE_BLOB");
            GpuDriver.Expect(d.SetScanoutBlob(0, 1, full, W, H, VirtioGpuFormat.B8G8R8X8Unorm, W * 4), "SET_SCANOUT_BLOB");
        }
        _flush = Bytes(d.FlushCommand(1, full));
        _copied0 = Copied;
        _cpu0 = System.Diagnostics.Process.GetCurrentProcess().TotalProcessorTime;
        _frames0 = _display.Frames;
    }

    private ulong Copied => _rig.Device.ScanoutBytesCopied + _rig.Device.BlobGatherBytes;

    [Benchmark(Description = "1080p frame: guest → device → composited")]
    public int Frame()
    {
        // The guest draws: a marker changes every frame.
        Array.Fill(_marker, (byte)++_frame);
        _fb.Write((ulong)(_frame % H) * _fb.Stride, _marker);
        var d = _rig.Driver;
        if (_transfer is not null) d.Submit(_transfer);
        d.Submit(_flush);
        return _display.Frames;
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        int n = Math.Max(1, _display.Frames - _frames0);
        var cpu = System.Diagnostics.Process.GetCurrentProcess().TotalProcessorTime - _cpu0;
        Console.WriteLine($"// {Path}: {(Copied - _copied0) / (ulong)n} bytes copied per frame, {cpu.TotalMilliseconds * 1000 / n:0.#} µs CPU per frame (all threads, incl. the harness) over {n} frames");
        _display.Dispose();
        _rig.Dispose();
    }

    private static byte[] Bytes<T>(T v) where T : unmanaged => System.Runtime.InteropServices.MemoryMarshal.AsBytes(new ReadOnlySpan<T>(in v)).ToArray();

    /// <summary>A display that draws every flushed frame onto a 1080p output, like the compositor (one surface, full damage).</summary>
    private sealed class CompositingDisplay : IGpuDisplay, IDisposable
    {
        private readonly CpuRenderer _renderer = new(new CpuRendererOptions { Threads = 2 });
        private readonly IRenderTarget _target;
        private readonly Region _full = new(new RectI(0, 0, (int)W, (int)H));
        private ITexture? _texture;

        public CompositingDisplay() => _target = _renderer.CreateTarget(new SizeI((int)W, (int)H));

        public int Frames { get; private set; }
        public bool OwnsOutputCount => true;
        public Task<byte[]?>? QueryDisplayInfo() => null;
        public Task<byte[]?>? QueryEdid(uint scanoutId) => null;
        public bool IsBusy => false;
        public void WhenIdle(Action resume) => resume();
        public void ScanoutChanged(uint scanoutId, GpuSurface? surface, VirtioGpuRect source) { }
        public void CursorChanged(uint scanoutId, uint x, uint y, uint hotX, uint hotY, ReadOnlySpan<byte> bgra) { }
        public void CursorMoved(uint scanoutId, uint x, uint y, bool visible) { }

        public void ScanoutFlushed(uint scanoutId, GpuSurface surface, VirtioGpuRect source, VirtioGpuRect damage)
        {
            // Like the compositor: take the resource's current pixels with a reference held while drawing.
            var current = surface.Source?.AcquireCurrent() ?? surface;
            try
            {
                var view = new SurfaceView(current.Address(source.X, source.Y), (int)source.Width, (int)source.Height, (int)current.Stride, SourceLayout.Bgrx);
                var rect = new RectI(0, 0, (int)source.Width, (int)source.Height);
                if (_texture is null) _texture = _renderer.ImportSurface(view);
                else _renderer.UpdateSurface(_texture, view, new Region(rect));
                var pass = _renderer.BeginPass(_target, _full);
                pass.DrawTexture(_texture, rect, new RectI(0, 0, (int)W, (int)H), _full);
                pass.Submit();
                Frames++;
            }
            finally
            {
                if (surface.Source is not null) current.Memory.Release();
            }
        }

        public void Dispose()
        {
            _texture?.Dispose();
            _target.Dispose();
            _renderer.Dispose();
        }
    }
}
