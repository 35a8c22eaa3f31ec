using System.Buffers.Binary;
using Microsoft.Extensions.Logging;
using VirtioGpuHost.GuestMemory;
using VirtioGpuHost.Interop;
using VirtioGpuHost.Virtio;
using VirtioGpuHost.VhostUser.Transport;
using VirtioGpuHost.VhostUser.Wire;

namespace VirtioGpuHost.VhostUser.Backend;

// One method per front-end request (vhost-user.rst "Front-end message types").
public sealed partial class VhostUserBackendConnection
{
    private bool SetFeatures(ReceivedMessage msg)
    {
        if (!Expect(msg, 8, 0)) return false;
        ulong requested = BinaryPrimitives.ReadUInt64LittleEndian(msg.Payload);
        ulong unoffered = requested & ~OfferedFeatures;
        if (unoffered != 0)
        {
            // QEMU acks RING_RESET (bit 40) whether or not it was offered; tolerate, don't use.
            _log.LogDebug("{Conn}: SET_FEATURES acks bits 0x{Bits:x} that were never offered; ignoring them", ConnectionName, unoffered);
        }
        _ackedFeatures = requested & OfferedFeatures;
        foreach (var q in _queues)
        {
            q.Queue.EventIdx = (_ackedFeatures & VirtioFeatures.EventIdx) != 0;
            q.Queue.IndirectDescriptors = (_ackedFeatures & VirtioFeatures.IndirectDesc) != 0;
            q.Queue.NotifyOnEmpty = (_ackedFeatures & VirtioFeatures.NotifyOnEmpty) != 0;
        }
        // Without VHOST_USER_F_PROTOCOL_FEATURES rings are enabled right away (vhost-user.rst "Ring states").
        if ((_ackedFeatures & VhostUserFeatures.ProtocolFeatures) == 0)
            foreach (var q in _queues) SetEnabled(q, true);
        _device.AcknowledgeFeatures(_ackedFeatures & ~VhostUserFeatures.ProtocolFeatures);
        return true;
    }

    private bool SetProtocolFeatures(ReceivedMessage msg)
    {
        if (!Expect(msg, 8, 0)) return false;
        ulong requested = BinaryPrimitives.ReadUInt64LittleEndian(msg.Payload);
        ulong unsupported = requested & ~(ulong)OfferedProtocolFeatures;
        if (unsupported != 0)
            _log.LogWarning("{Conn}: SET_PROTOCOL_FEATURES asks for unoffered bits 0x{Bits:x}; ignoring them", ConnectionName, unsupported);
        _protocol = (VhostUserProtocolFeatures)(requested & (ulong)OfferedProtocolFeatures);
        return true;
    }

    private void ResetDevice()
    {
        _log.LogInformation("{Conn}: device reset", ConnectionName);
        _device.Reset();
        // Mappings the device asked for before the reset are no longer its: fail what is in
        // flight (a late successful SHMEM_MAP is undone when its reply comes).
        _backendChannel?.AbandonPending("device reset");
        for (int i = 0; i < _queues.Length; i++)
        {
            _kickWatches[i].Dispose();
            _kickWatches[i] = NoWatch.Instance;
            _queues[i].Queue.Reset();
            _queues[i].CloseFds();
            _queues[i].Addresses = null;
            _queues[i].Started = _queues[i].Enabled = _queues[i].DeviceStarted = false;
        }
        _ackedFeatures = 0;
    }

    // ---- memory table ----

