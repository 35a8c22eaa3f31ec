using System.Buffers.Binary;
using System.Diagnostics;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using VirtioGpuHost.CrossDomain;
using VirtioGpuHost.Device;
using VirtioGpuHost.Device.Capsets;
using VirtioGpuHost.Device.Wire;
using VirtioGpuHost.FrontEnd;
using VirtioGpuHost.GuestMemory;
using VirtioGpuHost.Interop;
using VirtioGpuHost.TestKit;
using Guest = VirtioGpuHost.FrontEnd.CrossDomain.CrossDomainGuestWire;

namespace VirtioGpuHost.Fuzz.Targets;

/// <summary>
/// The cross-domain command stream: SUBMIT_3D streams into a real <see cref="CrossDomainContext"/>
/// (its ChannelWorker thread, items, fences held on ring 1) inside the in-process
/// <see cref="DeviceRig"/> (real queues, control processor and GpuDevice), with a socketpair as
/// the Wayland server, which the input also drives (bytes with memfds and pipes, reading what
/// the context sent, feeding the read pipes it got, hanging up).
/// </summary>
/// <remarks>
/// Setup per input: ctx <see cref="Ctx"/> of capset 5 with four resources attached: guest blobs
/// <see cref="QueryRing"/> and <see cref="ChannelRing"/> (4 KiB each), <see cref="SmallRing"/> (a
/// 64-byte guest blob) and <see cref="NotABlob"/> (a 2D resource). INIT is up to the input.
/// Input: <c>[u8 options]</c> then records <c>[u8 op][u16 length][payload]</c> (at most
/// <see cref="MaxRecords"/>). options bit 0: the Wayland server refuses the channel; bit 1: 4
/// items per context instead of 64; bit 2: 4 KiB of queued output instead of 256 KiB.
/// op bits 0-1 = 0, SUBMIT_3D of the payload: bit 2 fenced, bits 3-4 its ring (0 query, 1
/// channel, 2 ring_idx 7, 3 no FLAG_INFO_RING_IDX); = 1, the Wayland peer: bits 2-3 0 sends the
/// payload (first byte: fds to attach, bits 0-1 how many, then 2 bits each: memfd of 4096 or
/// 5000 bytes, a pipe's write end, a pipe's read end), 1 reads what the context sent (keeps
/// pipe write ends), 2 writes the payload into the pipes it kept (bit 4: then closes them), 3
/// hangs up; = 2, the device: bits 2-3 0 CREATE_BLOB HOST3D (payload u32 blob_id, u32 size)
/// attached to the context, 1 detaches / 2 attaches resource payload[0] (11-14, or a created
/// blob), 3 CTX_DESTROY (every held fence must be released) and a fresh context with the rings
/// attached; = 3 waits. Bit 5 of any op: then wait (up to 5 ms, 50 ms per input) for held POLLs to complete.
/// Expected: error responses. Findings: an Error-level log (the device logs exceptions a
/// context throws; the worker logs why it stopped), a response that is not a response type, a
/// held fence still held after CTX_DESTROY, GET_DISPLAY_INFO not answered OK afterwards.
/// </remarks>
public sealed class CrossDomainTarget(bool patient = false) : IFuzzTarget
{
    public const uint Ctx = 1;
    public const uint QueryRing = 11, ChannelRing = 12, SmallRing = 13, NotABlob = 14;
    public const uint FirstCreatedBlob = 20;
    public const int MaxRecords = 128;
    public const int MaxFdsPerInput = 16;
    /// <summary>How long one wait lasts at most, and all waits of one input together (keeps an input far below AFL's -t).</summary>
    private static readonly TimeSpan SettleTime = TimeSpan.FromMilliseconds(5), SettleBudget = TimeSpan.FromMilliseconds(50);
    /// <summary>The same for a patient target (seed checks on a loaded machine: the worker thread may need longer).</summary>
    private static readonly TimeSpan PatientSettleTime = TimeSpan.FromSeconds(2), PatientSettleBudget = TimeSpan.FromSeconds(20);

    public string Name => "cross-domain";
    public string Description => "cross-domain SUBMIT_3D streams (INIT, GET_IMAGE_REQUIREMENTS, POLL, SEND, WRITE) + Wayland peer activity into CrossDomainContext via DeviceRig";
    public int MaxInputLength => 32768;

