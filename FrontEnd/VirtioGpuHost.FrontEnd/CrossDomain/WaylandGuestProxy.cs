using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using VirtioGpuHost.Device.Wire;
using VirtioGpuHost.GuestMemory;
using VirtioGpuHost.Interop;
using static VirtioGpuHost.FrontEnd.CrossDomain.CrossDomainGuestWire;

namespace VirtioGpuHost.FrontEnd.CrossDomain;

/// <summary>
/// Plays the guest's Wayland proxy (sommelier / wayland-proxy-virtwl) on top of the reference
/// front-end: listens on a Unix socket for real Wayland clients and carries each one over its
/// own cross-domain context (CTX_CREATE context_init 5, two GUEST|MAPPABLE ring pages attached
/// to it, INIT, one POLL outstanding on ring 1).
/// <para>Client → host: each read of the client socket (≤ 3744 bytes and its fds) is one SEND.
/// A memory fd (a wl_shm pool) becomes a HOST3D blob (GET_IMAGE_REQUIREMENTS for R8 rows of
/// 4096 bytes covering the pool → CREATE_BLOB HOST3D MAPPABLE|SHAREABLE with that blob_id →
/// MAP_BLOB into the host-visible region); a pipe's write end becomes a predicted read-pipe id.</para>
/// <para>Pool contents: the client draws into its own memory, so before every SEND the proxy
/// copies each of the client's pools into its blob (a wl_surface.commit always travels in a SEND,
/// so the host sees the pixels before the commit). A pool that grows past its blob after it was
/// forwarded is copied only up to the blob's size (counted in <see cref="PoolOverflows"/>).</para>
/// <para>Host → client: RECEIVE data goes to the client with fds made from its identifiers (a
/// type-1 blob is created from its item id, mapped and copied into a local memfd, e.g. a
/// keymap; a type-4 write pipe becomes a local pipe whose data goes back with WRITE); READ data
/// goes into the client's pipe. An empty RECEIVE means the host connection hung up: the
/// client is disconnected.</para>
/// One thread drives the GPU driver for all clients (the driver's waits are not re-entrant).
/// </summary>
public sealed class WaylandGuestProxy : IDisposable
{
    private readonly GpuVm _vm;
    private readonly HostVisibleRegion _region;
    private readonly GuestAllocator _regionSpace;
    private readonly FdHandle _listener;
    private readonly FdHandle _wake = EventFd.Create();
    private readonly ILogger _log;
    private readonly Thread _thread;
    private readonly List<Session> _sessions = new();
    private readonly List<string> _errors = new();
    private volatile bool _stopping;
    private uint _nextCtx;
    private uint _nextResource;
    private long _clients, _clientsClosed, _sends, _receives, _reads, _writes, _poolCopies, _poolBytes, _poolOverflows;

    /// <param name="firstContextId">Context ids used by the proxy count up from here.</param>
    /// <param name="firstResourceId">Resource ids used by the proxy count up from here (keep them apart from the test's own).</param>
    public WaylandGuestProxy(GpuVm vm, string socketPath, ILogger? logger = null, uint firstContextId = 100, uint firstResourceId = 0x10000)
    {
        _vm = vm;
        _region = vm.HostVisible ?? throw new InvalidOperationException($"the VM has no host-visible region ({vm.HostVisibleError ?? "not asked for"}); HOST3D blobs cannot be mapped");
        _regionSpace = new GuestAllocator(0, _region.Size);
        _log = logger ?? NullLogger.Instance;
        _nextCtx = firstContextId;
        _nextResource = firstResourceId;
        SocketPath = socketPath;
        _listener = UnixSocket.Listen(socketPath);
        _thread = new Thread(Run) { IsBackground = true, Name = "wayland-guest-proxy" };
        _thread.Start();
    }

    public string SocketPath { get; }

    public long ClientsAccepted => Interlocked.Read(ref _clients);
    public long ClientsClosed => Interlocked.Read(ref _clientsClosed);
    public long Sends => Interlocked.Read(ref _sends);
    public long Receives => Interlocked.Read(ref _receives);
    public long ReadEvents => Interlocked.Read(ref _reads);
    public long Writes => Interlocked.Read(ref _writes);
    public long PoolCopies => Interlocked.Read(ref _poolCopies);
    public long PoolBytesCopied => Interlocked.Read(ref _poolBytes);
    public long PoolOverflows => Interlocked.Read(ref _poolOverflows);
    public int ActiveSessions { get { lock (_sessions) return _sessions.Count; } }

