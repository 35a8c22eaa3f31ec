using System.Buffers.Binary;
using Microsoft.Extensions.Logging;
using VirtioGpuHost.Device;
using VirtioGpuHost.Device.Blobs;
using VirtioGpuHost.Device.Contexts;
using VirtioGpuHost.Device.Wire;
using VirtioGpuHost.GuestMemory;
using VirtioGpuHost.Interop;
using static VirtioGpuHost.CrossDomain.CrossDomainProtocol;

namespace VirtioGpuHost.CrossDomain;

/// <summary>
/// One cross-domain context (CTX_CREATE with context_init 5), following rutabaga_gfx's
/// cross_domain: INIT opens a Wayland connection for the guest, SEND forwards Wayland bytes
/// with the fds of HOST3D blobs and new read pipes, POLL fences on ring 1 are held until the
/// worker has an event (RECEIVE of server bytes + fds as items, READ of pipe data), WRITE feeds
/// write pipes, GET_IMAGE_REQUIREMENTS answers linear layouts whose blob_id a HOST3D
/// CREATE_BLOB then allocates. Runs on the device's event loop (socket and pipe I/O are on the
/// <see cref="ChannelWorker"/> thread); every malformed command is refused with an error that
/// names the command and the field. Dispose closes every fd the context holds.
/// </summary>
public sealed class CrossDomainContext : IGpuContext
{
    private readonly IGpuContextHost _host;
    private readonly CrossDomainOptions _options;
    private readonly Action<Action> _post;
    private readonly ILogger _log;
    private readonly Dictionary<uint, Item> _items = new();
    private readonly Dictionary<(uint W, uint H, uint Format), uint> _requirementIds = new();
    private readonly string _name;
    private uint _lastItemId = FirstItemId - 1;
    private uint _lastReadPipeId = ReadPipeIdBase;
    private (uint Query, uint Channel)? _rings;
    private ChannelWorker? _worker;
    private bool _disposed;

    public CrossDomainContext(IGpuContextHost host, CrossDomainOptions options)
    {
        _host = host;
        _options = options;
        _log = options.Logger;
        _name = $"{host.ConnectionName} ctx {host.ContextId}";
        if (options.Post is { } post) _post = post;
        else if (SynchronizationContext.Current is { } sc) _post = a => sc.Post(_ => a(), null);
        else throw new InvalidOperationException("a cross-domain context needs the device's event loop (no SynchronizationContext and no Post)");
    }

    // ---- what tests and metrics look at ----

    public bool Initialized => _rings is not null;
    public bool HasChannel => _worker is not null;
    public bool ChannelHungUp => _worker?.HungUp ?? false;
    public int ItemCount => _items.Count;
    public int PendingPollFences => _worker?.PendingFences ?? 0;
    public long Sends { get; private set; }
    public long Receives { get; private set; }
    public long ReadEvents { get; private set; }
    public long Writes { get; private set; }

    // ---- IGpuContext ----

    public GpuContextError? Submit(ReadOnlySpan<byte> commands)
    {
        if (_disposed) return Error(VirtioGpuCtrlType.ErrUnspec, "the context is destroyed");
        int offset = 0;
        while (offset < commands.Length)
        {
            var rest = commands[offset..];
            if (rest.Length < HeaderSize)
                return Error(VirtioGpuCtrlType.ErrInvalidParameter, $"{rest.Length} bytes left at offset {offset}: less than a command header");
            byte cmd = rest[0];
            ushort size = BinaryPrimitives.ReadUInt16LittleEndian(rest[2..]);
            string name = CommandName(cmd);
            if (size < HeaderSize)
                return Error(VirtioGpuCtrlType.ErrInvalidParameter, $"{name} at offset {offset}: cmd_size {size} is smaller than the 8-byte header");
            if (size > rest.Length)
                return Error(VirtioGpuCtrlType.ErrInvalidParameter, $"{name} at offset {offset}: cmd_size {size} runs past the end of the {commands.Length}-byte stream");
            var c = rest[..size];
            var error = cmd switch
            {
                CmdInit => Init(c),
                CmdGetImageRequirements => GetImageRequirements(c),
                CmdPoll => Poll(c),
                CmdSend => Send(c),
                CmdWrite => Write(c),
                _ => Error(VirtioGpuCtrlType.ErrInvalidParameter, $"{name} at offset {offset}: not a command the guest may send (1-4, 7)"),
            };
            if (error is not null) return error;
            offset += size;
        }
        return null;
    }