    private bool SetMemTable(ReceivedMessage msg)
    {
        var p = msg.Payload;
        if (p.Length < MemoryTable.HeaderSize) return Refuse(msg, $"payload is {p.Length} bytes, shorter than the 8-byte table header");
        uint n = BinaryPrimitives.ReadUInt32LittleEndian(p);
        if (n > MemoryTable.MaxRegions) return Refuse(msg, $"num_regions {n} exceeds {MemoryTable.MaxRegions}");
        if (p.Length != MemoryTable.SizeFor((int)n)) return Refuse(msg, $"payload is {p.Length} bytes, expected {MemoryTable.SizeFor((int)n)} for {n} regions");
        if (msg.Fds.Count != n) return Refuse(msg, $"{msg.Fds.Count} fds for {n} regions");

        var regions = new List<GuestRegion>();
        try
        {
            for (int i = 0; i < n; i++)
            {
                var d = MemoryRegionDescriptor.Read(p.AsSpan(MemoryTable.HeaderSize + i * MemoryRegionDescriptor.Size));
                var region = MapRegion(msg, d, msg.Fds.Take(i));
                if (region is null) return false;
                regions.Add(region);
            }
            var map = GuestMemoryMap.Create(regions);
            PublishMemory(map);
            _log.LogInformation("{Conn}: memory table: {Map}", ConnectionName, map);
            return true;
        }
        catch (ArgumentException e)
        {
            return Refuse(msg, e.Message);
        }
        finally
        {
            foreach (var r in regions) r.Block.Release(); // the map holds its own references
        }
    }

    private bool AddMemReg(ReceivedMessage msg)
    {
        if (!Expect(msg, SingleMemoryRegion.Size, 1)) return false;
        var d = SingleMemoryRegion.Read(msg.Payload);
        // QEMU 11.1 feeds every SHMEM mapping back as one more region, beyond GET_MAX_MEM_SLOTS
        // (recipes/qemu11-blob-shmem): accept up to MaxMemRegions, refuse past that.
        if (_memory.Regions.Count >= MaxMemRegions)
            return Refuse(msg, $"all {MaxMemRegions} memory regions are in use ({MaxMemSlots} slots + {ExtraMemRegions} for shared-memory mappings)");
        var region = MapRegion(msg, d, msg.Fds.Take(0));
        if (region is null) return false;
        try
        {
            if (_memory.Regions.Count >= MaxMemSlots)
                _log.LogDebug("{Conn}: ADD_MEM_REG beyond the {Slots} slots reported (a shared-memory mapping fed back by the front-end)", ConnectionName, MaxMemSlots);
            var map = _memory.With(region);
            PublishMemory(map);
            _log.LogInformation("{Conn}: added memory region {Region}", ConnectionName, d);
            return true;
        }
        catch (ArgumentException e)
        {
            return Refuse(msg, e.Message);
        }
        finally
        {
            region.Block.Release();
        }
    }

    private bool RemMemReg(ReceivedMessage msg)
    {
        // REM_MEM_REG should carry no fd; close any that arrives (ReceivedFds does).
        if (msg.Payload.Length != SingleMemoryRegion.Size) return Refuse(msg, $"payload is {msg.Payload.Length} bytes, expected {SingleMemoryRegion.Size}");
        var d = SingleMemoryRegion.Read(msg.Payload);
        var map = _memory.Without(r => r.GuestStart.Value == d.GuestPhysAddr && r.Size == d.MemorySize && r.UserAddress == d.UserspaceAddr, out int removed);
        if (removed == 0)
        {
            map.Dispose();
            return Refuse(msg, $"no memory region matches {d}");
        }
        PublishMemory(map);
        _log.LogInformation("{Conn}: removed memory region {Region}", ConnectionName, d);
        return true;
    }

