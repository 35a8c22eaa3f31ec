using System.Runtime.InteropServices;
using VirtioGpuHost.GuestMemory;

namespace VirtioGpuHost.UnitTests.Memory;

/// <summary>
/// Native memory that counts how often <see cref="MemoryBlock"/> asked to free it. The memory is
/// released on the first Free only, so a refcounting bug shows up as Frees == 2, not as a crash.
/// </summary>
internal sealed unsafe class TrackedBlock : MemoryBlock
{
    private TrackedBlock(nint address, ulong length) : base(address, length) { }

    public int Frees { get; private set; }

    public static TrackedBlock Allocate(ulong length, byte fill = 0)
    {
        void* p = NativeMemory.AlignedAlloc((nuint)length, 4096);
        NativeMemory.Fill(p, (nuint)length, fill);
        return new TrackedBlock((nint)p, length);
    }

    protected override void Free()
    {
        if (++Frees == 1) NativeMemory.AlignedFree((void*)Address);
    }
}