    /// <summary>Counters of the last input (seed checks): POLLs answered (not counting those CTX_DESTROY released), messages the peer received, error responses.</summary>
    public static (int PollsAnswered, int PeerMessages, int Errors) Last { get; private set; }

    public void Run(ReadOnlySpan<byte> input)
    {
        if (input.Length < 1) return;
        using var run = new Rig(input[0], patient ? PatientSettleTime : SettleTime, patient ? PatientSettleBudget : SettleBudget);
        int pos = 1, records = 0;
        while (pos + 3 <= input.Length && records++ < MaxRecords)
        {
            byte op = input[pos];
            int n = Math.Min(BinaryPrimitives.ReadUInt16LittleEndian(input[(pos + 1)..]), input.Length - pos - 3);
            run.Step(op, input.Slice(pos + 3, n));
            pos += 3 + n;
        }
        run.Finish();
        Last = (run.PollsAnswered, run.PeerMessages, run.ErrorResponses);
    }

    private sealed class Rig : IDisposable
    {
        private readonly DeviceRig _rig;
        private readonly bool _refuse;
        private readonly List<FdHandle> _peers = [];
        private readonly List<FdHandle> _keptPipes = [];
        private readonly List<(PendingCommand Command, bool Poll)> _inFlight = [];
        private readonly List<uint> _createdBlobs = [];
        private uint _nextBlob = FirstCreatedBlob;
        private int _fdsLeft = MaxFdsPerInput;
        private bool _contextExists;
        private readonly TimeSpan _settleTime, _settleBudget;
        private TimeSpan _settled;

        public int PollsAnswered, PeerMessages, ErrorResponses;

        public Rig(byte options, TimeSpan settleTime, TimeSpan settleBudget)
        {
            _settleTime = settleTime;
            _settleBudget = settleBudget;
            _refuse = (options & 1) != 0;
            int maxItems = (options & 2) != 0 ? 4 : 64;
            int maxQueued = (options & 4) != 0 ? 4096 : 256 << 10;
            DeviceRig? rig = null;
            _rig = rig = DeviceRig.Create(new GpuDeviceOptions
            {
                Blob = true,
                MaxHostMemory = 64 << 20,
                MaxHostBlobs = 16,
                MaxResources = 64,
                MaxContexts = 4,
                Capsets = [new CrossDomainCapset(host => new CrossDomainContext(host, new CrossDomainOptions
                {
                    OpenChannel = OpenPeer,
                    Post = a => rig!.Scheduler.Post(a),
                    MaxItems = maxItems,
                    MaxQueuedBytes = maxQueued,
                    Logger = rig!.Logs.CreateLogger("cross-domain"),
                }))],
            }, ramSize: 2 << 20); // small: the rig clears it per input
            CreateContext();
            var page = _rig.Ram.Allocator.Allocate(64);
            Expect(_rig.Driver.CreateBlob(SmallRing, VirtioGpuResourceCreateBlob.MemGuest, VirtioGpuResourceCreateBlob.FlagUseMappable, 64, [new GuestBuffer(page, 64)]), "small ring");
            Expect(_rig.Driver.CreateResource2D(NotABlob, VirtioGpuFormat.B8G8R8X8Unorm, 16, 16), "2D resource");
            foreach (var r in new[] { QueryRing, ChannelRing }) NewRing(r);
            AttachAll();
        }

        private void NewRing(uint id)
        {
            var page = _rig.Ram.Allocator.Allocate(4096);
            Expect(_rig.Driver.CreateBlob(id, VirtioGpuResourceCreateBlob.MemGuest, VirtioGpuResourceCreateBlob.FlagUseMappable, 4096, [new GuestBuffer(page, 4096)]), "ring blob");
        }

        private void CreateContext()
        {
            Expect(_rig.Driver.CtxCreate(Ctx, Guest.CapsetId, "fuzz"), "CTX_CREATE");
            _contextExists = true;
        }

        private void AttachAll()
        {
            foreach (var r in new[] { QueryRing, ChannelRing, SmallRing, NotABlob }) Expect(_rig.Driver.CtxAttachResource(Ctx, r), "CTX_ATTACH_RESOURCE");
        }

