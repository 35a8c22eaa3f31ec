using System.Runtime.InteropServices;
using VirtioGpuHost.Device.Wire;
using VirtioGpuHost.GuestMemory;

namespace VirtioGpuHost.FrontEnd;

/// <summary>
/// The guest driver's side of virtio-gpu: builds commands in guest RAM, queues them on the
/// control or cursor ring, kicks, and reads the responses back once the device returned
/// the chains. One helper per command; <see cref="Submit"/> takes raw bytes for the rest.
/// </summary>
public sealed class GpuDriver
{
    private readonly GuestRam _ram;
    private readonly DriverQueue _control;
    private readonly DriverQueue _cursor;
    private readonly IVirtqueueNotifier _notifier;
    // Completions are matched to submissions, not to descriptor heads: a head is free for reuse
    // as soon as its chain is taken from the used ring, so a completion nobody collected yet (a
    // held POLL, an abandoned command) must not be mistaken for the next chain with that head.
    private readonly Dictionary<ushort, long> _inflight = new(); // queue-qualified head -> submission
    private readonly Dictionary<long, uint> _completed = new();   // submission -> bytes written
    private long _nextSubmission;
    private readonly object _waitLock = new();
    private ulong _nextFence = 1;

    public GpuDriver(GuestRam ram, DriverQueue control, DriverQueue cursor, IVirtqueueNotifier notifier)
    {
        _ram = ram;
        _control = control;
        _cursor = cursor;
        _notifier = notifier;
    }

    /// <summary>How long to wait for the device before throwing.</summary>
    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Put the buffers of each chain into an indirect descriptor table.</summary>
    public bool UseIndirect { get; set; }

    public DriverQueue ControlQueue => _control;
    public DriverQueue CursorQueue => _cursor;

    // ---- generic submission ----

    /// <summary>Queues a command (without kicking); the response buffer has <paramref name="responseBytes"/> bytes.</summary>
    public PendingCommand Queue(ReadOnlySpan<byte> command, int responseBytes = VirtioGpuCtrlHeader.Size, IReadOnlyList<GuestBuffer>? extraReadable = null)
    {
        var cmd = _ram.Allocator.Allocate((ulong)Math.Max(command.Length, 1));
        command.CopyTo(_ram.Span(cmd, command.Length));
        var resp = _ram.Allocator.Allocate((ulong)Math.Max(responseBytes, 1));
        _ram.Span(resp, Math.Max(responseBytes, 1)).Clear();
        var readable = new List<GuestBuffer> { new(cmd, (uint)command.Length) };
        if (extraReadable is not null) readable.AddRange(extraReadable);
        var writable = responseBytes > 0 ? new[] { new GuestBuffer(resp, (uint)responseBytes) } : Array.Empty<GuestBuffer>();
        var (head, submission) = Add(_control, readable, writable);
        return new PendingCommand(head, new GuestBuffer(cmd, (uint)Math.Max(command.Length, 1)), new GuestBuffer(resp, (uint)Math.Max(responseBytes, 1))) { Submission = submission };
    }

    public void KickControl() => _notifier.Kick(_control);

    /// <summary>Waits until the device returned <paramref name="pending"/>, and reads its response.</summary>
    public GpuReply Wait(PendingCommand pending)
    {
        uint written = WaitUsed(_control, pending.Submission);
        var bytes = _ram.Span(pending.Response.Address, (int)pending.Response.Length).ToArray();
        _ram.Allocator.Free(pending.Command.Address, pending.Command.Length);
        _ram.Allocator.Free(pending.Response.Address, pending.Response.Length);
        return new GpuReply(bytes, written);
    }

    /// <summary>
    /// <see cref="Wait"/> without waiting: the response when the device has returned
    /// <paramref name="pending"/>, else null (for commands held on a fence, such as a POLL).
    /// </summary>
    public GpuReply? TryWait(PendingCommand pending)
    {
        uint written;
        lock (_waitLock)
        {
            TakeUsed(_control);
            if (!_completed.Remove(pending.Submission, out written)) return null;
        }
        var bytes = _ram.Span(pending.Response.Address, (int)pending.Response.Length).ToArray();
        _ram.Allocator.Free(pending.Command.Address, pending.Command.Length);
        _ram.Allocator.Free(pending.Response.Address, pending.Response.Length);
        return new GpuReply(bytes, written);
    }