    public bool CreateFence(byte? ringIdx, ulong fenceId)
    {
        switch (ringIdx)
        {
            case QueryRing:
                return true; // GET_IMAGE_REQUIREMENTS wrote its answer already
            case ChannelRing when _worker is not null && !_disposed:
                _worker.AddFence(fenceId);
                return false;
            case ChannelRing:
                _host.Errors.Report("cross-domain fence", $"ctx {_host.ContextId}: fence {fenceId} on the channel ring before INIT opened a channel: signalled at once");
                return true;
            case null:
                _host.Errors.Report("cross-domain fence", $"ctx {_host.ContextId}: fence {fenceId} has no ring_idx (FLAG_INFO_RING_IDX): signalled at once");
                return true;
            default:
                _host.Errors.Report("cross-domain fence", $"ctx {_host.ContextId}: fence {fenceId} on ring_idx {ringIdx}, which is neither 0 (query) nor 1 (channel): signalled at once");
                return true;
        }
    }

    public void ResourceAttached(GpuResource resource) { }

    // Rings and blobs are looked up at each use: a detached ring makes the next write fail cleanly.
    public void ResourceDetached(GpuResource resource) { }

    public bool TryProvideHostBlob(ulong blobId, ulong size, out MemoryBlock? memory, out GpuContextError? error)
    {
        memory = null;
        error = null;
        if (blobId > uint.MaxValue || !_items.TryGetValue((uint)blobId, out var item))
        {
            error = new GpuContextError(VirtioGpuCtrlType.ErrInvalidParameter, $"blob_id {blobId} names no item of this cross-domain context");
            return false;
        }
        switch (item)
        {
            case RequirementsItem r:
                if (size != r.Requirements.Size)
                {
                    error = new GpuContextError(VirtioGpuCtrlType.ErrInvalidParameter, $"size {size} differs from the {r.Requirements.Size} bytes GET_IMAGE_REQUIREMENTS gave for blob_id {blobId}");
                    return false;
                }
                return true; // the device allocates a zero-filled memfd of that size
            case BlobItem b:
                if (size > b.Size)
                {
                    error = new GpuContextError(VirtioGpuCtrlType.ErrInvalidParameter, $"size {size} exceeds the {b.Size} bytes of the fd behind blob_id {blobId}");
                    return false;
                }
                _items.Remove((uint)blobId); // received fds are used once
                try
                {
                    memory = MapReceived(b.Fd, size, blobId);
                    return true;
                }
                catch (Exception e) when (e is IOException or ArgumentException)
                {
                    b.Dispose();
                    error = new GpuContextError(VirtioGpuCtrlType.ErrUnspec, $"blob_id {blobId}: mapping the received fd failed: {e.Message}");
                    return false;
                }
            default:
                error = new GpuContextError(VirtioGpuCtrlType.ErrInvalidParameter, $"blob_id {blobId} is a {item.Kind}, not memory");
                return false;
        }
    }

    /// <summary>
    /// The received fd as blob memory: mapped shared when it allows writing and covers whole
    /// pages, else (sealed or read-only, as compositors send keymaps, or a partial last page)
    /// copied into a fresh page-rounded memfd.
    /// </summary>
    private MemoryBlock MapReceived(FdHandle fd, ulong size, ulong blobId)
    {
        ulong pages = (size + 4095) & ~4095UL;
        try
        {
            // MAP_BLOB maps whole pages: share the fd itself only when the file covers them.
            if (FdFiles.SizeOf(fd) >= pages) return MappedBlock.Map(fd, 0, pages);
        }
        catch (IOException)
        {
            // EACCES/EPERM: a read-only or write-sealed fd; copied below.
        }
        var copy = MappedBlock.CreateMemFd($"vgh-xdomain-{_host.ContextId}-item{blobId}", Math.Max(pages, 4096));
        try
        {
            using (var source = MappedMemory.Map(fd, 0, size, writable: false))
                source.AsSpan(0, (int)size).CopyTo(copy.AsSpan(0, (int)size));
            fd.Dispose();
            return copy;
        }
        catch
        {
            copy.Release();
            throw;
        }
    }

    // ---- commands ----

