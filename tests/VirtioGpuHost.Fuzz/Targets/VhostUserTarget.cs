using System.Buffers.Binary;
using VirtioGpuHost.Backend;
using VirtioGpuHost.Device;
using VirtioGpuHost.Interop;
using VirtioGpuHost.VhostUser.Backend;
using VirtioGpuHost.VhostUser.Wire;

namespace VirtioGpuHost.Fuzz.Targets;

/// <summary>
/// vhost-user front-end messages into the real back-end: <see cref="VhostUserBackendConnection"/>
/// (FramedSocket framing with SCM_RIGHTS, Dispatch, every request handler, memory table mapping,
/// ring binding) with the real <see cref="VhostUserGpuDevice"/> behind it (GPU_SET_SOCKET, config
/// space, blob and host-visible region offered), over a socketpair.
/// </summary>
/// <remarks>
/// Input: a sequence of messages, each <c>[u8 fd spec][12-byte header][payload]</c>; the payload
/// is the next min(header.size, rest) bytes, so a size field larger than what follows is a frame
/// cut short. The fd spec says which fds ride on the header (SCM_RIGHTS): bits 0-1 count (0..3),
/// bits 2-3 kind (0 memfd, 1 eventfd, 2 signalled eventfd, 3 an AF_UNIX socket whose peer the
/// harness closes at once, or keeps open and silent with bit 7), bits 4-6 memfd size
/// (4 KiB &lt;&lt; n). Every message is sent, then the harness half-closes its end: the back-end
/// must read everything, answer what needs an answer, see EOF and release every fd and mapping.
/// Expected exceptions: none. The connection turns every protocol violation into a closed
/// connection and every bad field into a refusal; anything escaping Run() is a finding.
/// </remarks>
public sealed class VhostUserTarget : IFuzzTarget
{
    public string Name => "vhost-user";
    public string Description => "vhost-user messages (with memfd/eventfd/socket fds) into VhostUserBackendConnection + VhostUserGpuDevice";
    public int MaxInputLength => 16384;

    /// <summary>Longest a run may take before the in-process mode calls it a hang.</summary>
    public static TimeSpan Deadline { get; set; } = TimeSpan.FromSeconds(10);

    private static readonly GpuDeviceOptions Options = new() { Blob = true, VirglCompat = true, Scanouts = 2 };

    public void Run(ReadOnlySpan<byte> input)
    {
        var frames = new List<Frame>();
        var keep = new List<FdHandle>(); // the harness's ends of sockets handed over (closed at the end)
        try
        {
            ParseInput(input, frames, keep);
            var (backendEnd, peerEnd) = UnixSocket.CreatePair();
            var device = new VhostUserGpuDevice(Options, FormattingLogger.Instance, hostVisibleSize: 1UL << 20);
            var connection = new VhostUserBackendConnection(backendEnd, device, FormattingLogger.Instance, "fuzz", TimeSpan.FromSeconds(2));
            var pump = new PeerPump(peerEnd, frames);
            var pumping = Task.Run(() => pump.Run(Deadline, connection.Stop));
            connection.Run(); // returns at EOF (or a protocol violation); disposes the connection
            pumping.GetAwaiter().GetResult();
            if (pump.TimedOut) throw new FuzzHangException($"the back-end did not finish {frames.Count} messages within {Deadline.TotalSeconds} s");
        }
        finally
        {
            foreach (var f in frames)
                foreach (var fd in f.Fds) fd.Dispose();
            foreach (var fd in keep) fd.Dispose();
        }
    }

    private sealed record Frame(byte[] Bytes, FdHandle[] Fds);

    private static void ParseInput(ReadOnlySpan<byte> input, List<Frame> frames, List<FdHandle> keep)
    {
        int pos = 0;
        while (pos + 1 + VhostUserHeader.Length <= input.Length && frames.Count < 256)
        {
            byte spec = input[pos++];
            var header = VhostUserHeader.Read(input[pos..]);
            int payload = (int)Math.Min(header.Size, (uint)(input.Length - pos - VhostUserHeader.Length));
            var bytes = input.Slice(pos, VhostUserHeader.Length + payload).ToArray();
            pos += bytes.Length;
            frames.Add(new Frame(bytes, MakeFds(spec, keep)));
        }
    }