    /// <summary>Queues, kicks and waits for one command.</summary>
    public GpuReply Submit(ReadOnlySpan<byte> command, int responseBytes = VirtioGpuCtrlHeader.Size, IReadOnlyList<GuestBuffer>? extraReadable = null)
    {
        var p = Queue(command, responseBytes, extraReadable);
        KickControl();
        return Wait(p);
    }

    public GpuReply Submit<T>(in T command, int responseBytes = VirtioGpuCtrlHeader.Size) where T : unmanaged =>
        Submit(MemoryMarshal.AsBytes(new ReadOnlySpan<T>(in command)), responseBytes);

    /// <summary>Adds a chain and records which submission its head stands for (before the device can return it).</summary>
    private (ushort Head, long Submission) Add(DriverQueue queue, IReadOnlyList<GuestBuffer> readable, IReadOnlyList<GuestBuffer> writable)
    {
        lock (_waitLock)
        {
            ushort head = queue.Add(readable, writable, UseIndirect);
            long submission = ++_nextSubmission;
            _inflight[Key(queue, head)] = submission;
            return (head, submission);
        }
    }

    private static ushort Key(DriverQueue queue, ushort head) => (ushort)(head | (queue.Index << 15));

    /// <summary>Moves every returned chain of <paramref name="queue"/> to the completions (under the wait lock).</summary>
    private void TakeUsed(DriverQueue queue)
    {
        while (queue.TryTakeUsed(out var h, out var len))
            if (_inflight.Remove(Key(queue, h), out long submission)) _completed[submission] = len;
    }

    private uint WaitUsed(DriverQueue queue, long submission)
    {
        var deadline = DateTime.UtcNow + Timeout;
        while (true)
        {
            lock (_waitLock)
            {
                TakeUsed(queue);
                if (_completed.Remove(submission, out var written)) return written;
            }
            var left = deadline - DateTime.UtcNow;
            if (left <= TimeSpan.Zero)
                throw new TimeoutException($"queue {queue.Index}: the device did not return submission {submission} within {Timeout.TotalSeconds} s");
            _notifier.WaitForInterrupt(queue, (int)Math.Min(left.TotalMilliseconds, 50) + 1);
        }
    }

    /// <summary>A header for a command; fenced commands get the next fence id.</summary>
    public VirtioGpuCtrlHeader Header(VirtioGpuCtrlType type, bool fence = false)
    {
        var h = new VirtioGpuCtrlHeader { Type = type };
        if (fence)
        {
            h.Flags = VirtioGpuCtrlHeader.FlagFence;
            h.FenceId = _nextFence++;
        }
        return h;
    }

    // ---- typed commands ----

    public GpuReply GetDisplayInfo() =>
        Submit(Header(VirtioGpuCtrlType.GetDisplayInfo), VirtioGpuResponseSizes.DisplayInfo);

    public static VirtioGpuDisplayOne[] ParseDisplayInfo(GpuReply r) =>
        MemoryMarshal.Cast<byte, VirtioGpuDisplayOne>(r.Bytes.AsSpan(VirtioGpuCtrlHeader.Size, 16 * 24)).ToArray();

    public GpuReply GetEdid(uint scanout) =>
        Submit(new VirtioGpuGetEdid { Header = Header(VirtioGpuCtrlType.GetEdid), Scanout = scanout }, VirtioGpuResponseSizes.Edid);

    public static byte[] ParseEdid(GpuReply r)
    {
        uint size = BitConverter.ToUInt32(r.Bytes, 24);
        return r.Bytes.AsSpan(32, (int)Math.Min(size, 1024)).ToArray();
    }

    public GpuReply CreateResource2D(uint id, VirtioGpuFormat format, uint width, uint height, bool fence = false) =>
        Submit(new VirtioGpuResourceCreate2D { Header = Header(VirtioGpuCtrlType.ResourceCreate2D, fence), ResourceId = id, Format = format, Width = width, Height = height });

    public GpuReply Unref(uint id) =>
        Submit(new VirtioGpuResourceRef { Header = Header(VirtioGpuCtrlType.ResourceUnref), ResourceId = id });