    /// <summary>Problems the proxy met (device errors, unsupported fds), for tests to show.</summary>
    public IReadOnlyList<string> Errors { get { lock (_errors) return _errors.ToArray(); } }

    private void Error(string what)
    {
        lock (_errors) if (_errors.Count < 1000) _errors.Add(what);
        _log.LogWarning("wayland proxy: {What}", what);
    }

    // ---- the pump thread ----

    private void Run()
    {
        var entries = new List<PollEntry>();
        var owners = new List<(Session S, uint PipeId)>();
        var receiveBuffer = new byte[MaxSendData];
        try
        {
            while (!_stopping)
            {
                entries.Clear();
                owners.Clear();
                entries.Add(new PollEntry(_wake, PollEvents.In));
                entries.Add(new PollEntry(_listener, PollEvents.In));
                foreach (var s in SessionsSnapshot())
                {
                    entries.Add(new PollEntry(s.Client, PollEvents.In));
                    owners.Add((s, 0));
                    foreach (var (id, fd) in s.WritePipes)
                    {
                        entries.Add(new PollEntry(fd, PollEvents.In));
                        owners.Add((s, id));
                    }
                }
                var span = System.Runtime.InteropServices.CollectionsMarshal.AsSpan(entries);
                // POLL completions arrive on the used ring: look every 2 ms.
                Poller.Poll(span, 2);
                if (span[0].Readable) EventFd.Drain(_wake);
                if (_stopping) break;
                if (span[1].Readable) Accept();
                for (int i = 0; i < owners.Count; i++)
                {
                    var (s, pipe) = owners[i];
                    if (s.Closed || !span[2 + i].Readable) continue;
                    try
                    {
                        if (pipe == 0) FromClient(s, receiveBuffer);
                        else FromLocalPipe(s, pipe, span[2 + i].Fd!);
                    }
                    catch (Exception e) when (e is IOException or InvalidOperationException or TimeoutException)
                    {
                        Error($"client {s.Id}: {e.Message}");
                        Close(s);
                    }
                }
                foreach (var s in SessionsSnapshot())
                {
                    if (s.Closed) continue;
                    try { CheckPoll(s); }
                    catch (Exception e) when (e is IOException or InvalidOperationException or TimeoutException)
                    {
                        Error($"client {s.Id}: {e.Message}");
                        Close(s);
                    }
                }
            }
        }
        catch (Exception e)
        {
            Error($"the proxy stopped: {e}");
        }
        finally
        {
            foreach (var s in SessionsSnapshot()) Close(s);
        }
    }

    private Session[] SessionsSnapshot() { lock (_sessions) return _sessions.ToArray(); }

    private void Accept()
    {
        var client = UnixSocket.Accept(_listener, 0);
        if (client is null) return;
        Interlocked.Increment(ref _clients);
        UnixSocket.SetSendTimeout(client, TimeSpan.FromSeconds(5)); // a client that stops reading cannot stall the others for long
        Session? s = null;
        try
        {
            s = new Session(++_nextCtx, client);
            OpenContext(s);
            lock (_sessions) _sessions.Add(s);
        }
        catch (Exception e) when (e is IOException or InvalidOperationException or TimeoutException)
        {
            Error($"client {_nextCtx}: setting up its cross-domain context failed: {e.Message}");
            if (s is not null) Close(s);
            else client.Dispose();
        }
    }

    private GpuDriver Driver => _vm.Driver;

    private static void Ok(GpuReply r, string what)
    {
        if (!r.IsOk) throw new InvalidOperationException($"{what}: {r.Type}");
    }

    private void OpenContext(Session s)
    {
        Ok(Driver.CtxCreate(s.Id, CapsetId, $"wayland-{s.Id}"), "CTX_CREATE");
        s.ContextCreated = true;
        s.QueryRing = CreateRing(s);
        s.ChannelRing = CreateRing(s);
        Ok(Driver.Submit3D(s.Id, Init(s.QueryRing.Resource, s.ChannelRing.Resource)), "INIT");
        QueuePoll(s);
    }

    private Ring CreateRing(Session s)
    {
        var page = _vm.Ram.Allocator.Allocate(4096);
        _vm.Ram.Span(page, 4096).Clear();
        uint id = ++_nextResource;
        var ring = new Ring(id, page);
        s.Rings.Add(ring);
        Ok(Driver.CreateBlob(id, VirtioGpuResourceCreateBlob.MemGuest, VirtioGpuResourceCreateBlob.FlagUseMappable, 4096, [new GuestBuffer(page, 4096)]), "RESOURCE_CREATE_BLOB (ring)");
        ring.Created = true;
        Ok(Driver.CtxAttachResource(s.Id, id), "CTX_ATTACH_RESOURCE (ring)");
        return ring;
    }

