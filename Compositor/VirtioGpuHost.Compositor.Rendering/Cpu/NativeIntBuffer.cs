using System.Runtime.InteropServices;

namespace VirtioGpuHost.Compositor.Rendering.Cpu;

/// <summary>A growable native int array (the per-call source-x tables), reused across frames.</summary>
internal sealed unsafe class NativeIntBuffer : IDisposable
{
    private int* _items;
    private int _capacity;

    public int* Pointer => _items;

    /// <summary>Makes room for <paramref name="count"/> ints; earlier contents are kept.</summary>
    public void EnsureCapacity(int count)
    {
        if (count <= _capacity) return;
        int next = Math.Max(count, Math.Max(1024, _capacity * 2));
        _items = (int*)NativeMemory.Realloc(_items, (nuint)next * sizeof(int));
        _capacity = next;
    }

    public void Dispose()
    {
        NativeMemory.Free(_items);
        _items = null;
        _capacity = 0;
    }
}
