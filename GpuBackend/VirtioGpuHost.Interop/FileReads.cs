using Tmds.Linux;
using static Tmds.Linux.LibC;

namespace VirtioGpuHost.Interop;

/// <summary>
/// Reading another process's shared-memory file without mapping it: pread(2) never raises
/// SIGBUS when the owner truncates the file (it returns fewer bytes instead), so memory a
/// client may shrink at any time (wl_shm pools) can be copied safely. Also file seals, which
/// tell whether mapping is safe after all (F_SEAL_SHRINK).
/// </summary>
public static unsafe class FileReads
{
    /// <summary>pread(2) until <paramref name="buffer"/> is full or the file ends; returns the bytes read.</summary>
    public static int ReadAt(FdHandle fd, Span<byte> buffer, ulong offset)
    {
        using var r = new UnixSocket.HandleRef(fd);
        int total = 0;
        fixed (byte* p = buffer)
        {
            while (total < buffer.Length)
            {
                long rc;
                do { rc = pread(fd.Number, p + total, (size_t)(ulong)(buffer.Length - total), (off_t)(long)(offset + (ulong)total)); } while (rc < 0 && errno == EINTR);
                if (rc < 0) throw Errno.Fail("pread");
                if (rc == 0) break; // end of file: the owner truncated it
                total += (int)rc;
            }
        }
        return total;
    }

    /// <summary>True when the file can no longer shrink (a memfd with F_SEAL_SHRINK): a mapping of it cannot fault.</summary>
    public static bool IsShrinkSealed(FdHandle fd)
    {
        using var r = new UnixSocket.HandleRef(fd);
        int seals = fcntl(fd.Number, F_GET_SEALS);
        return seals >= 0 && (seals & F_SEAL_SHRINK) != 0;
    }
}
