using System.Buffers.Binary;
using System.Runtime.InteropServices;
using VirtioGpuHost.Device;
using VirtioGpuHost.Device.Wire;
using VirtioGpuHost.FrontEnd;
using VirtioGpuHost.GuestMemory;
using VirtioGpuHost.TestKit;

namespace VirtioGpuHost.Fuzz.Targets;

/// <summary>
/// The virtio-gpu command decoder and device model: a sequence of commands put on the control
/// and cursor rings of the in-process <see cref="DeviceRig"/> (real SplitQueue, real
/// ControlQueueProcessor / CursorQueueProcessor, real GpuDevice with blob resources, contexts,
/// capsets and EDID; a FakeDisplay that checks every flush lies inside its scanout).
/// </summary>
/// <remarks>
/// Input: <c>[u8 options]</c> then records <c>[u8 op][u16 length][command bytes]</c>. options
/// bit 0 blob + virgl_compat, bit 1 two scanouts, bit 2 the display keeps a reference on every
/// flushed surface (exercises the spare-buffer path), bit 3 EVENT_IDX. op bit 0 cursor ring,
/// bit 1 indirect chain, bit 2 split the command over two readable descriptors, bits 3-4
/// response buffer size (24, 408, 1056, 4096 bytes), bit 5 run the device's timers afterwards,
/// bit 6 reset the device before this command. Guest RAM is 4 MiB in a memfd; commands name
/// guest memory in a 1 MiB data area at <see cref="DataArea"/> (the seeds do; the fuzzer is free
/// to name anything). Expected exceptions: none (every bad command gets an error response).
/// Checks: a completed chain never claims more bytes than its response buffer, and a response
/// of a header or more carries a response type.
/// </remarks>
public sealed class DeviceCommandTarget : IFuzzTarget
{
    public const ulong RamSize = 4 << 20;
    public const uint DataAreaSize = 1 << 20;
    private static readonly int[] ResponseSizes = [VirtioGpuCtrlHeader.Size, VirtioGpuResponseSizes.DisplayInfo, VirtioGpuResponseSizes.Edid, 4096];

    public string Name => "device";
    public string Description => "virtio-gpu control/cursor commands (2D, blob, context, capset, EDID, cursor) into the device via DeviceRig";
    public int MaxInputLength => 65536;

    /// <summary>Where the data area lies (the same for every run: the rig allocates deterministically).</summary>
    public static GuestAddress DataArea { get; } = ComputeDataArea();

    private static GuestAddress ComputeDataArea()
    {
        using var rig = CreateRig(0);
        return rig.Ram.Allocator.Allocate(DataAreaSize);
    }

    private static DeviceRig CreateRig(byte options) => DeviceRig.Create(
        new GpuDeviceOptions
        {
            Blob = (options & 1) != 0,
            VirglCompat = (options & 1) != 0,
            Scanouts = (options & 2) != 0 ? 2 : 1,
            MaxHostMemory = 16 << 20,
            MaxResources = 64,
            MaxHostBlobs = 8,
            MaxContexts = 8,
        },
        ramSize: RamSize, eventIdx: (options & 8) != 0, queueSize: 64, sharedRam: true);

    public void Run(ReadOnlySpan<byte> input)
    {
        if (input.Length < 1) return;
        byte options = input[0];
        using var rig = CreateRig(options);
        rig.Display.HoldSurfaceMemory = (options & 4) != 0;
        var data = rig.Ram.Allocator.Allocate(DataAreaSize);
        if (data != DataArea) throw new InvalidOperationException($"data area at {data}, expected {DataArea}");
        var inFlight = new Dictionary<(int Queue, ushort Head), (GuestBuffer[] Buffers, uint ResponseSize)>();
        try
        {
            int pos = 1;
            while (pos + 3 <= input.Length)
            {
                byte op = input[pos];
                int length = Math.Min(BinaryPrimitives.ReadUInt16LittleEndian(input[(pos + 1)..]), input.Length - pos - 3);
                var command = input.Slice(pos + 3, length);
                pos += 3 + length;
                if ((op & 64) != 0)
                {
                    rig.Device.Reset();
                    rig.Display.ReleaseHeld();
                }
                if (!Submit(rig, op, command, inFlight)) break;
                if ((op & 32) != 0) rig.Scheduler.RunPending();
                Collect(rig, inFlight);
            }
            rig.Scheduler.RunPending();
            Collect(rig, inFlight);
        }
        finally
        {
            rig.Display.ReleaseHeld();
        }
    }

