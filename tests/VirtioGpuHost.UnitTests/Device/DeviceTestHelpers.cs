using System.Buffers.Binary;
using System.Runtime.InteropServices;
using VirtioGpuHost.Device;
using VirtioGpuHost.Device.Wire;
using VirtioGpuHost.FrontEnd;
using VirtioGpuHost.GuestMemory;
using VirtioGpuHost.TestKit;

namespace VirtioGpuHost.UnitTests.Device;

/// <summary>Small helpers shared by the in-process device tests.</summary>
internal static class DeviceTestHelpers
{
    public const string Connection = "vm-test";

    /// <summary>
    /// How long the driver waits when a display reply resumes the control queue: the resume
    /// is posted by a thread-pool continuation, which a busy CI machine may run late. Only
    /// an upper bound; tests never wait longer than the device needs.
    /// </summary>
    public static readonly TimeSpan ContinuationTimeout = TimeSpan.FromSeconds(60);

    /// <summary>The bytes of a wire struct, as the driver puts them in guest memory.</summary>
    public static byte[] Bytes<T>(in T value) where T : unmanaged =>
        MemoryMarshal.AsBytes(new ReadOnlySpan<T>(in value)).ToArray();

    /// <summary>A deterministic, non-trivial colour per pixel (alpha 0xFF).</summary>
    public static uint Colour(uint x, uint y) =>
        0xFF000000u | ((x * 37 + 11) & 0xFF) << 16 | ((y * 53 + 7) & 0xFF) << 8 | ((x * 5 + y * 3 + 1) & 0xFF);

    /// <summary>Deterministic pseudo-random bytes.</summary>
    public static byte[] RandomBytes(int length, int seed)
    {
        var b = new byte[length];
        new Random(seed).NextBytes(b);
        return b;
    }

    /// <summary>
    /// Asserts that exactly one warning (or worse) was logged, that it names the connection
    /// and every given field, and returns it.
    /// </summary>
    public static string AssertOneGuestError(this DeviceRig rig, params string[] mentions)
    {
        var warnings = rig.Logs.Warnings.ToArray();
        var line = Assert.Single(warnings);
        Assert.Contains(Connection, line);
        foreach (var m in mentions) Assert.Contains(m, line);
        return line;
    }

    public static void AssertNoWarnings(this DeviceRig rig) => Assert.Empty(rig.Logs.Warnings);

    /// <summary>Allocates a guest framebuffer and creates + attaches a resource for it (optionally on a scanout).</summary>
    public static FrameBuffer NewFrameBuffer(this DeviceRig rig, uint id, uint width, uint height,
        VirtioGpuFormat format = VirtioGpuFormat.B8G8R8X8Unorm, bool scattered = false, uint? scanout = null)
    {
        var fb = FrameBuffer.Allocate(rig.Ram, width, height, format, scattered);
        rig.Driver.SetUpFrameBuffer(id, fb, scanout);
        return fb;
    }

    /// <summary>A 2D resource of the device (tests of 2D behaviour).</summary>
    public static Resource2D Res2D(this GpuDevice device, uint id) => (Resource2D)device.Resources[id];

    /// <summary>A copy of the resource's host pixels (what transfers wrote).</summary>
    public static byte[] HostBytes(this DeviceRig rig, uint id)
    {
        var res = rig.Device.Res2D(id);
        return res.Memory.AsSpan(0, checked((int)res.SizeBytes)).ToArray();
    }

    /// <summary>Every byte of the framebuffer as the guest wrote it.</summary>
    public static byte[] GuestBytes(this DeviceRig rig, FrameBuffer fb)
    {
        var all = new byte[fb.Length];
        int pos = 0;
        foreach (var e in fb.Entries)
        {
            rig.Ram.Span(e.Address, (int)e.Length).CopyTo(all.AsSpan(pos));
            pos += (int)e.Length;
        }
        return all;
    }

    /// <summary>Asserts a reply's type (with the reply shown on failure).</summary>
    public static GpuReply Is(this GpuReply reply, VirtioGpuCtrlType type)
    {
        Assert.Equal(type, reply.Type);
        return reply;
    }

    /// <summary>The used ring's elements so far (head, written), read straight from guest memory.</summary>
    public static List<(uint Head, uint Written)> UsedElements(this DeviceRig rig, DriverQueue q)
    {
        ushort idx = q.ReadUsedIndex();
        var list = new List<(uint, uint)>();
        for (int i = 0; i < idx; i++)
        {
            var e = rig.Ram.Span(new GuestAddress(q.Used.Value + 4 + 8UL * (ulong)(i % q.Size)), 8);
            list.Add((BinaryPrimitives.ReadUInt32LittleEndian(e), BinaryPrimitives.ReadUInt32LittleEndian(e[4..])));
        }
        return list;
    }

    /// <summary>Builds a header with the given type (no fence).</summary>
    public static VirtioGpuCtrlHeader Header(VirtioGpuCtrlType type) => new() { Type = type };

    /// <summary>The console of a scanout as 0xAARRGGBB values, row-major.</summary>
    public static uint[] Console(this FakeDisplay display, uint scanout) => display.Consoles[scanout].Pixels;

    /// <summary>What the console must show for the framebuffer region <paramref name="source"/> (alpha forced to 0xFF).</summary>
    public static uint[] ExpectedConsole(VirtioGpuRect source, Func<uint, uint, uint> argbAt)
    {
        var px = new uint[source.Width * source.Height];
        for (uint y = 0; y < source.Height; y++)
            for (uint x = 0; x < source.Width; x++)
                px[y * source.Width + x] = argbAt(source.X + x, source.Y + y) | 0xFF000000u;
        return px;
    }
}