        private static void Expect(GpuReply r, string what)
        {
            if (!r.IsOk) throw new FuzzInvariantException($"setup: {what} answered {r.Type}");
        }

        private Socket? OpenPeer()
        {
            if (_refuse) return null;
            var (mine, theirs) = UnixSocket.CreatePair();
            theirs.SetNonBlocking(true);
            _peers.Add(theirs);
            var socket = new Socket(new SafeSocketHandle(mine.DangerousGetHandle(), ownsHandle: true));
            mine.SetHandleAsInvalid();
            return socket;
        }

        private FdHandle? Peer => _peers.Count > 0 ? _peers[^1] : null;

        public void Step(byte op, ReadOnlySpan<byte> payload)
        {
            switch (op & 3)
            {
                case 0: Submit(op, payload); break;
                case 1: PeerStep(op, payload); break;
                case 2: DeviceStep(op, payload); break;
                default: Settle(); break;
            }
            if ((op & 32) != 0) Settle();
            Collect();
        }

        private void Submit(byte op, ReadOnlySpan<byte> stream)
        {
            if (_rig.ControlDriverQueue.FreeDescriptors < 2) return; // held POLLs fill the ring: the input ends here in effect
            bool fence = (op & 4) != 0;
            int ring = (op >> 3) & 3;
            byte? ringIdx = ring switch { 0 => Guest.QueryRing, 1 => Guest.ChannelRing, 2 => 7, _ => null };
            bool poll = fence && ring == 1; // held until the worker has an event (a POLL) or signalled at once
            var p = _rig.Driver.Queue(_rig.Driver.Submit3DCommand(Ctx, stream, fence, ringIdx));
            _inFlight.Add((p, poll));
            _rig.Driver.KickControl();
        }

        private void PeerStep(byte op, ReadOnlySpan<byte> payload)
        {
            if (Peer is not { } peer) return;
            switch ((op >> 2) & 3)
            {
                case 0:
                    {
                        if (payload.Length < 2) break;
                        int count = Math.Min(payload[0] & 3, _fdsLeft);
                        _fdsLeft -= count;
                        var fds = new FdHandle[count];
                        try
                        {
                            for (int i = 0; i < count; i++) fds[i] = MakeFd((payload[0] >> (2 + 2 * i)) & 3);
                            _ = UnixSocket.Send(peer, payload[1..], fds, out _); // a full buffer drops the rest: the context is not reading
                        }
                        catch (IOException) { } // the context closed its end
                        finally
                        {
                            foreach (var fd in fds) fd?.Dispose();
                        }
                        break;
                    }
                case 1:
                    DrainPeer(peer);
                    break;
                case 2:
                    foreach (var pipe in _keptPipes)
                    {
                        try { _ = FdFiles.Write(pipe, payload, out _); }
                        catch (IOException) { } // the context closed the read end
                    }
                    if ((op & 16) != 0)
                    {
                        foreach (var pipe in _keptPipes) pipe.Dispose();
                        _keptPipes.Clear();
                    }
                    break;
                default:
                    peer.Dispose();
                    _peers.Remove(peer);
                    break;
            }
        }

        private static FdHandle MakeFd(int kind)
        {
            switch (kind)
            {
                case 0: return MemFd.Create("fuzz-xd", 4096);
                case 1: return MemFd.Create("fuzz-xd", 5000);
                default:
                    var (read, write) = FdFiles.CreatePipe();
                    if (kind == 2) { read.Dispose(); return write; }
                    write.Dispose();
                    return read;
            }
        }