    /// <summary>Maps one region's fd; null (after logging) when the descriptor or the fd is unusable.</summary>
    private GuestRegion? MapRegion(ReceivedMessage msg, MemoryRegionDescriptor d, FdHandle fd)
    {
        if (d.MemorySize == 0)
        {
            fd.Dispose();
            Refuse(msg, $"region {d}: memory_size is 0");
            return null;
        }
        MappedBlock block;
        try
        {
            block = MappedBlock.Map(fd, d.MmapOffset, d.MemorySize);
        }
        catch (Exception e) when (e is IOException or ArgumentException)
        {
            fd.Dispose();
            Refuse(msg, $"region {d}: cannot map its fd: {e.Message}");
            return null;
        }
        // docs/reliability.md: sealed (cannot shrink) or guarded (a fault reads zeros and closes the connection).
        if (block.Protection == ShrinkProtection.None)
            _log.LogWarning("{Conn}: region {Region}: its file cannot be sealed against shrinking and the SIGBUS guard is unavailable ({Why}): a front-end that truncates it would crash the process",
                ConnectionName, d, SigbusGuard.UnavailableReason ?? "its table is full");
        else if (block.Protection == ShrinkProtection.Guarded)
            _log.LogInformation("{Conn}: region {Region}: its file cannot be sealed against shrinking; mapped under the SIGBUS guard", ConnectionName, d);
        try
        {
            return new GuestRegion(new GuestAddress(d.GuestPhysAddr), d.MemorySize, d.UserspaceAddr, d.MmapOffset, block);
        }
        catch (ArgumentException e)
        {
            block.Release();
            Refuse(msg, $"region {d}: {e.Message}");
            return null;
        }
    }

    /// <summary>Swaps in a new memory snapshot, re-binds every started ring to it and releases the old one.</summary>
    private void PublishMemory(GuestMemoryMap map)
    {
        var old = _memory;
        _memory = map;
        foreach (var q in _queues)
        {
            if (q.Started && BindQueue(q, memoryChange: true)) TellDeviceStarted(q);
        }
        _device.MemoryChanged(map);
        old.Dispose();
    }

    // ---- rings ----

    private bool SetVringNum(ReceivedMessage msg)
    {
        if (!Expect(msg, VringState.Size, 0)) return false;
        var s = VringState.Read(msg.Payload);
        if (!TryGetQueue(msg, s.Index, out var q)) return false;
        if (!SplitQueue.IsValidSize(s.Num) || s.Num > _device.MaxQueueSize)
            return Refuse(msg, $"ring {s.Index}: num {s.Num} is not a power of two in 1..{_device.MaxQueueSize}");
        if (q.Started) return Refuse(msg, $"ring {s.Index}: size cannot change while the ring is started");
        q.Queue.SetSize((ushort)s.Num);
        return true;
    }

    private bool SetVringAddr(ReceivedMessage msg)
    {
        if (!Expect(msg, VringAddress.Size, 0)) return false;
        var a = VringAddress.Read(msg.Payload);
        if (!TryGetQueue(msg, a.Index, out var q)) return false;
        if (a.Descriptor % 16 != 0 || a.Available % 2 != 0 || a.Used % 4 != 0)
            return Refuse(msg, $"ring {a.Index}: misaligned ring address (desc 0x{a.Descriptor:x} avail 0x{a.Available:x} used 0x{a.Used:x})");
        q.Addresses = a;
        if (q.Started && BindQueue(q)) TellDeviceStarted(q);
        return true;
    }

    private bool SetVringBase(ReceivedMessage msg)
    {
        if (!Expect(msg, VringState.Size, 0)) return false;
        var s = VringState.Read(msg.Payload);
        if (!TryGetQueue(msg, s.Index, out var q)) return false;
        if (s.Num > 0xffff) return Refuse(msg, $"ring {s.Index}: base {s.Num} has bits above 15 (packed rings are not offered)");
        if (q.Started) return Refuse(msg, $"ring {s.Index}: base cannot change while the ring is started");
        q.Queue.NextAvail = (ushort)s.Num;
        return true;
    }

    private bool? GetVringBase(ReceivedMessage msg)
    {
        ExpectOrClose(msg, VringState.Size, 0);
        var s = VringState.Read(msg.Payload);
        if (s.Index >= (uint)_queues.Length)
            throw new ProtocolViolationException($"GET_VRING_BASE: ring index {s.Index} out of range");
        var q = _queues[(int)s.Index];
        if (q.Started)
        {
            _device.QueueStopping(q); // finish in-flight requests before reporting the index
        }
        _kickWatches[q.Index].Dispose();
        _kickWatches[q.Index] = NoWatch.Instance;
        q.Kick?.Dispose();
        q.Kick = null;
        q.Started = false;
        q.DeviceStarted = false;
        q.Queue.Unbind();
        Span<byte> reply = stackalloc byte[VringState.Size];
        new VringState(s.Index, q.Queue.NextAvail).Write(reply);
        SendReply(msg, reply);
        _log.LogDebug("{Conn}: ring {Index} stopped at avail index {Avail}", ConnectionName, s.Index, q.Queue.NextAvail);
        return null;
    }

