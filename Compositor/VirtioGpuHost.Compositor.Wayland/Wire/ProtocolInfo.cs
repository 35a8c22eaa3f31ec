namespace VirtioGpuHost.Compositor.Wayland.Wire;

/// <summary>Wire types of message arguments (wayland.dtd's arg types).</summary>
public enum ArgKind
{
    Int,
    UInt,
    /// <summary>24.8 signed fixed point.</summary>
    Fixed,
    String,
    Object,
    NewId,
    Array,
    /// <summary>File descriptor, passed out of band (SCM_RIGHTS).</summary>
    Fd,
}

/// <summary>One argument of a request or event.</summary>
public sealed record ArgInfo(string Name, ArgKind Kind, bool Nullable, string? Interface)
{
    /// <summary>new_id without an interface (wl_registry.bind): interface string, version and id on the wire.</summary>
    public bool IsGenericNewId => Kind == ArgKind.NewId && Interface is null;
}

/// <summary>One request or event: its name, the version that introduced it, its arguments.</summary>
public sealed record MessageInfo(string Name, uint Since, bool IsDestructor, IReadOnlyList<ArgInfo> Args)
{
    public bool HasFds => Args.Any(a => a.Kind == ArgKind.Fd);
}

/// <summary>A protocol interface as the XML defines it; opcodes are indexes into Requests/Events.</summary>
public sealed record InterfaceInfo(string Name, uint Version, IReadOnlyList<MessageInfo> Requests, IReadOnlyList<MessageInfo> Events);

/// <summary>wl_fixed_t: a signed 24.8 fixed-point number, kept as its raw 32-bit value.</summary>
public readonly record struct WlFixed(int Raw)
{
    public double ToDouble() => Raw / 256.0;
    public int ToInt() => Raw / 256;
    public static WlFixed FromDouble(double d) => new((int)Math.Round(d * 256.0));
    public static WlFixed FromInt(int i) => new(i * 256);
    public override string ToString() => ToDouble().ToString(System.Globalization.CultureInfo.InvariantCulture);
}