    /// <summary>ATTACH_BACKING with the entries placed after the header in one buffer (or in a second buffer, as Linux does).</summary>
    public GpuReply AttachBacking(uint id, IReadOnlyList<GuestBuffer> entries, bool entriesInSecondBuffer = true)
    {
        var head = new VirtioGpuResourceAttachBacking { Header = Header(VirtioGpuCtrlType.ResourceAttachBacking), ResourceId = id, NrEntries = (uint)entries.Count };
        var list = new byte[entries.Count * 16];
        for (int i = 0; i < entries.Count; i++)
        {
            var e = new VirtioGpuMemEntry { Address = entries[i].Address.Value, Length = entries[i].Length };
            MemoryMarshal.Write(list.AsSpan(i * 16), in e);
        }
        var headBytes = MemoryMarshal.AsBytes(new ReadOnlySpan<VirtioGpuResourceAttachBacking>(in head)).ToArray();
        if (!entriesInSecondBuffer || entries.Count == 0) return Submit([.. headBytes, .. list]);
        var buf = _ram.Allocator.Allocate((ulong)list.Length);
        list.CopyTo(_ram.Span(buf, list.Length));
        try { return Submit(headBytes, extraReadable: [new GuestBuffer(buf, (uint)list.Length)]); }
        finally { _ram.Allocator.Free(buf, (ulong)list.Length); }
    }

    public GpuReply DetachBacking(uint id) =>
        Submit(new VirtioGpuResourceRef { Header = Header(VirtioGpuCtrlType.ResourceDetachBacking), ResourceId = id });

    public GpuReply SetScanout(uint scanout, uint resourceId, VirtioGpuRect rect) =>
        Submit(new VirtioGpuSetScanout { Header = Header(VirtioGpuCtrlType.SetScanout), ScanoutId = scanout, ResourceId = resourceId, Rect = rect });

    public GpuReply TransferToHost2D(uint resourceId, VirtioGpuRect rect, ulong offset, bool fence = false) =>
        Submit(TransferCommand(resourceId, rect, offset, fence));

    public VirtioGpuTransferToHost2D TransferCommand(uint resourceId, VirtioGpuRect rect, ulong offset, bool fence = false) =>
        new() { Header = Header(VirtioGpuCtrlType.TransferToHost2D, fence), ResourceId = resourceId, Rect = rect, Offset = offset };

    public GpuReply Flush(uint resourceId, VirtioGpuRect rect, bool fence = false) =>
        Submit(FlushCommand(resourceId, rect, fence));

    public VirtioGpuResourceFlush FlushCommand(uint resourceId, VirtioGpuRect rect, bool fence = false) =>
        new() { Header = Header(VirtioGpuCtrlType.ResourceFlush, fence), ResourceId = resourceId, Rect = rect };

    // ---- blobs, contexts, capsets, UUIDs ----

    /// <summary>A header for a command in context <paramref name="ctxId"/>; with <paramref name="ringIdx"/> the fence is on that ring's timeline (FLAG_INFO_RING_IDX).</summary>
    public VirtioGpuCtrlHeader Header(VirtioGpuCtrlType type, uint ctxId, bool fence = false, byte? ringIdx = null)
    {
        var h = Header(type, fence);
        h.CtxId = ctxId;
        if (fence && ringIdx is byte ring)
        {
            h.Flags |= VirtioGpuCtrlHeader.FlagInfoRingIdx;
            h.RingIdx = ring;
        }
        return h;
    }

    /// <summary>
    /// RESOURCE_CREATE_BLOB; GUEST blobs name their pages in <paramref name="entries"/> (in a second
    /// buffer, as Linux does), HOST3D blobs a <paramref name="blobId"/> in context <paramref name="ctxId"/>.
    /// </summary>
    public GpuReply CreateBlob(uint id, uint blobMem, uint blobFlags, ulong size, IReadOnlyList<GuestBuffer>? entries = null,
        ulong blobId = 0, uint ctxId = 0, bool fence = false)
    {
        entries ??= [];
        var head = new VirtioGpuResourceCreateBlob
        {
            Header = Header(VirtioGpuCtrlType.ResourceCreateBlob, ctxId, fence),
            ResourceId = id, BlobMem = blobMem, BlobFlags = blobFlags, NrEntries = (uint)entries.Count, BlobId = blobId, Size = size,
        };
        var list = new byte[entries.Count * 16];
        for (int i = 0; i < entries.Count; i++)
        {
            var e = new VirtioGpuMemEntry { Address = entries[i].Address.Value, Length = entries[i].Length };
            MemoryMarshal.Write(list.AsSpan(i * 16), in e);
        }
        var headBytes = MemoryMarshal.AsBytes(new ReadOnlySpan<VirtioGpuResourceCreateBlob>(in head)).ToArray();
        if (entries.Count == 0) return Submit(headBytes);
        var buf = _ram.Allocator.Allocate((ulong)list.Length);
        list.CopyTo(_ram.Span(buf, list.Length));
        try { return Submit(headBytes, extraReadable: [new GuestBuffer(buf, (uint)list.Length)]); }
        finally { _ram.Allocator.Free(buf, (ulong)list.Length); }
    }

