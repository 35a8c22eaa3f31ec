using System.Text;
using Tmds.Linux;
using static Tmds.Linux.LibC;

namespace VirtioGpuHost.Interop;

/// <summary>memfd_create(2): anonymous shareable memory that can travel as an fd.</summary>
public static unsafe class MemFd
{
    /// <param name="allowSealing">MFD_ALLOW_SEALING (off only in tests that need a file nobody can seal).</param>
    public static FdHandle Create(string name, ulong size, bool allowSealing = true)
    {
        var bytes = Encoding.UTF8.GetBytes(name + "\0");
        int fd;
        fixed (byte* p = bytes) fd = memfd_create(p, MFD_CLOEXEC | (allowSealing ? MFD_ALLOW_SEALING : 0));
        if (fd < 0) throw Errno.Fail("memfd_create");
        var handle = new FdHandle(fd);
        if (ftruncate(fd, (off_t)(long)size) < 0)
        {
            var e = Errno.Fail("ftruncate");
            handle.Dispose();
            throw e;
        }
        return handle;
    }

    /// <summary>The size of the file behind <paramref name="fd"/> (fstat st_size).</summary>
    public static ulong GetSize(FdHandle fd)
    {
        bool added = false;
        try
        {
            fd.DangerousAddRef(ref added);
            stat st;
            if (fstat(fd.Number, &st) < 0) throw Errno.Fail("fstat");
            return (ulong)(long)st.st_size;
        }
        finally { if (added) fd.DangerousRelease(); }
    }

    /// <summary>
    /// Makes sure the file behind <paramref name="fd"/> can never shrink: true when it already has
    /// F_SEAL_SHRINK (QEMU's memory-backend-memfd seals by default) or we could add it (a memfd
    /// created with MFD_ALLOW_SEALING and not F_SEAL_SEAL'ed); false for anything else (a memfd
    /// without sealing, a tmpfs or hugetlbfs file), whose owner may still truncate it.
    /// </summary>
    public static bool TrySealShrink(FdHandle fd)
    {
        bool added = false;
        try
        {
            fd.DangerousAddRef(ref added);
            int seals = fcntl(fd.Number, F_GET_SEALS);
            if (seals < 0) return false;
            return (seals & F_SEAL_SHRINK) != 0 || fcntl(fd.Number, F_ADD_SEALS, F_SEAL_SHRINK) == 0;
        }
        finally { if (added) fd.DangerousRelease(); }
    }

    /// <summary>Forbids shrinking and growing (F_SEAL_SHRINK|F_SEAL_GROW) where the memfd allows sealing.</summary>
    public static bool TrySealSize(FdHandle fd)
    {
        bool added = false;
        try
        {
            fd.DangerousAddRef(ref added);
            return fcntl(fd.Number, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) == 0;
        }
        finally { if (added) fd.DangerousRelease(); }
    }
}