    private void QueuePoll(Session s)
    {
        s.Poll = Driver.Queue(Driver.Submit3DCommand(s.Id, CrossDomainGuestWire.Poll(), fence: true, ringIdx: ChannelRing));
        Driver.KickControl();
    }

    // ---- client → host ----

    private void FromClient(Session s, byte[] buffer)
    {
        var fds = new List<FdHandle>();
        IoStatus status;
        int n;
        try { status = UnixSocket.Receive(s.Client, buffer, fds, out n); }
        catch (IOException e)
        {
            Error($"client {s.Id}: {e.Message}");
            status = IoStatus.Closed;
            n = 0;
        }
        if (status == IoStatus.WouldBlock) return;
        if (status == IoStatus.Closed)
        {
            foreach (var fd in fds) fd.Dispose();
            Close(s);
            return;
        }
        var ids = new List<(uint Id, uint Type)>();
        try
        {
            foreach (var fd in fds)
            {
                var kind = FdFiles.KindOf(fd);
                if (kind == FdKind.RegularFile) ids.Add((PoolFor(s, fd), IdBlob));
                else if (kind == FdKind.Pipe && FdFiles.IsWriteOnly(fd))
                {
                    uint id = ++s.LastReadPipeId; // the host hands out read-pipe ids in this order
                    s.ReadPipes[id] = fd.Duplicate();
                    ids.Add((id, IdReadPipe));
                }
                else Error($"client {s.Id}: an fd of kind {kind} cannot cross; dropped");
            }
        }
        finally
        {
            foreach (var fd in fds) fd.Dispose();
        }
        SyncPools(s);
        var reply = Driver.Submit3D(s.Id, Send(ids.ToArray(), buffer.AsSpan(0, n)));
        if (!reply.IsOk) throw new IOException($"SEND refused: {reply.Type}");
        Interlocked.Increment(ref _sends);
    }

    /// <summary>The HOST3D blob that mirrors a client's pool fd (created on first sight).</summary>
    private uint PoolFor(Session s, FdHandle fd)
    {
        var identity = FdFiles.IdentityOf(fd);
        if (s.Pools.TryGetValue(identity, out var known)) return known.Resource;
        ulong size = FdFiles.SizeOf(fd);
        if (size == 0) throw new IOException("an empty memory fd cannot be a pool");
        uint rows = (uint)((size + 4095) / 4096);
        Ok(Driver.Submit3D(s.Id, GetImageRequirements(4096, rows, DrmFormatR8), fence: true, ringIdx: QueryRing), "GET_IMAGE_REQUIREMENTS");
        var reqs = ImageRequirementsReply.Parse(_vm.Ram.Span(s.QueryRing.Page, 64));
        if (reqs.Size < size) throw new IOException($"GET_IMAGE_REQUIREMENTS gave {reqs.Size} bytes for a {size}-byte pool");
        uint id = ++_nextResource;
        var pool = new Pool(id, fd.Duplicate(), identity, reqs.Size);
        s.Pools[identity] = pool;
        Ok(Driver.CreateBlob(id, VirtioGpuResourceCreateBlob.MemHost3D, VirtioGpuResourceCreateBlob.FlagUseMappable | VirtioGpuResourceCreateBlob.FlagUseShareable,
            reqs.Size, blobId: reqs.BlobId, ctxId: s.Id), "RESOURCE_CREATE_BLOB (HOST3D pool)");
        pool.Created = true;
        Ok(Driver.CtxAttachResource(s.Id, id), "CTX_ATTACH_RESOURCE (pool)");
        pool.Offset = _regionSpace.Allocate(reqs.Size).Value;
        pool.HasOffset = true;
        var map = Driver.MapBlob(id, pool.Offset);
        if (map.Type != VirtioGpuCtrlType.OkMapInfo) throw new IOException($"MAP_BLOB of pool blob {id}: {map.Type}");
        pool.Mapped = true;
        return id;
    }