    private static FdHandle[] MakeFds(byte spec, List<FdHandle> keep)
    {
        int count = spec & 3;
        var fds = new FdHandle[count];
        for (int i = 0; i < count; i++)
        {
            switch ((spec >> 2) & 3)
            {
                case 0:
                    fds[i] = MemFd.Create("fuzz-region", 4096UL << ((spec >> 4) & 7));
                    break;
                case 1:
                    fds[i] = EventFd.Create();
                    break;
                case 2:
                    fds[i] = EventFd.Create();
                    EventFd.Signal(fds[i]);
                    break;
                default:
                    var (mine, theirs) = UnixSocket.CreatePair();
                    fds[i] = theirs;
                    if ((spec & 0x80) != 0) keep.Add(mine);
                    else mine.Dispose();
                    break;
            }
        }
        return fds;
    }

    /// <summary>
    /// The front-end's side: sends every frame (fds on its first byte), half-closes, and reads
    /// replies until the back-end closes, all non-blocking so neither side can wait on the other.
    /// </summary>
    private sealed class PeerPump(FdHandle socket, List<Frame> frames)
    {
        public bool TimedOut { get; private set; }

        public void Run(TimeSpan deadline, Action stopBackend)
        {
            using var owned = socket;
            socket.SetNonBlocking(true);
            long end = Environment.TickCount64 + (long)deadline.TotalMilliseconds;
            var scratch = new byte[8192];
            var received = new List<FdHandle>();
            int frame = 0, offset = 0;
            bool writing = true;
            if (frames.Count == 0) { UnixSocket.ShutdownWrite(socket); writing = false; }
            while (true)
            {
                Span<PollEntry> entries = [new PollEntry(socket, PollEvents.In | (writing ? PollEvents.Out : PollEvents.None))];
                long left = end - Environment.TickCount64;
                if (left <= 0 || Poller.Poll(entries, (int)Math.Min(left, 100)) < 0)
                {
                    if (left > 0) continue;
                    TimedOut = true;
                    stopBackend();
                    return;
                }
                if (writing && entries[0].Writable)
                {
                    var f = frames[frame];
                    var status = UnixSocket.Send(socket, f.Bytes.AsSpan(offset), offset == 0 ? f.Fds : default, out int n);
                    if (status == IoStatus.Closed) writing = false; // the back-end closed: read what is left
                    else if (status == IoStatus.Ok)
                    {
                        offset += n;
                        if (offset == f.Bytes.Length) { frame++; offset = 0; }
                        if (frame == frames.Count) writing = false;
                    }
                    if (!writing) UnixSocket.ShutdownWrite(socket);
                }
                if (entries[0].Readable)
                {
                    IoStatus status;
                    do
                    {
                        status = UnixSocket.Receive(socket, scratch, received, out _);
                        foreach (var fd in received) fd.Dispose();
                        received.Clear();
                    } while (status == IoStatus.Ok);
                    if (status == IoStatus.Closed) return;
                }
            }
        }
    }

    // ---- seeds ----

    /// <summary>Front-end virtual address of the seeds' single region (any value: it is only translated).</summary>
    private const ulong SeedUserAddress = 0x7f00_0000_0000;
    private const ulong SeedRegionSize = 64 << 10; // fd spec size bits 4 (4 KiB << 4)

