using System.Runtime.InteropServices;
using Tmds.Linux;

namespace VirtioGpuHost.Interop;

/// <summary>
/// Owns one file descriptor and closes it exactly once. Layers above never see raw fd
/// numbers except through <see cref="Number"/> for logging and for passing to Interop calls.
/// </summary>
public sealed class FdHandle : SafeHandle
{
    public FdHandle(int fd, bool ownsHandle = true) : base(new IntPtr(-1), ownsHandle)
    {
        SetHandle(new IntPtr(fd));
    }

    public override bool IsInvalid => handle.ToInt64() < 0;

    /// <summary>The fd number (for logs and for the Interop layer).</summary>
    public int Number => (int)handle.ToInt64();

    protected override bool ReleaseHandle() => LibC.close((int)handle.ToInt64()) == 0;

    /// <summary>A new handle with its own fd (F_DUPFD_CLOEXEC), independent of this one.</summary>
    public FdHandle Duplicate()
    {
        bool added = false;
        try
        {
            DangerousAddRef(ref added);
            int fd = LibC.fcntl(Number, LibC.F_DUPFD_CLOEXEC, 0);
            if (fd < 0) throw Errno.Fail("fcntl(F_DUPFD_CLOEXEC)");
            return new FdHandle(fd);
        }
        finally
        {
            if (added) DangerousRelease();
        }
    }

    /// <summary>Switches O_NONBLOCK on or off.</summary>
    public void SetNonBlocking(bool nonBlocking)
    {
        bool added = false;
        try
        {
            DangerousAddRef(ref added); // a closed handle's number may already belong to another file
            int flags = LibC.fcntl(Number, LibC.F_GETFL);
            if (flags < 0) throw Errno.Fail("fcntl(F_GETFL)");
            flags = nonBlocking ? flags | LibC.O_NONBLOCK : flags & ~LibC.O_NONBLOCK;
            if (LibC.fcntl(Number, LibC.F_SETFL, flags) < 0) throw Errno.Fail("fcntl(F_SETFL)");
        }
        finally
        {
            if (added) DangerousRelease();
        }
    }

    /// <summary>Takes over an inherited fd (for example QEMU's `--fd N`), checking it is open.</summary>
    public static FdHandle Adopt(int fd)
    {
        if (fd < 0 || LibC.fcntl(fd, LibC.F_GETFD) < 0)
            throw new ArgumentException($"fd {fd} is not an open file descriptor", nameof(fd));
        _ = LibC.fcntl(fd, LibC.F_SETFD, LibC.FD_CLOEXEC);
        return new FdHandle(fd);
    }

    public override string ToString() => IsClosed ? "fd(closed)" : $"fd {Number}";
}