    private bool SetVringFd(ReceivedMessage msg, VhostUserRequest which)
    {
        if (msg.Payload.Length != 8) return Refuse(msg, $"payload is {msg.Payload.Length} bytes, expected 8");
        ulong v = BinaryPrimitives.ReadUInt64LittleEndian(msg.Payload);
        uint index = (uint)(v & VringFdPayload.IndexMask);
        bool noFd = (v & VringFdPayload.InvalidFdFlag) != 0;
        if ((v & ~(VringFdPayload.IndexMask | VringFdPayload.InvalidFdFlag)) != 0)
            return Refuse(msg, $"reserved bits set in 0x{v:x}");
        if (msg.Fds.Count != (noFd ? 0 : 1))
            return Refuse(msg, $"{msg.Fds.Count} fds attached, expected {(noFd ? 0 : 1)} (invalid-fd flag {(noFd ? "set" : "clear")})");
        if (!TryGetQueue(msg, index, out var q)) return false;
        FdHandle? fd = noFd ? null : msg.Fds.Take(0);
        if (fd is not null)
        {
            // Only eventfds (or pipes) are notification fds: anything else could be always
            // readable (a busy loop) or block our writes. Ours never block: O_NONBLOCK.
            if (!EventFd.IsEventFdOrPipe(fd))
            {
                fd.Dispose();
                return Refuse(msg, $"ring {index}: the fd is not an eventfd or a pipe");
            }
            fd.SetNonBlocking(true);
        }
        switch (which)
        {
            case VhostUserRequest.SetVringKick:
                if (fd is null) return Refuse(msg, $"ring {index}: polling mode (kick without an fd) is not supported");
                _kickWatches[q.Index].Dispose();
                q.Kick?.Dispose();
                q.Kick = fd;
                _kickWatches[q.Index] = Loop.Watch(fd, () => q.Started && q.Enabled ? PollEvents.In : PollEvents.None, _ => OnKick(q));
                StartQueue(q);
                return true;
            case VhostUserRequest.SetVringCall:
                q.Call?.Dispose();
                q.Call = fd;
                return true;
            default:
                q.Err?.Dispose();
                q.Err = fd;
                return true;
        }
    }

    private bool SetVringEnable(ReceivedMessage msg)
    {
        if (!Expect(msg, VringState.Size, 0)) return false;
        var s = VringState.Read(msg.Payload);
        if (!TryGetQueue(msg, s.Index, out var q)) return false;
        if (s.Num > 1) return Refuse(msg, $"ring {s.Index}: enable value {s.Num} is not 0 or 1");
        SetEnabled(q, s.Num == 1);
        return true;
    }

    private void SetEnabled(VirtqueueContext q, bool enabled)
    {
        q.Enabled = enabled;
        // Work may have arrived while the ring was disabled; look at it now.
        if (enabled && q.IsReady) Loop.Post(() => { if (q.IsReady) _device.QueueKicked(q); });
    }

    /// <summary>A ring starts when it gets its kick fd (libvhost-user does the same).</summary>
    private void StartQueue(VirtqueueContext q)
    {
        q.Started = true;
        if (BindQueue(q)) TellDeviceStarted(q);
    }

    /// <summary>
    /// Hands a started, bound ring to the device once per start. A ring kicked before its
    /// memory or addresses arrived is handed over when they do.
    /// </summary>
    private void TellDeviceStarted(VirtqueueContext q)
    {
        if (!q.DeviceStarted)
        {
            q.DeviceStarted = true;
            _device.QueueStarted(q);
        }
        if (q.IsReady) Loop.Post(() => { if (q.IsReady) _device.QueueKicked(q); });
    }

