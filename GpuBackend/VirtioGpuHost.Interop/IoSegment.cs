namespace VirtioGpuHost.Interop;

/// <summary>
/// One piece of native memory to send without copying (an iovec). The memory must stay
/// mapped until the send call returns; callers get these only from mapped objects they hold.
/// </summary>
public readonly record struct IoSegment(nint Address, nint Length);