        /// <summary>Reads what the context sent; pipe write ends (for read pipes) are kept, the rest closed.</summary>
        private void DrainPeer(FdHandle peer)
        {
            // SEND is written by the worker thread: wait (within the settle limits) for its first bytes.
            var clock = Stopwatch.StartNew();
            var wait = _settleTime < _settleBudget - _settled ? _settleTime : _settleBudget - _settled;
            if (wait > TimeSpan.Zero) Poller.WaitReadable(peer, (int)Math.Ceiling(wait.TotalMilliseconds));
            _settled += clock.Elapsed;
            var buffer = new byte[16384];
            while (true)
            {
                var fds = new List<FdHandle>();
                IoStatus st;
                try { st = UnixSocket.Receive(peer, buffer, fds, out _); }
                catch (IOException) { st = IoStatus.Closed; }
                foreach (var fd in fds)
                {
                    if (_keptPipes.Count < 8 && FdFiles.KindOf(fd) == FdKind.Pipe)
                    {
                        fd.SetNonBlocking(true);
                        _keptPipes.Add(fd);
                    }
                    else fd.Dispose();
                }
                if (st != IoStatus.Ok) return;
                PeerMessages++;
            }
        }

        private void DeviceStep(byte op, ReadOnlySpan<byte> payload)
        {
            var driver = _rig.Driver;
            switch ((op >> 2) & 3)
            {
                case 0:
                    {
                        if (payload.Length < 8 || _nextBlob >= FirstCreatedBlob + 16) break;
                        uint blobId = BinaryPrimitives.ReadUInt32LittleEndian(payload);
                        uint size = BinaryPrimitives.ReadUInt32LittleEndian(payload[4..]);
                        uint id = _nextBlob++;
                        var r = driver.CreateBlob(id, VirtioGpuResourceCreateBlob.MemHost3D,
                            VirtioGpuResourceCreateBlob.FlagUseMappable | VirtioGpuResourceCreateBlob.FlagUseShareable, size, blobId: blobId, ctxId: Ctx);
                        Check(r);
                        if (r.IsOk)
                        {
                            _createdBlobs.Add(id);
                            Check(driver.CtxAttachResource(Ctx, id));
                        }
                        break;
                    }
                case 1:
                case 2:
                    {
                        if (payload.Length < 1) break;
                        uint id = payload[0] is >= (byte)QueryRing and <= (byte)NotABlob ? payload[0] : _createdBlobs.Count > 0 ? _createdBlobs[payload[0] % _createdBlobs.Count] : QueryRing;
                        Check(((op >> 2) & 3) == 1 ? driver.CtxDetachResource(Ctx, id) : driver.CtxAttachResource(Ctx, id));
                        break;
                    }
                default:
                    DestroyContext();
                    CreateContext();
                    AttachAll();
                    break;
            }
        }

        /// <summary>CTX_DESTROY: every held response goes out once the posted releases ran.</summary>
        private void DestroyContext()
        {
            if (!_contextExists) return;
            var r = _rig.Driver.CtxDestroy(Ctx);
            if (!r.IsOk) throw new FuzzInvariantException($"CTX_DESTROY answered {r.Type}");
            _contextExists = false;
            _rig.Scheduler.RunPending();
            Collect(countPolls: false); // released by the destroy, not answered
            if (_inFlight.Count != 0)
                throw new FuzzInvariantException($"{_inFlight.Count} SUBMIT_3D response(s) still held after CTX_DESTROY (held fences: {_rig.ControlProcessor.HeldFences})");
        }

        /// <summary>
        /// Runs posted work until no POLL is held, the settle time passed, or this input's
        /// settle budget is spent (the worker thread delivers events).
        /// </summary>
        private void Settle()
        {
            var clock = Stopwatch.StartNew();
            try
            {
                while (true)
                {
                    _rig.Scheduler.RunPending();
                    Collect();
                    if (!_inFlight.Any(p => p.Poll) || clock.Elapsed > _settleTime || _settled + clock.Elapsed > _settleBudget) return;
                    Thread.Sleep(0);
                }
            }
            finally
            {
                _settled += clock.Elapsed;
            }
        }

        private void Collect(bool countPolls = true)
        {
            for (int i = _inFlight.Count - 1; i >= 0; i--)
            {
                if (_rig.Driver.TryWait(_inFlight[i].Command) is not { } reply) continue;
                if (countPolls && _inFlight[i].Poll && reply.IsOk) PollsAnswered++;
                _inFlight.RemoveAt(i);
                Check(reply);
            }
        }