    /// <summary>Translates the ring's front-end addresses in the current memory and binds the queue.</summary>
    /// <remarks>
    /// On a memory change (<paramref name="memoryChange"/>) a ring whose region is gone is only
    /// paused, not failed: QEMU replaces a region with REM_MEM_REG then ADD_MEM_REG, so the rings
    /// come back with the next message and the guest must not see a device error in between.
    /// </remarks>
    private bool BindQueue(VirtqueueContext q, bool memoryChange = false)
    {
        if (q.Addresses is not VringAddress a || q.Queue.Size == 0)
        {
            _log.LogWarning("{Conn}: ring {Index} started before SET_VRING_NUM/SET_VRING_ADDR", ConnectionName, q.Index);
            return false;
        }
        var (dsz, asz, usz) = q.Queue.RingSizes;
        if (!_memory.TryTranslateUserAddress(a.Descriptor, dsz, out var desc) ||
            !_memory.TryTranslateUserAddress(a.Available, asz, out var avail) ||
            !_memory.TryTranslateUserAddress(a.Used, usz, out var used))
        {
            if (memoryChange)
            {
                q.Queue.Unbind();
                _log.LogInformation("{Conn}: ring {Index} paused: its memory is not mapped now (waits for the region to come back)", ConnectionName, q.Index);
                return false;
            }
            _log.LogWarning("{Conn}: ring {Index}: ring addresses (desc 0x{D:x} avail 0x{A:x} used 0x{U:x}) are not inside guest memory ({Map})",
                ConnectionName, q.Index, a.Descriptor, a.Available, a.Used, _memory);
            q.Queue.Fail(QueueError.RingNotInGuestMemory);
            q.SignalError();
            return false;
        }
        // SET_VRING_ADDR checked the front-end addresses; a region whose guest and front-end
        // addresses differ in alignment can still put the rings at misaligned guest addresses.
        if (desc.Value % 16 != 0 || avail.Value % 2 != 0 || used.Value % 4 != 0)
        {
            _log.LogWarning("{Conn}: ring {Index}: ring guest addresses are misaligned (desc {D} avail {A} used {U})",
                ConnectionName, q.Index, desc, avail, used);
            q.Queue.Fail(QueueError.RingNotInGuestMemory);
            q.SignalError();
            return false;
        }
        q.Queue.SetAddresses(desc, avail, used);
        if (!q.Queue.Bind(_memory))
        {
            q.SignalError();
            return false;
        }
        return true;
    }

    private void OnKick(VirtqueueContext q)
    {
        if (q.Kick is null) return;
        EventFd.Drain(q.Kick);
        if (q.IsReady) _device.QueueKicked(q);
        CheckMemoryFaults();
    }

    private long _guardFaultsSeen;

    /// <summary>
    /// A front-end that truncated a guest RAM file under our mapping (the SIGBUS guard turned the
    /// fault into zero pages, in this thread or the compositor's) is broken: log it once and close
    /// the connection. Costs one call into the guard library per event when nothing faulted.
    /// </summary>
    private void CheckMemoryFaults()
    {
        long total = SigbusGuard.TotalFaults;
        if (total == _guardFaultsSeen) return;
        _guardFaultsSeen = total;
        var faulted = _memory.Regions.FirstOrDefault(r => r.Block.Faulted);
        if (faulted is null) return;
        _log.LogError("{Conn}: memory region {Region}: the front-end truncated its file under our mapping (an access past the end faulted and now reads zeros); closing the connection",
            ConnectionName, faulted);
        Loop.Stop();
    }

