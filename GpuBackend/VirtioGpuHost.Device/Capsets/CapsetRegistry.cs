namespace VirtioGpuHost.Device.Capsets;

/// <summary>
/// The capsets a device reports, in GET_CAPSET_INFO index order (num_capsets = their count).
/// Ids are unique. Built from <see cref="GpuDeviceOptions"/>: none without blob support, the
/// configured list, or by default cross-domain without a context implementation.
/// </summary>
public sealed class CapsetRegistry
{
    private readonly ICapset[] _capsets;

    public CapsetRegistry(IEnumerable<ICapset> capsets)
    {
        _capsets = capsets.ToArray();
        var dup = _capsets.GroupBy(c => c.Id).FirstOrDefault(g => g.Count() > 1);
        if (dup is not null) throw new ArgumentException($"capset {dup.Key} is registered twice");
        if (_capsets.Any(c => c.Id is 0 or > 0xFF)) throw new ArgumentException("capset ids must be 1..255 (context_init holds 8 bits)");
    }

    public static CapsetRegistry For(GpuDeviceOptions options) =>
        !options.Blob ? new CapsetRegistry([]) : new CapsetRegistry(options.Capsets ?? [new CrossDomainCapset()]);

    public int Count => _capsets.Length;

    /// <summary>GET_CAPSET_INFO's capset_index → capset.</summary>
    public ICapset? ByIndex(uint index) => index < (uint)_capsets.Length ? _capsets[index] : null;

    public ICapset? ById(uint id) => Array.Find(_capsets, c => c.Id == id);
}
