using Microsoft.Extensions.Logging;
using VirtioGpuHost.Compositor.Wayland.Protocol;
using VirtioGpuHost.Compositor.Wayland.Runtime;
using VirtioGpuHost.Interop;

namespace VirtioGpuHost.Compositor.Wayland.Protocols;

/// <summary>wl_shm: pools from client fds; argb8888 and xrgb8888.</summary>
internal sealed class ShmResource(WaylandClient client, uint id, uint version) : WlShm(client, id, version)
{
    public void Announce()
    {
        SendFormat((uint)Format.Argb8888);
        SendFormat((uint)Format.Xrgb8888);
    }

    protected override void OnCreatePool(uint id, FdHandle fd, int size)
    {
        using (fd) // the pool takes its own duplicate; the received fd is closed on every path
        {
            if (size <= 0) throw ProtocolError((uint)Error.InvalidStride, $"invalid size ({size})");
            var limits = Client.Server.Options;
            if (Client.PoolBytes + size > limits.MaxPoolBytesPerClient)
                throw Client.DisplayObject.ProtocolError((uint)WlDisplay.Error.NoMemory, $"wl_shm pools over {limits.MaxPoolBytesPerClient} bytes");
            ShmPool pool;
            try { pool = ShmPool.Open(fd.Duplicate(), size); }
            catch (ShmPoolException e) { throw ProtocolError((uint)Error.InvalidFd, e.Message); }
            catch (IOException e) { throw ProtocolError((uint)Error.InvalidFd, $"cannot use the pool fd: {e.Message}"); }
            try { _ = new ShmPoolResource(Client, id, Version, pool); }
            catch { pool.Release(); throw; }
            Client.PoolBytes += size;
        }
    }
}

internal sealed class ShmPoolException(string message) : Exception(message);

/// <summary>
/// A client's pool file. SIGBUS-proof: the file must be at least the pool size when the pool
/// is created or grown (fstat). A file sealed against shrinking (F_SEAL_SHRINK: weston's
/// clients, Mesa) is mapped read-only and copied from memory; any other file is read with
/// pread(2), which returns short instead of faulting if the client truncates it later. The
/// pool lives until its last buffer is gone (reference counted).
/// </summary>
internal sealed class ShmPool
{
    private readonly FdHandle _fd;
    private MappedMemory? _map;
    private int _refs = 1;

    private ShmPool(FdHandle fd, long size, MappedMemory? map)
    {
        _fd = fd;
        Size = size;
        _map = map;
    }

    public long Size { get; private set; }
    public bool Mapped => _map is not null;

    public static ShmPool Open(FdHandle fd, long size)
    {
        try
        {
            var kind = FdFiles.KindOf(fd);
            if (kind != FdKind.RegularFile) throw new ShmPoolException($"the pool fd is not a shared-memory file ({kind})");
            ulong fileSize = FdFiles.SizeOf(fd);
            if ((ulong)size > fileSize) throw new ShmPoolException($"pool size {size} is larger than the file ({fileSize} bytes)");
            var map = FileReads.IsShrinkSealed(fd) ? MappedMemory.Map(fd, 0, (ulong)size, writable: false) : null;
            return new ShmPool(fd, size, map);
        }
        catch
        {
            fd.Dispose();
            throw;
        }
    }

    public void Resize(long size)
    {
        if (size < Size) throw new ShmPoolException($"shrinking pool invalid ({Size} -> {size})");
        ulong fileSize = FdFiles.SizeOf(_fd);
        if ((ulong)size > fileSize) throw new ShmPoolException($"pool size {size} is larger than the file ({fileSize} bytes)");
        if (_map is not null && size != Size)
        {
            var map = MappedMemory.Map(_fd, 0, (ulong)size, writable: false);
            _map.Dispose();
            _map = map;
        }
        Size = size;
    }

    public void AddRef() => _refs++;

    public void Release()
    {
        if (--_refs > 0) return;
        _map?.Dispose();
        _map = null;
        _fd.Dispose();
    }

    /// <summary>Copies <paramref name="dst"/>.Length bytes at <paramref name="offset"/>; false if the file shrank under us.</summary>
    public unsafe bool Read(long offset, Span<byte> dst)
    {
        if (offset < 0 || offset + dst.Length > Size) return false;
        if (_map is not null)
        {
            new ReadOnlySpan<byte>((byte*)_map.Address + offset, dst.Length).CopyTo(dst);
            return true;
        }
        return FileReads.ReadAt(_fd, dst, (ulong)offset) == dst.Length;
    }
}

/// <summary>wl_shm_pool: buffers inside the pool, resize (grow only).</summary>
internal sealed class ShmPoolResource : WlShmPool
{
    private readonly ShmPool _pool;
    private long _charged;