    /// <summary>SET_SCANOUT_BLOB of a single-plane framebuffer (planes 1-3 zero).</summary>
    public GpuReply SetScanoutBlob(uint scanout, uint resourceId, VirtioGpuRect rect, uint width, uint height, VirtioGpuFormat format, uint stride, uint offset = 0)
    {
        var c = new VirtioGpuSetScanoutBlob
        {
            Header = Header(VirtioGpuCtrlType.SetScanoutBlob), ScanoutId = scanout, ResourceId = resourceId, Rect = rect,
            Width = width, Height = height, Format = format,
        };
        c.Strides[0] = stride;
        c.Offsets[0] = offset;
        return Submit(c);
    }

    /// <summary>RESOURCE_MAP_BLOB at <paramref name="offset"/> of the host-visible region (ctx_id 0, as Linux sends it); <see cref="GpuReply.MapInfo"/> holds map_info.</summary>
    public GpuReply MapBlob(uint resourceId, ulong offset) =>
        Submit(new VirtioGpuResourceMapBlob { Header = Header(VirtioGpuCtrlType.ResourceMapBlob), ResourceId = resourceId, Offset = offset }, 32);

    public GpuReply UnmapBlob(uint resourceId) =>
        Submit(new VirtioGpuResourceRef { Header = Header(VirtioGpuCtrlType.ResourceUnmapBlob), ResourceId = resourceId });

    /// <summary>CTX_CREATE; context_init's low 8 bits are the capset id of the context type.</summary>
    public GpuReply CtxCreate(uint ctxId, uint contextInit, string debugName = "")
    {
        var c = new VirtioGpuCtxCreate { Header = Header(VirtioGpuCtrlType.CtxCreate, ctxId), ContextInit = contextInit };
        var name = System.Text.Encoding.ASCII.GetBytes(debugName);
        c.NameLength = (uint)Math.Min(name.Length, VirtioGpuCtxCreate.MaxDebugName);
        name.AsSpan(0, (int)c.NameLength).CopyTo(c.DebugName);
        return Submit(c);
    }

    public GpuReply CtxDestroy(uint ctxId) => Submit(Header(VirtioGpuCtrlType.CtxDestroy, ctxId));

    public GpuReply CtxAttachResource(uint ctxId, uint resourceId) =>
        Submit(new VirtioGpuCtxResource { Header = Header(VirtioGpuCtrlType.CtxAttachResource, ctxId), ResourceId = resourceId });

    public GpuReply CtxDetachResource(uint ctxId, uint resourceId) =>
        Submit(new VirtioGpuCtxResource { Header = Header(VirtioGpuCtrlType.CtxDetachResource, ctxId), ResourceId = resourceId });

    /// <summary>GET_CAPSET_INFO; <see cref="GpuReply.CapsetInfo"/> parses the answer.</summary>
    public GpuReply GetCapsetInfo(uint index) =>
        Submit(new VirtioGpuGetCapsetInfo { Header = Header(VirtioGpuCtrlType.GetCapsetInfo), CapsetIndex = index }, 40);

    /// <summary>GET_CAPSET; the capset bytes follow the 24-byte header (room for <paramref name="maxSize"/>).</summary>
    public GpuReply GetCapset(uint capsetId, uint version, int maxSize = 4096) =>
        Submit(new VirtioGpuGetCapset { Header = Header(VirtioGpuCtrlType.GetCapset), CapsetId = capsetId, CapsetVersion = version }, VirtioGpuCtrlHeader.Size + maxSize);

    /// <summary>RESOURCE_ASSIGN_UUID; <see cref="GpuReply.Uuid"/> holds the answer.</summary>
    public GpuReply AssignUuid(uint resourceId) =>
        Submit(new VirtioGpuResourceRef { Header = Header(VirtioGpuCtrlType.ResourceAssignUuid), ResourceId = resourceId }, 40);