    public IEnumerable<(string Name, byte[] Data)> Seeds()
    {
        var b = new SeedBuilder();
        b.Msg(VhostUserRequest.GetFeatures);
        b.Msg(VhostUserRequest.GetProtocolFeatures);
        b.U64(VhostUserRequest.SetProtocolFeatures, (ulong)(VhostUserBackendConnection.CoreProtocolFeatures | VhostUserProtocolFeatures.Config | VhostUserProtocolFeatures.Shmem), needReply: true);
        b.U64(VhostUserRequest.SetFeatures, VhostUserGpuDevice.TransportFeatures | VhostUserFeatures.ProtocolFeatures, needReply: true);
        b.Msg(VhostUserRequest.SetOwner, needReply: true);
        b.Msg(VhostUserRequest.GetQueueNum);
        b.Msg(VhostUserRequest.GetMaxMemSlots);
        b.Msg(VhostUserRequest.GetShmemConfig);
        var handshake = b.ToArray();
        yield return ("handshake", handshake);

        b = new SeedBuilder(handshake);
        var table = new byte[MemoryTable.SizeFor(1)];
        BinaryPrimitives.WriteUInt32LittleEndian(table, 1);
        new MemoryRegionDescriptor(0, SeedRegionSize, SeedUserAddress, 0).Write(table.AsSpan(MemoryTable.HeaderSize));
        b.Msg(VhostUserRequest.SetMemTable, table, fdSpec: 0x41 /* one 64 KiB memfd */, needReply: true);
        for (uint q = 0; q < 2; q++)
        {
            ulong ringBase = SeedUserAddress + q * 0x4000;
            b.Vring(VhostUserRequest.SetVringNum, q, 64);
            var addr = new byte[VringAddress.Size];
            new VringAddress(q, 0, ringBase, ringBase + 0x2000, ringBase + 0x1000, 0).Write(addr);
            b.Msg(VhostUserRequest.SetVringAddr, addr, needReply: true);
            b.Vring(VhostUserRequest.SetVringBase, q, 0);
            b.U64(VhostUserRequest.SetVringCall, q, fdSpec: 0x05 /* eventfd */);
            b.U64(VhostUserRequest.SetVringErr, q, fdSpec: 0x05);
            b.U64(VhostUserRequest.SetVringKick, q, fdSpec: 0x09 /* signalled eventfd */);
            b.Vring(VhostUserRequest.SetVringEnable, q, 1);
        }
        var rings = b.ToArray();
        yield return ("rings", rings);

        b = new SeedBuilder(rings);
        b.Msg(VhostUserRequest.GpuSetSocket, [], fdSpec: 0x0d /* socket, peer closed */, needReply: true);
        b.Msg(VhostUserRequest.SetBackendReqFd, [], fdSpec: 0x8d /* socket, peer kept open */, needReply: true);
        var cfg = new byte[ConfigHeader.Length + 16];
        new ConfigHeader(0, 16, 0).Write(cfg);
        b.Msg(VhostUserRequest.GetConfig, cfg);
        var set = new byte[ConfigHeader.Length + 4];
        new ConfigHeader(4, 4, 0).Write(set);
        BinaryPrimitives.WriteUInt32LittleEndian(set.AsSpan(ConfigHeader.Length), 1);
        b.Msg(VhostUserRequest.SetConfig, set, needReply: true);
        b.Vring(VhostUserRequest.GetVringBase, 0, 0);
        b.Vring(VhostUserRequest.GetVringBase, 1, 0);
        yield return ("display-and-stop", b.ToArray());

        b = new SeedBuilder(handshake);
        var region = new byte[SingleMemoryRegion.Size];
        SingleMemoryRegion.Write(region, new MemoryRegionDescriptor(0x100000, 0x8000, SeedUserAddress + 0x100000, 0));
        b.Msg(VhostUserRequest.AddMemReg, region, fdSpec: 0x31 /* one 32 KiB memfd */, needReply: true);
        b.Msg(VhostUserRequest.RemMemReg, region, needReply: true);
        b.Msg(VhostUserRequest.ResetDevice, needReply: true);
        b.Msg(VhostUserRequest.ResetOwner, needReply: true);
        yield return ("memreg-and-reset", b.ToArray());
    }

    /// <summary>Builds inputs in this target's format from the real header and payload structs.</summary>
    private sealed class SeedBuilder(byte[]? prefix = null)
    {
        private readonly List<byte> _bytes = new(prefix ?? []);

        public void Msg(VhostUserRequest request, byte[]? payload = null, byte fdSpec = 0, bool needReply = false)
        {
            payload ??= [];
            _bytes.Add(fdSpec);
            var h = new byte[VhostUserHeader.Length];
            new VhostUserHeader((uint)request, VhostUserHeader.Version | (needReply ? VhostUserHeader.FlagNeedReply : 0), (uint)payload.Length).Write(h);
            _bytes.AddRange(h);
            _bytes.AddRange(payload);
        }

        public void U64(VhostUserRequest request, ulong value, byte fdSpec = 0, bool needReply = false)
        {
            var p = new byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(p, value);
            Msg(request, p, fdSpec, needReply);
        }

        public void Vring(VhostUserRequest request, uint index, uint num)
        {
            var p = new byte[VringState.Size];
            new VringState(index, num).Write(p);
            Msg(request, p, needReply: request != VhostUserRequest.GetVringBase);
        }

        public byte[] ToArray() => _bytes.ToArray();
    }
}
