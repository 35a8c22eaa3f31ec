namespace VirtioGpuHost.GuestMemory;

/// <summary>A guest-physical address (what descriptors and mem_entries carry).</summary>
public readonly record struct GuestAddress(ulong Value)
{
    /// <summary>This address plus <paramref name="offset"/>, or false on 64-bit overflow.</summary>
    public bool TryAdd(ulong offset, out GuestAddress result)
    {
        ulong v = Value + offset;
        result = new GuestAddress(v);
        return v >= Value;
    }

    public override string ToString() => $"0x{Value:x}";
}