    public ShmPoolResource(WaylandClient client, uint id, uint version, ShmPool pool) : base(client, id, version)
    {
        _pool = pool;
        _charged = pool.Size;
        Client.PoolCount++;
    }

    protected override void OnCreateBuffer(uint id, int offset, int width, int height, int stride, uint format)
    {
        if (format != (uint)WlShm.Format.Argb8888 && format != (uint)WlShm.Format.Xrgb8888)
            throw ProtocolError((uint)WlShm.Error.InvalidFormat, $"invalid format 0x{format:x}");
        if (offset < 0 || width <= 0 || height <= 0 || stride <= 0 || (long)width * 4 > stride)
            throw ProtocolError((uint)WlShm.Error.InvalidStride, $"invalid width {width}, height {height}, stride {stride} or offset {offset}");
        if ((long)offset + (long)stride * height > _pool.Size)
            throw ProtocolError((uint)WlShm.Error.InvalidStride, $"buffer at offset {offset} with stride {stride} x {height} rows does not fit the {_pool.Size}-byte pool");
        if (width > Client.Server.Options.MaxWindowSize || height > Client.Server.Options.MaxWindowSize)
            throw ProtocolError((uint)WlShm.Error.InvalidStride, $"buffer {width}x{height} larger than {Client.Server.Options.MaxWindowSize} pixels");
        _pool.AddRef();
        try { _ = new BufferResource(Client, id, 1, _pool, offset, width, height, stride, format == (uint)WlShm.Format.Xrgb8888); }
        catch { _pool.Release(); throw; }
    }

    protected override void OnResize(int size)
    {
        if (size < _pool.Size) throw ProtocolError((uint)WlShm.Error.InvalidFd, $"shrinking pool invalid ({_pool.Size} -> {size})");
        long growth = size - _charged;
        if (Client.PoolBytes + growth > Client.Server.Options.MaxPoolBytesPerClient)
            throw Client.DisplayObject.ProtocolError((uint)WlDisplay.Error.NoMemory, $"wl_shm pools over {Client.Server.Options.MaxPoolBytesPerClient} bytes");
        try { _pool.Resize(size); }
        catch (ShmPoolException e) { throw ProtocolError((uint)WlShm.Error.InvalidFd, e.Message); }
        catch (IOException e) { throw ProtocolError((uint)WlShm.Error.InvalidFd, $"cannot map the grown pool: {e.Message}"); }
        Client.PoolBytes += growth;
        _charged = size;
    }

    protected internal override void OnDestroyed()
    {
        Client.PoolBytes -= _charged;
        Client.PoolCount--;
        _pool.Release();
    }
}

/// <summary>wl_buffer of a shm pool: where the pixels are; copied at commit, then released.</summary>
internal sealed class BufferResource : WlBuffer
{
    private readonly ShmPool _pool;
    private bool _loggedShort;

    public BufferResource(WaylandClient client, uint id, uint version, ShmPool pool, int offset, int width, int height, int stride, bool opaque)
        : base(client, id, version)
    {
        _pool = pool;
        Offset = offset;
        Width = width;
        Height = height;
        Stride = stride;
        Opaque = opaque;
    }

    public int Offset { get; }
    public int Width { get; }
    public int Height { get; }
    public int Stride { get; }
    /// <summary>xrgb8888: alpha is forced to 0xFF when copied.</summary>
    public bool Opaque { get; }

    /// <summary>
    /// Copies the rows and columns of <paramref name="rect"/> (buffer pixels) into
    /// <paramref name="dst"/> (stride Width*4), converting xrgb to opaque. Returns false when
    /// the client truncated its pool file (the caller posts wl_shm.invalid_fd, like weston).
    /// </summary>
    public bool CopyTo(byte[] dst, IntRect rect)
    {
        rect = rect.Intersect(new IntRect(0, 0, Width, Height));
        if (rect.IsEmpty) return true;
        int dstStride = Width * 4;
        int rowBytes = rect.W * 4;
        for (int y = rect.Y; y < rect.Y + rect.H; y++)
        {
            var row = dst.AsSpan(y * dstStride + rect.X * 4, rowBytes);
            if (!_pool.Read(Offset + (long)y * Stride + rect.X * 4, row))
            {
                if (!_loggedShort) Client.Server.Log.LogWarning("{Client}: {Buffer}: pool file shrank under the buffer", Client, this);
                _loggedShort = true;
                return false;
            }
            if (Opaque) PixelOps.ForceOpaque(row);
        }
        return true;
    }

    protected internal override void OnDestroyed() => _pool.Release();
}