    private bool SetBackendReqFd(ReceivedMessage msg)
    {
        if (!Expect(msg, 0, 1)) return false;
        if ((_protocol & VhostUserProtocolFeatures.BackendReq) == 0)
            return Refuse(msg, "BACKEND_REQ was not negotiated");
        var fd = msg.Fds.Take(0);
        BackendChannel channel;
        try
        {
            channel = new BackendChannel(fd, (_protocol & VhostUserProtocolFeatures.ReplyAck) != 0);
        }
        catch (IOException e)
        {
            // Not a socket (setsockopt fails): refuse it and keep the channel we had.
            fd.Dispose();
            return Refuse(msg, $"the fd is not a usable socket: {e.Message}");
        }
        // Asynchronous from now on: SHMEM_MAP/UNMAP replies arrive on the loop while the main
        // socket and the rings keep being served.
        channel.ReplyTimeout = BackendReplyTimeout;
        channel.Attach(Loop, _log, ConnectionName);
        channel.Closed += OnBackendChannelClosed;
        var old = _backendChannel;
        _backendChannel = channel;
        old?.Dispose(); // its pending requests fail
        _device.BackendChannelChanged(channel);
        return true;
    }

    /// <summary>The back-end channel failed by itself (error, EOF, protocol violation): drop it, the connection goes on.</summary>
    private void OnBackendChannelClosed(BackendChannel channel)
    {
        if (_backendChannel != channel) return;
        _backendChannel = null;
        channel.Dispose();
        _log.LogWarning("{Conn}: continuing without a back-end channel", ConnectionName);
        _device.BackendChannelChanged(null);
    }

    // ---- config space ----

    private bool? GetConfig(ReceivedMessage msg)
    {
        ExpectOrClose(msg, msg.Payload.Length, 0);
        if (msg.Payload.Length < ConfigHeader.Length)
            throw new ProtocolViolationException($"GET_CONFIG: payload {msg.Payload.Length} bytes is shorter than the 12-byte config header");
        var h = ConfigHeader.Read(msg.Payload);
        var reply = new byte[msg.Payload.Length];
        bool ok = h.Size <= ConfigHeader.MaxConfigSize &&
                  msg.Payload.Length == ConfigHeader.Length + h.Size &&
                  _device.ReadConfig(h.Offset, reply.AsSpan(ConfigHeader.Length));
        if (!ok)
        {
            // An empty reply is how a back-end reports failure (QEMU then fails the access).
            _log.LogWarning("{Conn}: refused GET_CONFIG offset {Offset} size {Size} (payload {Len} bytes)", ConnectionName, h.Offset, h.Size, msg.Payload.Length);
            SendReply(msg, ReadOnlySpan<byte>.Empty);
            return null;
        }
        h.Write(reply);
        SendReply(msg, reply);
        return null;
    }

    private bool SetConfig(ReceivedMessage msg)
    {
        if (msg.Fds.Count != 0) return Refuse(msg, $"{msg.Fds.Count} fds attached, expected 0");
        if (msg.Payload.Length < ConfigHeader.Length) return Refuse(msg, $"payload {msg.Payload.Length} bytes is shorter than the config header");
        var h = ConfigHeader.Read(msg.Payload);
        if (h.Size > ConfigHeader.MaxConfigSize || msg.Payload.Length != ConfigHeader.Length + h.Size)
            return Refuse(msg, $"config size {h.Size} does not match the payload ({msg.Payload.Length} bytes)");
        if (h.Flags > 1) return Refuse(msg, $"config flags {h.Flags} (expected 0 = write or 1 = migration)");
        return _device.WriteConfig(h.Offset, msg.Payload.AsSpan(ConfigHeader.Length), h.Flags) || Refuse(msg, $"device refused offset {h.Offset} size {h.Size}");
    }

    private bool? GetShmemConfig(ReceivedMessage msg)
    {
        ExpectOrClose(msg, 0, 0);
        var reply = new byte[ShmemConfig.Size];
        int n = 0;
        foreach (var (id, size) in _device.SharedMemoryRegions)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(reply.AsSpan(8 + 8 * id), size);
            if (size != 0) n++;
        }
        BinaryPrimitives.WriteUInt32LittleEndian(reply, (uint)n);
        SendReply(msg, reply);
        return null;
    }
}