    /// <summary>Puts one command on a ring and kicks; false when the ring has no room (the input ends there).</summary>
    private static bool Submit(DeviceRig rig, byte op, ReadOnlySpan<byte> command, Dictionary<(int, ushort), (GuestBuffer[], uint)> inFlight)
    {
        bool cursor = (op & 1) != 0;
        var dq = cursor ? rig.CursorDriverQueue : rig.ControlDriverQueue;
        uint responseSize = (uint)ResponseSizes[(op >> 3) & 3];
        var readable = new List<GuestBuffer>();
        int split = (op & 4) != 0 && command.Length > 1 ? command.Length / 2 : command.Length;
        readable.Add(Copy(rig, command[..split]));
        if (split < command.Length) readable.Add(Copy(rig, command[split..]));
        var response = new GuestBuffer(rig.Ram.Allocator.Allocate(responseSize), responseSize);
        rig.Ram.Span(response.Address, (int)responseSize).Fill(0xee);
        bool indirect = (op & 2) != 0;
        if (dq.FreeDescriptors < (indirect ? 1 : readable.Count + 1))
        {
            Free(rig, [.. readable, response]);
            return false;
        }
        ushort head = dq.Add(readable, [response], indirect);
        inFlight[(dq.Index, head)] = ([.. readable, response], responseSize);
        if (cursor) rig.CursorProcessor.Process();
        else rig.ControlProcessor.Process();
        return true;
    }

    private static GuestBuffer Copy(DeviceRig rig, ReadOnlySpan<byte> bytes)
    {
        var a = rig.Ram.Allocator.Allocate((ulong)Math.Max(bytes.Length, 1));
        bytes.CopyTo(rig.Ram.Span(a, bytes.Length));
        return new GuestBuffer(a, (uint)bytes.Length);
    }

    private static void Free(DeviceRig rig, IEnumerable<GuestBuffer> buffers)
    {
        foreach (var b in buffers) rig.Ram.Allocator.Free(b.Address, Math.Max(b.Length, 1));
    }

    /// <summary>Takes every used element, checks it against what was submitted, frees its buffers.</summary>
    private static void Collect(DeviceRig rig, Dictionary<(int Queue, ushort Head), (GuestBuffer[] Buffers, uint ResponseSize)> inFlight)
    {
        foreach (var dq in new[] { rig.ControlDriverQueue, rig.CursorDriverQueue })
        {
            while (dq.TryTakeUsed(out ushort head, out uint written))
            {
                if (!inFlight.Remove((dq.Index, head), out var chain))
                    throw new FuzzInvariantException($"queue {dq.Index}: used element for head {head}, which is not in flight");
                if (written > chain.ResponseSize)
                    throw new FuzzInvariantException($"queue {dq.Index}: {written} bytes written into a {chain.ResponseSize}-byte response");
                if (written >= VirtioGpuCtrlHeader.Size)
                {
                    var response = chain.Buffers[^1];
                    var type = (VirtioGpuCtrlType)BinaryPrimitives.ReadUInt32LittleEndian(rig.Ram.Span(response.Address, 4));
                    if (type is not (>= VirtioGpuCtrlType.OkNoData and <= VirtioGpuCtrlType.OkMapInfo) and not (>= VirtioGpuCtrlType.ErrUnspec and <= VirtioGpuCtrlType.ErrInvalidParameter))
                        throw new FuzzInvariantException($"queue {dq.Index}: response type 0x{(uint)type:x} is not a response");
                }
                Free(rig, chain.Buffers);
            }
        }
    }

    // ---- seeds ----

