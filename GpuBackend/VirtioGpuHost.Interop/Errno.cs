using Tmds.Linux;

namespace VirtioGpuHost.Interop;

/// <summary>errno values the layers above need to tell apart, and readable descriptions.</summary>
public static class Errno
{
    public static int EAGAIN => LibC.EAGAIN;
    public static int EINTR => LibC.EINTR;
    public static int EPIPE => LibC.EPIPE;
    public static int ECONNRESET => LibC.ECONNRESET;
    public static int EBADF => LibC.EBADF;
    public static int ENOMEM => LibC.ENOMEM;
    public static int EINVAL => LibC.EINVAL;

    /// <summary>errno of the last Tmds.LibC call on this thread.</summary>
    public static int Last => LibC.errno;

    public static string Describe(int errno) =>
        $"errno {errno} ({new System.ComponentModel.Win32Exception(errno).Message})";

    internal static SyscallException Fail(string call) => new(call, LibC.errno);
}
