using VirtioGpuHost.Compositor.Wayland.Wire;

namespace VirtioGpuHost.Compositor.Wayland.Runtime;

/// <summary>
/// One protocol object of one client. Generated subclasses (Protocol/*.g.cs) add the typed
/// request handlers and event senders; implementations (Protocols/) hold the state.
/// </summary>
public abstract class WaylandResource
{
    /// <summary>A client-created object (<paramref name="id"/> from a new_id argument).</summary>
    protected WaylandResource(WaylandClient client, uint id, uint version)
    {
        Client = client;
        Version = version;
        Id = id == 0 ? client.AllocateServerId() : id;
        client.Register(this);
    }

    public WaylandClient Client { get; }
    public uint Id { get; }
    /// <summary>The version bound (objects created from another inherit its version).</summary>
    public uint Version { get; }
    public abstract InterfaceInfo Interface { get; }
    public bool IsDestroyed { get; internal set; }

    /// <summary>Parses request <paramref name="opcode"/> and calls its handler (generated).</summary>
    protected internal abstract void Dispatch(ushort opcode, ref WireReader reader);

    /// <summary>Runs once when the object goes away: its destructor, a server-side destroy, or the client leaving.</summary>
    protected internal virtual void OnDestroyed() { }

    protected EventWriter BeginEvent(ushort opcode, uint since) => Client.BeginEvent(this, opcode, since);
    protected void EndEvent(EventWriter w) => Client.EndEvent(w);

    /// <summary>A protocol error on this object (throw it from a handler).</summary>
    public WaylandProtocolException ProtocolError(uint code, string message) => new(this, code, message);

    /// <summary>Destroys this object from the server side (wl_callback after done, ...).</summary>
    public void Destroy() => Client.DestroyResource(this);

    public override string ToString() => $"{Interface.Name}@{Id}";
}