    public IEnumerable<(string Name, byte[] Data)> Seeds()
    {
        ulong data = DataArea.Value;
        var s = new SeedBuilder(options: 0);
        s.Add(Header(VirtioGpuCtrlType.GetDisplayInfo), responseClass: 1);
        s.Add(Struct(new VirtioGpuGetEdid { Header = Hdr(VirtioGpuCtrlType.GetEdid), Scanout = 0 }), responseClass: 2);
        s.Add(Struct(new VirtioGpuResourceCreate2D { Header = Hdr(VirtioGpuCtrlType.ResourceCreate2D), ResourceId = 1, Format = VirtioGpuFormat.B8G8R8X8Unorm, Width = 64, Height = 64 }));
        s.Add([.. Struct(new VirtioGpuResourceAttachBacking { Header = Hdr(VirtioGpuCtrlType.ResourceAttachBacking), ResourceId = 1, NrEntries = 2 }),
               .. Struct(new VirtioGpuMemEntry { Address = data, Length = 8192 }),
               .. Struct(new VirtioGpuMemEntry { Address = data + 0x4000, Length = 8192 })]);
        s.Add(Struct(new VirtioGpuSetScanout { Header = Hdr(VirtioGpuCtrlType.SetScanout), Rect = new(0, 0, 64, 64), ScanoutId = 0, ResourceId = 1 }));
        s.Add(Struct(new VirtioGpuTransferToHost2D { Header = Hdr(VirtioGpuCtrlType.TransferToHost2D), Rect = new(0, 0, 64, 64), ResourceId = 1 }), split: true);
        s.Add(Struct(new VirtioGpuResourceFlush { Header = Hdr(VirtioGpuCtrlType.ResourceFlush, fence: 1), Rect = new(8, 8, 16, 16), ResourceId = 1 }), runTimers: true);
        s.Add(Struct(new VirtioGpuUpdateCursor { Header = Hdr(VirtioGpuCtrlType.UpdateCursor), Pos = new VirtioGpuCursorPos { X = 10, Y = 20 }, ResourceId = 1 }), cursor: true);
        s.Add(Struct(new VirtioGpuUpdateCursor { Header = Hdr(VirtioGpuCtrlType.MoveCursor), Pos = new VirtioGpuCursorPos { X = 30, Y = 40 } }), cursor: true);
        s.Add(Struct(new VirtioGpuResourceRef { Header = Hdr(VirtioGpuCtrlType.ResourceDetachBacking), ResourceId = 1 }));
        s.Add(Struct(new VirtioGpuResourceRef { Header = Hdr(VirtioGpuCtrlType.ResourceUnref), ResourceId = 1 }), indirect: true);
        yield return ("2d-scanout-cursor", s.ToArray());

        s = new SeedBuilder(options: 1 | 2 | 4);
        s.Add(Struct(new VirtioGpuGetCapsetInfo { Header = Hdr(VirtioGpuCtrlType.GetCapsetInfo), CapsetIndex = 0 }), responseClass: 1);
        s.Add(Struct(new VirtioGpuGetCapset { Header = Hdr(VirtioGpuCtrlType.GetCapset), CapsetId = VirtioGpuCapsetId.CrossDomain, CapsetVersion = 0 }), responseClass: 3);
        var ctx = new VirtioGpuCtxCreate { Header = Hdr(VirtioGpuCtrlType.CtxCreate, ctx: 1), NameLength = 4, ContextInit = VirtioGpuCapsetId.CrossDomain };
        "fuzz"u8.CopyTo(ctx.DebugName);
        s.Add(Struct(ctx));
        s.Add([.. Struct(new VirtioGpuResourceCreateBlob
        {
            Header = Hdr(VirtioGpuCtrlType.ResourceCreateBlob, ctx: 1), ResourceId = 2, BlobMem = VirtioGpuResourceCreateBlob.MemGuest,
            BlobFlags = VirtioGpuResourceCreateBlob.FlagUseShareable, NrEntries = 1, Size = 64 * 64 * 4,
        }), .. Struct(new VirtioGpuMemEntry { Address = data, Length = 64 * 64 * 4 })]);
        s.Add(Struct(new VirtioGpuResourceCreateBlob
        {
            Header = Hdr(VirtioGpuCtrlType.ResourceCreateBlob, ctx: 1), ResourceId = 3, BlobMem = VirtioGpuResourceCreateBlob.MemHost3D,
            BlobFlags = VirtioGpuResourceCreateBlob.FlagUseMappable, BlobId = 7, Size = 16384,
        }));
        s.Add(Struct(new VirtioGpuCtxResource { Header = Hdr(VirtioGpuCtrlType.CtxAttachResource, ctx: 1), ResourceId = 2 }));
        var blobScanout = new VirtioGpuSetScanoutBlob
        {
            Header = Hdr(VirtioGpuCtrlType.SetScanoutBlob), Rect = new(0, 0, 64, 64), ScanoutId = 1, ResourceId = 2,
            Width = 64, Height = 64, Format = VirtioGpuFormat.B8G8R8A8Unorm,
        };
        blobScanout.Strides[0] = 256;
        s.Add(Struct(blobScanout));
        s.Add(Struct(new VirtioGpuResourceFlush { Header = Hdr(VirtioGpuCtrlType.ResourceFlush), Rect = new(0, 0, 64, 64), ResourceId = 2 }));
        s.Add(Struct(new VirtioGpuResourceMapBlob { Header = Hdr(VirtioGpuCtrlType.ResourceMapBlob, ctx: 1), ResourceId = 3, Offset = 0 }));
        s.Add(Struct(new VirtioGpuResourceRef { Header = Hdr(VirtioGpuCtrlType.ResourceAssignUuid), ResourceId = 2 }));
        s.Add([.. Struct(new VirtioGpuSubmit3D { Header = Hdr(VirtioGpuCtrlType.Submit3D, ctx: 1, fence: 2, ring: true), Size = 8 }), 1, 2, 3, 4, 5, 6, 7, 8], runTimers: true);
        s.Add(Struct(new VirtioGpuCtxResource { Header = Hdr(VirtioGpuCtrlType.CtxDetachResource, ctx: 1), ResourceId = 2 }));
        s.Add(Struct(new VirtioGpuResourceRef { Header = Hdr(VirtioGpuCtrlType.ResourceUnmapBlob, ctx: 1), ResourceId = 3 }));
        s.Add(Header(VirtioGpuCtrlType.CtxDestroy, ctx: 1), reset: false);
        s.Add(Header(VirtioGpuCtrlType.GetDisplayInfo), responseClass: 1, reset: true);
        yield return ("blob-context", s.ToArray());
    }