    /// <summary>SUBMIT_3D of a command stream in context <paramref name="ctxId"/>, optionally fenced (on ring <paramref name="ringIdx"/>).</summary>
    public GpuReply Submit3D(uint ctxId, ReadOnlySpan<byte> commands, bool fence = false, byte? ringIdx = null) =>
        Submit(Submit3DCommand(ctxId, commands, fence, ringIdx));

    /// <summary>The bytes of a SUBMIT_3D (for <see cref="Queue"/>: fenced submits may come back out of ring order).</summary>
    public byte[] Submit3DCommand(uint ctxId, ReadOnlySpan<byte> commands, bool fence = false, byte? ringIdx = null)
    {
        var head = new VirtioGpuSubmit3D { Header = Header(VirtioGpuCtrlType.Submit3D, ctxId, fence, ringIdx), Size = (uint)commands.Length };
        return [.. MemoryMarshal.AsBytes(new ReadOnlySpan<VirtioGpuSubmit3D>(in head)), .. commands];
    }

    /// <summary>
    /// Creates a resource for <paramref name="fb"/>, attaches its pages, and (optionally)
    /// shows it on a scanout: what the Linux driver does for a dumb buffer + modeset.
    /// </summary>
    public void SetUpFrameBuffer(uint resourceId, FrameBuffer fb, uint? scanout = null)
    {
        Expect(CreateResource2D(resourceId, fb.Format, fb.Width, fb.Height), "RESOURCE_CREATE_2D");
        Expect(AttachBacking(resourceId, fb.Entries), "RESOURCE_ATTACH_BACKING");
        if (scanout is uint s) Expect(SetScanout(s, resourceId, new VirtioGpuRect(0, 0, fb.Width, fb.Height)), "SET_SCANOUT");
    }

    /// <summary>TRANSFER_TO_HOST_2D + RESOURCE_FLUSH of a rect, with the offset the Linux driver computes.</summary>
    public void Present(uint resourceId, FrameBuffer fb, VirtioGpuRect rect)
    {
        Expect(TransferToHost2D(resourceId, rect, (ulong)rect.Y * fb.Stride + rect.X * 4UL), "TRANSFER_TO_HOST_2D");
        Expect(Flush(resourceId, rect), "RESOURCE_FLUSH");
    }

    public static GpuReply Expect(GpuReply r, string what)
    {
        if (!r.IsOk) throw new InvalidOperationException($"{what} failed: {r.Type}");
        return r;
    }

    // ---- cursor queue ----

    /// <summary>Queues an UPDATE_CURSOR / MOVE_CURSOR and waits for the chain to come back.</summary>
    public uint SubmitCursor(VirtioGpuUpdateCursor command)
    {
        var bytes = MemoryMarshal.AsBytes(new ReadOnlySpan<VirtioGpuUpdateCursor>(in command));
        var cmd = _ram.Allocator.Allocate((ulong)bytes.Length);
        bytes.CopyTo(_ram.Span(cmd, bytes.Length));
        var resp = _ram.Allocator.Allocate(VirtioGpuCtrlHeader.Size);
        var (_, submission) = Add(_cursor, [new GuestBuffer(cmd, (uint)bytes.Length)], [new GuestBuffer(resp, VirtioGpuCtrlHeader.Size)]);
        _notifier.Kick(_cursor);
        try { return WaitUsed(_cursor, submission); }
        finally
        {
            _ram.Allocator.Free(cmd, (ulong)bytes.Length);
            _ram.Allocator.Free(resp, VirtioGpuCtrlHeader.Size);
        }
    }

    public uint UpdateCursor(uint scanout, uint x, uint y, uint resourceId, uint hotX, uint hotY) =>
        SubmitCursor(new VirtioGpuUpdateCursor
        {
            Header = Header(VirtioGpuCtrlType.UpdateCursor),
            Pos = new VirtioGpuCursorPos { ScanoutId = scanout, X = x, Y = y },
            ResourceId = resourceId, HotX = hotX, HotY = hotY,
        });

    public uint MoveCursor(uint scanout, uint x, uint y, uint resourceId) =>
        SubmitCursor(new VirtioGpuUpdateCursor
        {
            Header = Header(VirtioGpuCtrlType.MoveCursor),
            Pos = new VirtioGpuCursorPos { ScanoutId = scanout, X = x, Y = y },
            ResourceId = resourceId,
        });
}