    private GpuContextError? Init(ReadOnlySpan<byte> c)
    {
        uint query, channel, type;
        switch (c.Length)
        {
            case InitLegacySize: // one page serves both rings
                query = channel = U32(c, 8);
                type = U32(c, 12);
                break;
            case InitV1Size:
            case InitSize: // + internal_socket_uuid, used only by channel type INTERNAL_SOCKET
                query = U32(c, 8);
                channel = U32(c, 12);
                type = U32(c, 16);
                break;
            default:
                return Error(VirtioGpuCtrlType.ErrInvalidParameter, $"INIT: cmd_size {c.Length} is none of 16, 20, 36");
        }
        if (_rings is not null) return Error(VirtioGpuCtrlType.ErrInvalidParameter, "INIT: the context is initialized already");
        int queryNeeds = c.Length == InitLegacySize ? RingSize : ImageRequirementsSize;
        if (CheckRing(query, "query_ring_id", queryNeeds) is { } e1) return e1;
        if (type != 0)
        {
            if (type != ChannelTypeWayland)
                return Error(VirtioGpuCtrlType.ErrInvalidParameter, $"INIT: channel_type {type} is not supported (only Wayland = 1)");
            if (CheckRing(channel, "channel_ring_id", RingSize) is { } e2) return e2;
            FdHandle socket;
            try
            {
                socket = _options.Connect();
            }
            catch (Exception e) when (e is IOException or ArgumentException or InvalidOperationException or System.Net.Sockets.SocketException)
            {
                _log.LogWarning("{Name}: cannot open the Wayland channel: {Error}", _name, e.Message);
                return Error(VirtioGpuCtrlType.ErrUnspec, $"INIT: opening the Wayland channel failed: {e.Message}");
            }
            _worker = new ChannelWorker(socket, ev => _post(() => OnEvent(ev)), _log, _name, _options.MaxQueuedBytes);
        }
        _rings = (query, channel);
        return null;
    }

    private GpuContextError? CheckRing(uint id, string field, int needs)
    {
        if (_host.AttachedResource(id) is not { } res)
            return Error(VirtioGpuCtrlType.ErrInvalidResourceId, $"INIT: {field} {id} is not a resource attached to this context");
        if (res is not BlobResource { Kind: BlobMemory.Guest, Entries: { Length: > 0 } entries })
            return Error(VirtioGpuCtrlType.ErrInvalidParameter, $"INIT: {field} {id} is not a guest-memory blob (rings are guest pages)");
        if (entries[0].Length < (ulong)needs)
            return Error(VirtioGpuCtrlType.ErrInvalidParameter, $"INIT: {field} {id}: its first memory entry has {entries[0].Length} bytes; the ring needs {needs}");
        return null;
    }

    /// <summary>Writes a message at offset 0 of a ring (through its first memory entry, as rutabaga); null or why not.</summary>
    private string? WriteRing(uint ringId, ReadOnlySpan<byte> message)
    {
        if (_host.AttachedResource(ringId) is not BlobResource { Kind: BlobMemory.Guest, Entries: { Length: > 0 } entries })
            return $"ring resource {ringId} is no longer an attached guest blob";
        if ((ulong)message.Length > entries[0].Length)
            return $"a {message.Length}-byte message does not fit the {entries[0].Length}-byte ring {ringId}";
        if (!_host.Memory.TryWrite(new GuestAddress(entries[0].Address), message))
            return $"ring {ringId} at 0x{entries[0].Address:x} is not in guest memory";
        return null;
    }

    private GpuContextError? GetImageRequirements(ReadOnlySpan<byte> c)
    {
        const string cmd = "GET_IMAGE_REQUIREMENTS";
        if (c.Length < GetImageRequirementsSize) return Error(VirtioGpuCtrlType.ErrInvalidParameter, $"{cmd}: cmd_size {c.Length} is below {GetImageRequirementsSize}");
        if (_rings is not { } rings) return Error(VirtioGpuCtrlType.ErrInvalidParameter, $"{cmd} before INIT");
        uint width = U32(c, 8), height = U32(c, 12), format = U32(c, 16);
        // flags @20 (GBM usage) do not change a linear CPU layout.
        if (ImageRequirements.Compute(width, height, format, out var why) is not { } reqs)
            return Error(VirtioGpuCtrlType.ErrInvalidParameter, $"{cmd}: {why}");
        // The same request gets the same blob_id: items stay bounded however often a guest asks.
        if (!_requirementIds.TryGetValue((width, height, format), out uint id))
        {
            if (AddItem(new RequirementsItem(reqs), cmd, out id) is { } full) return full;
            _requirementIds[(width, height, format)] = id;
        }
        if (WriteRing(rings.Query, reqs.Encode(id)) is { } bad) return Error(VirtioGpuCtrlType.ErrInvalidParameter, $"{cmd}: {bad}");
        return null;
    }