    /// <summary>Copies every pool of the client into its blob (the rule: before each SEND).</summary>
    private void SyncPools(Session s)
    {
        foreach (var pool in s.Pools.Values)
        {
            ulong fileSize = FdFiles.SizeOf(pool.ClientFd);
            if (fileSize > pool.BlobSize)
            {
                Interlocked.Increment(ref _poolOverflows);
                fileSize = pool.BlobSize;
            }
            if (fileSize == 0) continue;
            if (pool.View is null || pool.View.Length != fileSize)
            {
                pool.View?.Dispose();
                pool.View = MappedMemory.Map(pool.ClientFd, 0, fileSize, writable: false);
            }
            for (ulong at = 0; at < fileSize; at += 1 << 30)
            {
                int len = (int)Math.Min(1UL << 30, fileSize - at);
                var access = _region.Write(pool.Offset + at, pool.View.AsSpan(at, len));
                if (access != HostVisibleAccess.Mapped) throw new IOException($"pool blob {pool.Resource} is not writable in the host-visible region ({access})");
            }
            Interlocked.Increment(ref _poolCopies);
            Interlocked.Add(ref _poolBytes, (long)fileSize);
        }
    }

    private void FromLocalPipe(Session s, uint id, FdHandle pipe)
    {
        var buffer = new byte[4000];
        var status = FdFiles.Read(pipe, buffer, out int n);
        if (status == IoStatus.WouldBlock) return;
        bool eof = status == IoStatus.Closed;
        Ok(Driver.Submit3D(s.Id, Write(id, buffer.AsSpan(0, n), eof)), "WRITE");
        Interlocked.Increment(ref _writes);
        if (eof && s.WritePipes.Remove(id, out var fd)) fd.Dispose();
    }

    // ---- host → client ----

    private void CheckPoll(Session s)
    {
        if (s.Poll is not { } poll || Driver.TryWait(poll) is not { } reply) return;
        s.Poll = null;
        if (!reply.IsOk) throw new IOException($"POLL: {reply.Type}");
        var message = ChannelMessage.Parse(_vm.Ram.Span(s.ChannelRing.Page, 4096), out var why);
        if (message is null)
        {
            Error($"client {s.Id}: {why}");
        }
        else if (message.Command == CmdRead)
        {
            Interlocked.Increment(ref _reads);
            if (s.ReadPipes.TryGetValue(message.ReadIdentifier, out var target))
            {
                if (message.Data.Length > 0 && !FdFiles.WriteAll(target, message.Data)) Error($"client {s.Id}: its read pipe 0x{message.ReadIdentifier:x} was closed");
                if (message.HangUp && s.ReadPipes.Remove(message.ReadIdentifier, out var fd)) fd.Dispose();
            }
            else Error($"client {s.Id}: READ for unknown pipe 0x{message.ReadIdentifier:x}");
        }
        else if (message.HangUp)
        {
            _log.LogInformation("wayland proxy: client {Id}: the host connection hung up", s.Id);
            Close(s);
            return;
        }
        else
        {
            Interlocked.Increment(ref _receives);
            var fds = new List<FdHandle>();
            try
            {
                foreach (var (id, type, size) in message.Identifiers)
                {
                    if (type == IdBlob) fds.Add(CopyHostBlob(s, id, size));
                    else if (type == IdWritePipe)
                    {
                        var (read, write) = FdFiles.CreatePipe();
                        read.SetNonBlocking(true);
                        s.WritePipes[id] = read;
                        fds.Add(write);
                    }
                    else Error($"client {s.Id}: RECEIVE identifier type {type} is not supported; dropped");
                }
                if (!SendAll(s.Client, message.Data, fds)) { Close(s); return; }
            }
            finally
            {
                foreach (var fd in fds) fd.Dispose();
            }
        }
        QueuePoll(s);
    }

    /// <summary>A host item (e.g. a keymap) as a local memfd: HOST3D blob of its id, mapped, copied, released.</summary>
    private FdHandle CopyHostBlob(Session s, uint itemId, uint size)
    {
        if (size == 0) throw new IOException($"blob item {itemId} has size 0");
        uint id = ++_nextResource;
        ulong pages = (size + 4095UL) & ~4095UL;
        Ok(Driver.CreateBlob(id, VirtioGpuResourceCreateBlob.MemHost3D, VirtioGpuResourceCreateBlob.FlagUseMappable, size, blobId: itemId, ctxId: s.Id), "RESOURCE_CREATE_BLOB (received item)");
        var offset = _regionSpace.Allocate(pages);
        try
        {
            var map = Driver.MapBlob(id, offset.Value);
            if (map.Type != VirtioGpuCtrlType.OkMapInfo) throw new IOException($"MAP_BLOB of item blob {id}: {map.Type}");
            var local = MemFd.Create($"wayland-proxy-item{itemId}", size);
            try
            {
                using var view = MappedMemory.Map(local, 0, size);
                var access = _region.Read(offset.Value, view.AsSpan(0, (int)size));
                if (access != HostVisibleAccess.Mapped && access != HostVisibleAccess.ReadOnly) throw new IOException($"reading item blob {id}: {access}");
            }
            catch
            {
                local.Dispose();
                throw;
            }
            Ok(Driver.UnmapBlob(id), "RESOURCE_UNMAP_BLOB");
            return local;
        }
        finally
        {
            _regionSpace.Free(offset, pages);
            Driver.Unref(id);
        }
    }

