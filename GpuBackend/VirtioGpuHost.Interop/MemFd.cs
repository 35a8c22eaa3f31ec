using System.Text;
using Tmds.Linux;
using static Tmds.Linux.LibC;

namespace VirtioGpuHost.Interop;

/// <summary>memfd_create(2): anonymous shareable memory that can travel as an fd.</summary>
public static unsafe class MemFd
{
    public static FdHandle Create(string name, ulong size)
    {
        var bytes = Encoding.UTF8.GetBytes(name + "\0");
        int fd;
        fixed (byte* p = bytes) fd = memfd_create(p, MFD_CLOEXEC | MFD_ALLOW_SEALING);
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