    private GpuContextError? Poll(ReadOnlySpan<byte> c)
    {
        if (c.Length < PollSize) return Error(VirtioGpuCtrlType.ErrInvalidParameter, $"POLL: cmd_size {c.Length} is below {PollSize}");
        if (_rings is null) return Error(VirtioGpuCtrlType.ErrInvalidParameter, "POLL before INIT");
        if (_worker is null) return Error(VirtioGpuCtrlType.ErrInvalidParameter, "POLL: INIT opened no channel (channel_type 0)");
        return null; // the waiting happens on the fence (CreateFence, ring 1)
    }

    private GpuContextError? Send(ReadOnlySpan<byte> c)
    {
        const string cmd = "SEND";
        if (c.Length < SendReceiveSize) return Error(VirtioGpuCtrlType.ErrInvalidParameter, $"{cmd}: cmd_size {c.Length} is below {SendReceiveSize}");
        if (_rings is null) return Error(VirtioGpuCtrlType.ErrInvalidParameter, $"{cmd} before INIT");
        if (_worker is not { } worker) return Error(VirtioGpuCtrlType.ErrInvalidParameter, $"{cmd}: INIT opened no channel");
        if (worker.HungUp) return Error(VirtioGpuCtrlType.ErrUnspec, $"{cmd}: the Wayland connection was closed by the host side");
        uint count = U32(c, OffNumIdentifiers), dataSize = U32(c, OffOpaqueDataSize);
        if (count > MaxIdentifiers) return Error(VirtioGpuCtrlType.ErrInvalidParameter, $"{cmd}: num_identifiers {count} exceeds {MaxIdentifiers}");
        if (dataSize > (uint)(c.Length - SendReceiveSize))
            return Error(VirtioGpuCtrlType.ErrInvalidParameter, $"{cmd}: opaque_data_size {dataSize} runs past the {c.Length}-byte command");
        if (dataSize > MaxReceiveData)
            return Error(VirtioGpuCtrlType.ErrInvalidParameter, $"{cmd}: opaque_data_size {dataSize} exceeds {MaxReceiveData} (a message must fit one 4 KiB ring page)");

        // Validate every identifier before anything is created, so a refused SEND leaves no trace.
        int readPipes = 0;
        for (int i = 0; i < count; i++)
        {
            uint id = U32(c, OffIdentifiers + 4 * i), type = U32(c, OffIdentifierTypes + 4 * i);
            switch (type)
            {
                case IdTypeVirtgpuBlob:
                    if (_host.AttachedResource(id) is not { } res)
                        return Error(VirtioGpuCtrlType.ErrInvalidResourceId, $"{cmd}: identifiers[{i}] = resource {id} is not attached to this context");
                    if (res is not BlobResource { HostMemory.Fd: not null })
                        return Error(VirtioGpuCtrlType.ErrInvalidParameter, $"{cmd}: identifiers[{i}] = resource {id} has no host memory to share ({(res is BlobResource { Kind: BlobMemory.Guest } ? "a guest-memory blob: create a HOST3D blob with GET_IMAGE_REQUIREMENTS' blob_id" : "not a blob")})");
                    break;
                case IdTypeReadPipe:
                    if (++readPipes > 1) return Error(VirtioGpuCtrlType.ErrInvalidParameter, $"{cmd}: identifiers[{i}]: more than one read pipe in one SEND");
                    uint expected = _lastReadPipeId + 1;
                    if (id != expected) return Error(VirtioGpuCtrlType.ErrInvalidParameter, $"{cmd}: identifiers[{i}] = read pipe 0x{id:x}, but the next read-pipe id is 0x{expected:x}");
                    if (_items.Count >= _options.MaxItems) return Error(VirtioGpuCtrlType.ErrOutOfMemory, $"{cmd}: the context holds {_items.Count} items (limit {_options.MaxItems})");
                    break;
                case IdTypeVirtgpuSync:
                    return Error(VirtioGpuCtrlType.ErrInvalidParameter, $"{cmd}: identifier_types[{i}] = 2 (VIRTGPU_SYNC) is not supported");
                default:
                    return Error(VirtioGpuCtrlType.ErrInvalidParameter, $"{cmd}: identifier_types[{i}] = {type} is not a type a guest may send (1 blob, 3 read pipe)");
            }
        }

        var fds = new List<FdHandle>();
        (uint Id, FdHandle Read)? newPipe = null;
        try
        {
            for (int i = 0; i < count; i++)
            {
                uint id = U32(c, OffIdentifiers + 4 * i), type = U32(c, OffIdentifierTypes + 4 * i);
                if (type == IdTypeVirtgpuBlob)
                {
                    fds.Add(((BlobResource)_host.AttachedResource(id)!).HostMemory!.Fd!.Duplicate());
                }
                else
                {
                    var (read, write) = FdFiles.CreatePipe(nonBlocking: true);
                    write.SetNonBlocking(false); // the server's end behaves like any pipe
                    fds.Add(write);
                    newPipe = (id, read);
                }
            }
        }
        catch (IOException e)
        {
            foreach (var fd in fds) fd.Dispose();
            newPipe?.Read.Dispose();
            return Error(VirtioGpuCtrlType.ErrOutOfMemory, $"{cmd}: duplicating fds failed: {e.Message}");
        }
        if (worker.QueueSend(c.Slice(SendReceiveSize, (int)dataSize).ToArray(), fds.ToArray()) is { } refused)
        {
            newPipe?.Read.Dispose();
            return Error(VirtioGpuCtrlType.ErrOutOfMemory, $"{cmd}: {refused}");
        }
        if (newPipe is { } p)
        {
            _lastReadPipeId = p.Id;
            _items[p.Id] = new ReadPipeItem(p.Read);
            worker.WatchReadPipe(p.Id, p.Read);
        }
        Sends++;
        return null;
    }

    private GpuContextError? Write(ReadOnlySpan<byte> c)
    {
        const string cmd = "WRITE";
        if (c.Length < ReadWriteSize) return Error(VirtioGpuCtrlType.ErrInvalidParameter, $"{cmd}: cmd_size {c.Length} is below {ReadWriteSize}");
        if (_worker is not { } worker) return Error(VirtioGpuCtrlType.ErrInvalidParameter, $"{cmd} before INIT opened a channel");
        uint id = U32(c, 8), hangUp = U32(c, 12), dataSize = U32(c, 16);
        if (dataSize > (uint)(c.Length - ReadWriteSize))
            return Error(VirtioGpuCtrlType.ErrInvalidParameter, $"{cmd}: opaque_data_size {dataSize} runs past the {c.Length}-byte command");
        if (dataSize > MaxReadData)
            return Error(VirtioGpuCtrlType.ErrInvalidParameter, $"{cmd}: opaque_data_size {dataSize} exceeds {MaxReadData} (a message must fit one 4 KiB ring page)");
        if (!_items.TryGetValue(id, out var item))
            return Error(VirtioGpuCtrlType.ErrInvalidParameter, $"{cmd}: identifier {id} names no item of this context");
        if (item is not WritePipeItem pipe)
            return Error(VirtioGpuCtrlType.ErrInvalidParameter, $"{cmd}: identifier {id} is a {item.Kind}, not a write pipe");
        var data = c.Slice(ReadWriteSize, (int)dataSize).ToArray();
        if (hangUp != 0) _items.Remove(id); // the pipe closes once its last bytes are written
        if ((data.Length > 0 || hangUp != 0) && worker.QueuePipeWrite(pipe.Fd, data, closeAfter: hangUp != 0) is { } refused)
            return Error(VirtioGpuCtrlType.ErrOutOfMemory, $"{cmd}: {refused}");
        Writes++;
        return null;
    }

    // ---- events from the worker (on the event loop) ----

    private void OnEvent(ChannelEvent ev)
    {
        if (_disposed || _rings is not { } rings)
        {
            if (ev is ReceiveEvent r0) foreach (var fd in r0.Fds) fd.Dispose();
            return;
        }
        string? error;
        if (ev is ReceiveEvent r)
        {
            var ids = new List<(uint Id, uint Type, uint Size)>();
            var added = new List<uint>();
            foreach (var fd in r.Fds)
            {
                if (ToItem(fd) is { } entry)
                {
                    ids.Add(entry);
                    added.Add(entry.Id);
                }
            }
            error = WriteRing(rings.Channel, BuildReceive(ids.ToArray(), r.Data));
            if (error is not null)
            {
                foreach (uint id in added) if (_items.Remove(id, out var it)) it.Dispose();
            }
            Receives++;
        }
        else
        {
            var rd = (ReadEvent)ev;
            error = WriteRing(rings.Channel, BuildRead(rd.Identifier, rd.HangUp, rd.Data));
            if (rd.HangUp && _items.Remove(rd.Identifier, out var it)) it.Dispose();
            ReadEvents++;
        }
        if (error is not null) _host.Errors.Report("cross-domain event", $"ctx {_host.ContextId}: {error}; the event is lost");
        _host.SignalFence(ChannelRing, ev.FenceId);
    }

    /// <summary>A received fd as an item: memory → blob (with its size), a pipe's write end → write pipe; anything else is closed.</summary>
    private (uint Id, uint Type, uint Size)? ToItem(FdHandle fd)
    {
        try
        {
            var kind = FdFiles.KindOf(fd);
            Item item;
            uint type, size = 0;
            if (kind == FdKind.RegularFile)
            {
                ulong bytes = FdFiles.SizeOf(fd);
                if (bytes > uint.MaxValue) throw new IOException($"a {bytes}-byte file does not fit identifier_size");
                item = new BlobItem(fd, bytes);
                type = IdTypeVirtgpuBlob;
                size = (uint)bytes;
            }
            else if (kind == FdKind.Pipe && FdFiles.IsWriteOnly(fd))
            {
                fd.SetNonBlocking(true);
                item = new WritePipeItem(fd);
                type = IdTypeWritePipe;
            }
            else
            {
                throw new IOException($"an fd of kind {kind} cannot cross (only memory and pipe write ends)");
            }
            if (AddItem(item, "RECEIVE", out uint id) is not null) throw new IOException($"the context holds {_items.Count} items (limit {_options.MaxItems})");
            return (id, type, size);
        }
        catch (IOException e)
        {
            _log.LogWarning("{Name}: an fd from the Wayland server was dropped: {Error}", _name, e.Message);
            fd.Dispose();
            return null;
        }
    }

    private GpuContextError? AddItem(Item item, string cmd, out uint id)
    {
        id = 0;
        if (_items.Count >= _options.MaxItems)
            return Error(VirtioGpuCtrlType.ErrOutOfMemory, $"{cmd}: the context holds {_items.Count} items (limit {_options.MaxItems})");
        do { id = ++_lastItemId; } while (id < FirstItemId || id >= ReadPipeIdBase || _items.ContainsKey(id));
        _items[id] = item;
        return null;
    }

    private static uint U32(ReadOnlySpan<byte> c, int offset) => BinaryPrimitives.ReadUInt32LittleEndian(c[offset..]);

    private static GpuContextError Error(VirtioGpuCtrlType type, string detail) => new(type, detail);

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _worker?.Dispose(); // joins the I/O thread: nothing uses the items after this
        foreach (var item in _items.Values) item.Dispose();
        _items.Clear();
        _requirementIds.Clear();
    }

    public override string ToString() => _name;

    // ---- items (host objects the guest names by id) ----

    private abstract class Item : IDisposable
    {
        public abstract string Kind { get; }
        public virtual void Dispose() { }
    }

    private sealed class RequirementsItem(ImageRequirements requirements) : Item
    {
        public ImageRequirements Requirements { get; } = requirements;
        public override string Kind => "image-requirements item";
    }

    private sealed class BlobItem(FdHandle fd, ulong size) : Item
    {
        public FdHandle Fd { get; } = fd;
        public ulong Size { get; } = size;
        public override string Kind => "received memory fd";
        public override void Dispose() => Fd.Dispose();
    }

    private sealed class ReadPipeItem(FdHandle read) : Item
    {
        public FdHandle Fd { get; } = read;
        public override string Kind => "read pipe";
        public override void Dispose() => Fd.Dispose();
    }

    private sealed class WritePipeItem(FdHandle write) : Item
    {
        public FdHandle Fd { get; } = write;
        public override string Kind => "write pipe";
        public override void Dispose() => Fd.Dispose();
    }
}