        private void Check(GpuReply r)
        {
            if (r.Written < VirtioGpuCtrlHeader.Size)
                throw new FuzzInvariantException($"a {r.Written}-byte response");
            if (r.Type is not (>= VirtioGpuCtrlType.OkNoData and <= VirtioGpuCtrlType.OkMapInfo) and not (>= VirtioGpuCtrlType.ErrUnspec and <= VirtioGpuCtrlType.ErrInvalidParameter))
                throw new FuzzInvariantException($"response type 0x{(uint)r.Type:x} is not a response");
            if (!r.IsOk) ErrorResponses++;
        }

        /// <summary>The end of every input: the context goes (releasing its fences), the device still answers.</summary>
        public void Finish()
        {
            DestroyContext();
            _rig.Scheduler.RunPending();
            Collect();
            if (_inFlight.Count != 0) throw new FuzzInvariantException($"{_inFlight.Count} command(s) never answered");
            var info = _rig.Driver.GetDisplayInfo();
            if (info.Type != VirtioGpuCtrlType.OkDisplayInfo) throw new FuzzInvariantException($"GET_DISPLAY_INFO answered {info.Type} afterwards");
        }

        public void Dispose()
        {
            _rig.Dispose(); // destroys what is left: workers stop, items close
            foreach (var p in _peers) p.Dispose();
            foreach (var p in _keptPipes) p.Dispose();
            var errors = _rig.Logs.Lines.Where(l => l.Level >= LogLevel.Error).ToList();
            if (errors.Count > 0) throw new FuzzInvariantException($"the device logged {errors.Count} error(s); first: {errors[0].Message}");
        }
    }

    // ---- seeds ----

    public IEnumerable<(string Name, byte[] Data)> Seeds()
    {
        var s = new SeedBuilder(0);
        s.Submit(Guest.Init(QueryRing, ChannelRing));
        s.Submit(Guest.GetImageRequirements(64, 64, Guest.DrmFormatXrgb8888), fence: true, ring: 0);
        s.Submit(Guest.Poll(), fence: true, ring: 1);
        s.PeerSend("wl_keyboard.keymap"u8, fdKinds: [1, 2]);
        s.Wait();
        s.Submit(Guest.Poll(), fence: true, ring: 1);
        s.PeerSend("events"u8);
        s.Wait();
        yield return ("init-poll-receive", s.ToArray());

        s = new SeedBuilder(0);
        s.Submit(Guest.InitLegacy(QueryRing));
        s.Submit(Guest.Poll(), fence: true, ring: 1);
        s.PeerSend("hi"u8, fdKinds: [0]);
        s.Wait();
        s.Submit([.. Guest.GetImageRequirements(250, 250, Guest.DrmFormatR8), .. Guest.Poll()], fence: true, ring: 1);
        s.PeerHangUp();
        s.Wait();
        yield return ("init-legacy-hangup", s.ToArray());

        // GET_IMAGE_REQUIREMENTS' blob_id (the first item: 2) becomes a HOST3D blob sent with SEND.
        s = new SeedBuilder(0);
        s.Submit(InitFull(QueryRing, ChannelRing));
        s.Submit(Guest.GetImageRequirements(64, 64, Guest.DrmFormatXrgb8888), fence: true, ring: 0);
        s.CreateHostBlob(2, 64 * 64 * 4);
        s.Submit(Guest.Send([(FirstCreatedBlob, Guest.IdBlob)], "wl_shm.create_pool"u8));
        s.PeerDrain();
        s.Submit([.. Guest.Send([], "wl_surface.commit"u8), .. Guest.Send([], "wl_display.sync"u8)]);
        s.PeerDrain();
        yield return ("send-host-blob", s.ToArray());

        // A read pipe: SEND creates it, the server writes into it and closes it: READ, then READ with hang_up.
        s = new SeedBuilder(0);
        s.Submit(Guest.Init(QueryRing, ChannelRing));
        s.Submit(Guest.Send([(Guest.ReadPipeIdBase + 1, Guest.IdReadPipe)], "wl_data_offer.receive"u8));
        s.PeerDrain();
        s.Submit(Guest.Poll(), fence: true, ring: 1);
        s.PeerPipeWrite("clipboard"u8, close: false);
        s.Wait();
        s.Submit(Guest.Poll(), fence: true, ring: 1);
        s.PeerPipeWrite([], close: true);
        s.Wait();
        yield return ("read-pipe", s.ToArray());

        // A write pipe from the server (item 2): WRITE, then WRITE with hang_up.
        s = new SeedBuilder(0);
        s.Submit(Guest.Init(QueryRing, ChannelRing));
        s.Submit(Guest.Poll(), fence: true, ring: 1);
        s.PeerSend("wl_data_source.send"u8, fdKinds: [2]);
        s.Wait();
        s.Submit(Guest.Write(2, "text"u8, hangUp: false));
        s.Submit(Guest.Write(2, "!"u8, hangUp: true));
        yield return ("write-pipe", s.ToArray());

        // POLLs held when the context goes: CTX_DESTROY releases them; the new context starts over.
        s = new SeedBuilder(2 | 4);
        s.Submit(Guest.Init(QueryRing, ChannelRing));
        s.Submit(Guest.Poll(), fence: true, ring: 1);
        s.Submit(Guest.Poll(), fence: true, ring: 1);
        s.Submit(Guest.GetImageRequirements(32, 32, Guest.DrmFormatXrgb8888), fence: true, ring: 3);
        s.RecreateContext();
        s.Submit(Guest.Init(QueryRing, ChannelRing));
        s.Submit(Guest.Poll(), fence: true, ring: 2);
        yield return ("destroy-with-held-polls", s.ToArray());

        // What the context refuses: INIT of a 2D resource, a 64-byte ring, no channel then POLL, a detached ring.
        s = new SeedBuilder(1);
        s.Submit(Guest.Init(NotABlob, ChannelRing));
        s.Submit(Guest.Init(SmallRing, ChannelRing));
        s.Submit(Guest.Init(QueryRing, ChannelRing)); // the channel is refused (options bit 0)
        s.Submit(Guest.Init(QueryRing, ChannelRing, channelType: 0));
        s.Submit(Guest.Poll(), fence: true, ring: 1);
        s.Detach(QueryRing);
        s.Submit(Guest.GetImageRequirements(16, 16, Guest.DrmFormatXrgb8888), fence: true, ring: 0);
        s.Submit([9, 0, 8, 0, 0, 0, 0, 0]);
        yield return ("refused", s.ToArray());
    }

