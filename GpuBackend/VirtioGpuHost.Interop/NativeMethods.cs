using System.Runtime.InteropServices;

namespace VirtioGpuHost.Interop;

/// <summary>
/// The few imports Tmds.LibC gets wrong for us: its ppoll/poll are declared without
/// SetLastError, so errno read after them is stale and EINTR (any signal the runtime handles,
/// SIGCHLD, SIGCONT…) looked like a failure. Ours keep errno.
/// </summary>
internal static unsafe partial class NativeMethods
{
    [StructLayout(LayoutKind.Sequential)]
    public struct PollFd
    {
        public int Fd;
        public short Events;
        public short Revents;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct TimeSpec
    {
        public long Seconds;
        public long Nanoseconds;
    }

    [LibraryImport("libc", EntryPoint = "ppoll", SetLastError = true)]
    public static partial int PPoll(PollFd* fds, nuint count, TimeSpec* timeout, void* sigmask);

    public static int LastErrno => Marshal.GetLastSystemError();
}
