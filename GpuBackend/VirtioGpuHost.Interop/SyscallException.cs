namespace VirtioGpuHost.Interop;

/// <summary>A system call failed; carries the call's name and errno.</summary>
public sealed class SyscallException : IOException
{
    public SyscallException(string call, int errno)
        : base($"{call} failed: {Interop.Errno.Describe(errno)}")
    {
        Call = call;
        Errno = errno;
    }

    public string Call { get; }
    public int Errno { get; }
}