    private static VirtioGpuCtrlHeader Hdr(VirtioGpuCtrlType type, uint ctx = 0, ulong fence = 0, bool ring = false) => new()
    {
        Type = type,
        CtxId = ctx,
        FenceId = fence,
        Flags = (fence != 0 ? VirtioGpuCtrlHeader.FlagFence : 0) | (ring ? VirtioGpuCtrlHeader.FlagInfoRingIdx : 0),
    };

    private static byte[] Header(VirtioGpuCtrlType type, uint ctx = 0) => Struct(Hdr(type, ctx));

    private static byte[] Struct<T>(T value) where T : unmanaged => MemoryMarshal.AsBytes(new ReadOnlySpan<T>(in value)).ToArray();

    private sealed class SeedBuilder(byte options)
    {
        private readonly List<byte> _bytes = [options];

        public void Add(byte[] command, bool cursor = false, bool indirect = false, bool split = false, int responseClass = 0, bool runTimers = false, bool reset = false)
        {
            byte op = (byte)((cursor ? 1 : 0) | (indirect ? 2 : 0) | (split ? 4 : 0) | (responseClass << 3) | (runTimers ? 32 : 0) | (reset ? 64 : 0));
            _bytes.Add(op);
            _bytes.Add((byte)command.Length);
            _bytes.Add((byte)(command.Length >> 8));
            _bytes.AddRange(command);
        }

        public byte[] ToArray() => _bytes.ToArray();
    }
}
