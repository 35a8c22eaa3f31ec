using VirtioGpuHost.Compositor.Wayland.Protocol;
using VirtioGpuHost.Compositor.Wayland.Runtime;

namespace VirtioGpuHost.Compositor.Wayland.Protocols;

/// <summary>wl_display (object 1 of every client): sync and the registry.</summary>
internal sealed class DisplayResource(WaylandClient client) : WlDisplay(client, 1, 1)
{
    protected override void OnSync(uint callback)
    {
        var cb = new CallbackResource(Client, callback);
        cb.SendDone(Client.Server.NextSerial());
        cb.Destroy();
    }

    protected override void OnGetRegistry(uint registry)
    {
        var r = new RegistryResource(Client, registry);
        foreach (var g in Client.Server.Globals) r.SendGlobal(g.Name, g.Interface.Name, g.Version);
    }
}

/// <summary>wl_registry: lists the globals and binds them.</summary>
internal sealed class RegistryResource(WaylandClient client, uint id) : WlRegistry(client, id, 1)
{
    protected override void OnBind(uint name, string idInterface, uint idVersion, uint id)
    {
        var g = Client.Server.Globals.FirstOrDefault(x => x.Name == name);
        if (g is null || g.Interface.Name != idInterface)
            throw Client.DisplayObject.ProtocolError((uint)WlDisplay.Error.InvalidObject, $"invalid global {idInterface} ({name})");
        if (idVersion == 0 || idVersion > g.Version)
            throw Client.DisplayObject.ProtocolError((uint)WlDisplay.Error.InvalidObject, $"invalid version for global {idInterface} ({name}): have {g.Version}, wanted {idVersion}");
        g.Bind(Client, id, idVersion);
    }
}

/// <summary>wl_callback: a one-shot done event (sync, frame).</summary>
internal sealed class CallbackResource(WaylandClient client, uint id) : WlCallback(client, id, 1)
{
    /// <summary>Sends done and destroys the callback (unless the client is already gone).</summary>
    public void Complete(uint data)
    {
        if (IsDestroyed) return;
        SendDone(data);
        Destroy();
    }
}

/// <summary>An advertised global: what wl_registry.global announces and how a bind creates its object.</summary>
internal sealed record WaylandGlobal(uint Name, Wire.InterfaceInfo Interface, uint Version, Action<WaylandClient, uint, uint> Bind);