    private static bool SendAll(FdHandle client, byte[] data, List<FdHandle> fds)
    {
        int offset = 0;
        var attach = fds.ToArray();
        do
        {
            var status = UnixSocket.Send(client, data.AsSpan(offset), attach, out int sent);
            if (status == IoStatus.Closed) return false;
            if (status == IoStatus.WouldBlock)
            {
                Span<PollEntry> e = [new PollEntry(client, PollEvents.Out)];
                if (Poller.Poll(e, 5000) == 0) throw new TimeoutException("the client does not read");
                continue;
            }
            attach = [];
            offset += sent;
        } while (offset < data.Length);
        return true;
    }

    // ---- teardown ----

    private void Close(Session s)
    {
        if (s.Closed) return;
        s.Closed = true;
        lock (_sessions) _sessions.Remove(s);
        Interlocked.Increment(ref _clientsClosed);
        try
        {
            foreach (var pool in s.Pools.Values)
            {
                if (pool.Mapped) Driver.UnmapBlob(pool.Resource);
                if (pool.HasOffset) _regionSpace.Free(new GuestAddress(pool.Offset), pool.BlobSize);
                if (pool.Created) Driver.Unref(pool.Resource);
            }
            // Destroying the context signals its held POLL: its chain comes back and is reclaimed.
            if (s.ContextCreated) Driver.CtxDestroy(s.Id);
            if (s.Poll is { } poll) Driver.Wait(poll);
            foreach (var ring in s.Rings)
            {
                if (ring.Created) Driver.Unref(ring.Resource);
                _vm.Ram.Allocator.Free(ring.Page, 4096);
            }
        }
        catch (Exception e) when (e is IOException or InvalidOperationException or TimeoutException)
        {
            Error($"client {s.Id}: teardown: {e.Message}");
        }
        s.Dispose();
    }

    public void Dispose()
    {
        _stopping = true;
        EventFd.Signal(_wake);
        if (!_thread.Join(TimeSpan.FromSeconds(15))) Error("the proxy thread did not stop within 15 s");
        _listener.Dispose();
        _wake.Dispose();
        try { File.Delete(SocketPath); } catch (IOException) { }
    }

    private sealed class Ring(uint resource, GuestAddress page)
    {
        public uint Resource { get; } = resource;
        public GuestAddress Page { get; } = page;
        public bool Created { get; set; }
    }

    private sealed class Pool(uint resource, FdHandle clientFd, (ulong, ulong) identity, ulong blobSize)
    {
        public uint Resource { get; } = resource;
        public FdHandle ClientFd { get; } = clientFd;
        public (ulong, ulong) Identity { get; } = identity;
        public ulong BlobSize { get; } = blobSize;
        public ulong Offset { get; set; }
        public bool HasOffset { get; set; }
        public bool Created { get; set; }
        public bool Mapped { get; set; }
        public MappedMemory? View { get; set; }
    }

    private sealed class Session(uint id, FdHandle client) : IDisposable
    {
        public uint Id { get; } = id;
        public FdHandle Client { get; } = client;
        public bool ContextCreated { get; set; }
        public List<Ring> Rings { get; } = new();
        public Ring QueryRing { get; set; } = null!;
        public Ring ChannelRing { get; set; } = null!;
        public PendingCommand? Poll { get; set; }
        public uint LastReadPipeId { get; set; } = ReadPipeIdBase;
        public Dictionary<(ulong, ulong), Pool> Pools { get; } = new();
        public Dictionary<uint, FdHandle> ReadPipes { get; } = new();
        public Dictionary<uint, FdHandle> WritePipes { get; } = new();
        public bool Closed { get; set; }

        public void Dispose()
        {
            Client.Dispose();
            foreach (var p in Pools.Values)
            {
                p.View?.Dispose();
                p.ClientFd.Dispose();
            }
            foreach (var fd in ReadPipes.Values) fd.Dispose();
            foreach (var fd in WritePipes.Values) fd.Dispose();
        }
    }
}
