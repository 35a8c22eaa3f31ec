using BenchmarkDotNet.Attributes;
using VirtioGpuHost.Device;
using VirtioGpuHost.Device.Wire;
using VirtioGpuHost.FrontEnd;
using VirtioGpuHost.TestKit;

namespace VirtioGpuHost.Benchmarks;

/// <summary>
/// One control command through the real queue and device in-process: TRANSFER_TO_HOST_2D
/// of a 1080p frame from contiguous or scattered (one page per entry) guest pages, and of a
/// 64x64 rect, plus RESOURCE_FLUSH to a display that drops the pixels.
/// </summary>
[MemoryDiagnoser]
public class TransferBenchmarks
{
    private DeviceRig _rig = null!;
    private FrameBuffer _fb = null!;
    private byte[] _full = null!, _damage = null!, _flush = null!;

    [Params(false, true)]
    public bool Scattered { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _rig = DeviceRig.Create(ramSize: 64UL << 20);
        _rig.Device.Display = Device.Display.NullDisplay.Instance;
        _fb = FrameBuffer.Allocate(_rig.Ram, 1920, 1080, VirtioGpuFormat.B8G8R8X8Unorm, Scattered);
        _fb.Fill((x, y) => 0xFF000000 | x << 8 | y);
        _rig.Driver.SetUpFrameBuffer(1, _fb, 0);
        _full = Bytes(_rig.Driver.TransferCommand(1, new VirtioGpuRect(0, 0, 1920, 1080), 0));
        _damage = Bytes(_rig.Driver.TransferCommand(1, new VirtioGpuRect(500, 500, 64, 64), 500UL * 1920 * 4 + 500 * 4));
        _flush = Bytes(_rig.Driver.FlushCommand(1, new VirtioGpuRect(500, 500, 64, 64)));
    }

    [GlobalCleanup]
    public void Cleanup() => _rig.Dispose();

    [Benchmark]
    public VirtioGpuCtrlType Transfer1080p() => _rig.Driver.Submit(_full).Type;

    [Benchmark]
    public VirtioGpuCtrlType Transfer64x64() => _rig.Driver.Submit(_damage).Type;

    [Benchmark]
    public VirtioGpuCtrlType Flush64x64() => _rig.Driver.Submit(_flush).Type;

    private static byte[] Bytes<T>(T v) where T : unmanaged => System.Runtime.InteropServices.MemoryMarshal.AsBytes(new ReadOnlySpan<T>(in v)).ToArray();
}

/// <summary>Row conversion to B,G,R,A for the formats QEMU's display cannot read as they are.</summary>
public class PixelConversionBenchmarks
{
    private readonly byte[] _src = new byte[1920 * 4], _dst = new byte[1920 * 4];

    [Params(VirtioGpuFormat.B8G8R8X8Unorm, VirtioGpuFormat.R8G8B8X8Unorm, VirtioGpuFormat.A8R8G8B8Unorm)]
    public VirtioGpuFormat Format { get; set; }

    [Benchmark]
    public void Row1920() => PixelFormats.ConvertRowToBgra(Format, _src, _dst, opaque: false);
}

/// <summary>The split-queue walk: pop a chain and return it (direct and indirect descriptors).</summary>
public class SplitQueueBenchmarks
{
    private DeviceRig _rig = null!;
    private GuestBuffer _cmd, _resp;

    [Params(false, true)]
    public bool Indirect { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _rig = DeviceRig.Create(indirect: Indirect, queueSize: 256);
        _cmd = new GuestBuffer(_rig.Ram.Allocator.Allocate(4096), 48);
        _resp = new GuestBuffer(_rig.Ram.Allocator.Allocate(4096), 24);
    }

    [GlobalCleanup]
    public void Cleanup() => _rig.Dispose();

    [Benchmark]
    public int PopAndComplete()
    {
        _rig.ControlDriverQueue.Add([_cmd], [_resp], Indirect);
        _rig.ControlQueue.TryPop(out var chain, out _);
        _rig.ControlQueue.AddUsed(chain!.Head, 24);
        _rig.ControlDriverQueue.TryTakeUsed(out _, out var len);
        return (int)len;
    }
}