    /// <summary>The 36-byte INIT (v1 + internal_socket_uuid).</summary>
    private static byte[] InitFull(uint query, uint channel)
    {
        var b = new byte[CrossDomainProtocol.InitSize];
        Guest.Init(query, channel).CopyTo(b, 0);
        BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(2), (ushort)b.Length);
        return b;
    }

    private sealed class SeedBuilder(byte options)
    {
        private readonly List<byte> _bytes = [options];

        private void Add(int op, ReadOnlySpan<byte> payload)
        {
            _bytes.Add((byte)op);
            _bytes.Add((byte)payload.Length);
            _bytes.Add((byte)(payload.Length >> 8));
            _bytes.AddRange(payload);
        }

        public void Submit(byte[] stream, bool fence = false, int ring = 3) => Add((fence ? 4 : 0) | (ring << 3), stream);

        public void PeerSend(ReadOnlySpan<byte> data, int[]? fdKinds = null)
        {
            fdKinds ??= [];
            int spec = fdKinds.Length;
            for (int i = 0; i < fdKinds.Length; i++) spec |= fdKinds[i] << (2 + 2 * i);
            Add(1, [(byte)spec, .. data]);
        }

        public void PeerDrain() => Add(1 | (1 << 2), []);
        public void PeerPipeWrite(ReadOnlySpan<byte> data, bool close) => Add(1 | (2 << 2) | (close ? 16 : 0), data);
        public void PeerHangUp() => Add(1 | (3 << 2), []);

        public void CreateHostBlob(uint blobId, uint size)
        {
            var p = new byte[8];
            BinaryPrimitives.WriteUInt32LittleEndian(p, blobId);
            BinaryPrimitives.WriteUInt32LittleEndian(p.AsSpan(4), size);
            Add(2, p);
        }

        public void Detach(uint id) => Add(2 | (1 << 2), [(byte)id]);
        public void RecreateContext() => Add(2 | (3 << 2), []);
        public void Wait() => Add(3, []);

        public byte[] ToArray() => _bytes.ToArray();
    }
}
