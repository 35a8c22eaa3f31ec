using System.Runtime.InteropServices;

namespace VirtioGpuHost.Interop;

/// <summary>
/// Keeps a mapping of a file that another process may truncate (guest RAM from a VMM, an fd from
/// a Wayland client) from killing us with SIGBUS. The handler lives in a thin native library
/// (Native/sigbus_guard.c, libvgh_sigbus.so, built with the project when a C compiler is present):
/// on SIGBUS inside a registered mapping it replaces the whole mapping by anonymous zero pages and
/// returns, so the access that faulted is retried and reads zeros; <see cref="Registration.Faults"/>
/// then tells the owner. SIGBUS elsewhere goes to the previously installed handler (the runtime's).
/// </summary>
public static partial class SigbusGuard
{
    private const string Library = "vgh_sigbus";
    private static readonly Lazy<string?> s_unavailable = new(Install);

    /// <summary>True when the native handler is installed (the library loaded and sigaction succeeded).</summary>
    public static bool IsAvailable => s_unavailable.Value is null;

    /// <summary>Why the guard is not available (null when it is).</summary>
    public static string? UnavailableReason => s_unavailable.Value;

    /// <summary>Faults turned into zero pages since start, all mappings together.</summary>
    public static long TotalFaults => IsAvailable ? NativeTotalFaults() : 0;

    private static string? Install()
    {
        try
        {
            return NativeInstall() == 0 ? null : $"sigaction(SIGBUS) failed: errno {Marshal.GetLastSystemError()}";
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException or BadImageFormatException)
        {
            return $"lib{Library}.so is not available ({e.GetType().Name}; it is built with the project when gcc is installed)";
        }
    }

    /// <summary>
    /// Guards [<paramref name="start"/>, +<paramref name="length"/>) (a whole mmap); null when the guard is not
    /// available or its table (16384 mappings) is full. Dispose it before munmap.
    /// </summary>
    public static Registration? TryRegister(nint start, ulong length)
    {
        if (!IsAvailable) return null;
        int slot = NativeRegister((nuint)start, (nuint)length);
        return slot < 0 ? null : new Registration(slot);
    }

    public sealed class Registration : IDisposable
    {
        private int _slot;

        internal Registration(int slot) => _slot = slot;

        /// <summary>How often the mapping faulted (after the first, its pages are anonymous zeros, not the file's).</summary>
        public long Faults => Volatile.Read(ref _slot) is var s and >= 0 ? NativeFaults(s) : 0;

        public void Dispose()
        {
            int s = Interlocked.Exchange(ref _slot, -1);
            if (s >= 0) NativeUnregister(s);
        }
    }

    [LibraryImport(Library, EntryPoint = "vgh_sigbus_install", SetLastError = true)]
    private static partial int NativeInstall();

    [LibraryImport(Library, EntryPoint = "vgh_sigbus_register")]
    private static partial int NativeRegister(nuint start, nuint length);

    [LibraryImport(Library, EntryPoint = "vgh_sigbus_unregister")]
    private static partial void NativeUnregister(int slot);

    [LibraryImport(Library, EntryPoint = "vgh_sigbus_faults")]
    private static partial nint NativeFaults(int slot);

    [LibraryImport(Library, EntryPoint = "vgh_sigbus_total_faults")]
    private static partial nint NativeTotalFaults();
}
