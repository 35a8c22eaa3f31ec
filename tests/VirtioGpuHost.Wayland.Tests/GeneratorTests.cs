using System.Xml.Linq;
using VirtioGpuHost.Compositor.Wayland.Protocol;
using VirtioGpuHost.Compositor.Wayland.Wire;

namespace VirtioGpuHost.Wayland.Tests;

/// <summary>The generated code against the protocol XML, read here independently of the generator.</summary>
public sealed class GeneratorTests
{
    private static readonly (string Vendored, string Installed)[] Files =
    [
        ("wayland.xml", "/usr/share/wayland/wayland.xml"),
        ("xdg-shell.xml", "/usr/share/wayland-protocols/stable/xdg-shell/xdg-shell.xml"),
        ("viewporter.xml", "/usr/share/wayland-protocols/stable/viewporter/viewporter.xml"),
        ("presentation-time.xml", "/usr/share/wayland-protocols/stable/presentation-time/presentation-time.xml"),
    ];

    private static string Vendored(string name) => Path.Combine(TestPaths.RepoRoot, "Compositor", "VirtioGpuHost.Compositor.Wayland", "protocols", name);

    [Fact]
    public void VendoredXml_EqualsTheInstalledFiles()
    {
        var missing = Files.Where(f => !File.Exists(f.Installed)).Select(f => f.Installed).ToList();
        if (missing.Count > 0) Assert.Skip($"not installed (Debian packages libwayland-dev, wayland-protocols): {string.Join(", ", missing)}");
        foreach (var (v, i) in Files)
            Assert.True(File.ReadAllBytes(Vendored(v)).AsSpan().SequenceEqual(File.ReadAllBytes(i)), $"{v} differs from {i}");
    }

    [Fact]
    public void Descriptors_MatchTheXml_EveryInterfaceMessageAndArgument()
    {
        int interfaces = 0, messages = 0;
        foreach (var (v, _) in Files)
        {
            foreach (var ie in XDocument.Load(Vendored(v)).Root!.Elements("interface"))
            {
                string name = ie.Attribute("name")!.Value;
                var info = WaylandProtocols.All.Single(i => i.Name == name);
                Assert.Equal(uint.Parse(ie.Attribute("version")!.Value), info.Version);
                foreach (var (tag, list) in new[] { ("request", info.Requests), ("event", info.Events) })
                {
                    var xs = ie.Elements(tag).ToList();
                    Assert.Equal(xs.Count, list.Count);
                    for (int op = 0; op < xs.Count; op++)
                    {
                        var m = list[op];
                        Assert.Equal(xs[op].Attribute("name")!.Value, m.Name);
                        Assert.Equal(uint.Parse(xs[op].Attribute("since")?.Value ?? "1"), m.Since);
                        Assert.Equal(xs[op].Attribute("type")?.Value == "destructor", m.IsDestructor);
                        var args = xs[op].Elements("arg").ToList();
                        Assert.Equal(args.Count, m.Args.Count);
                        for (int k = 0; k < args.Count; k++)
                        {
                            Assert.Equal(args[k].Attribute("name")!.Value, m.Args[k].Name);
                            Assert.Equal(args[k].Attribute("type")!.Value.Replace("_", ""), m.Args[k].Kind.ToString().ToLowerInvariant());
                            Assert.Equal(args[k].Attribute("allow-null")?.Value == "true", m.Args[k].Nullable);
                            Assert.Equal(args[k].Attribute("interface")?.Value, m.Args[k].Interface);
                        }
                        messages++;
                    }
                }
                interfaces++;
            }
        }
        Assert.Equal(WaylandProtocols.All.Count, interfaces);
        Assert.True(messages > 150, $"{messages} messages");
    }

    [Fact]
    public void Constants_AreXmlPositions_AndEnumsCarryXmlValues()
    {
        Assert.Equal(6, WlSurface.Requests.Commit);
        Assert.Equal(10, WlSurface.Requests.Offset);
        Assert.Equal(4u, WlSurface.RequestSince.DamageBuffer);
        Assert.Equal(3, XdgToplevel.Events.WmCapabilities);
        Assert.Equal(0x34324258u, (uint)WlShm.Format.Xbgr8888); // fourcc XB24
        Assert.Equal(1u, (uint)WlShm.Format.Xrgb8888);
        Assert.Equal(3u, (uint)XdgSurface.Error.UnconfiguredBuffer);
        Assert.Equal(1u, (uint)WlOutput.Transform._90);
        Assert.Equal("wl_registry", WlRegistry.InterfaceName);
        Assert.True(WaylandProtocols.WlRegistry.Requests[0].Args[1].IsGenericNewId);
        Assert.True(typeof(XdgPositioner.ConstraintAdjustment).IsDefined(typeof(FlagsAttribute), false));
        Assert.Equal(ArgKind.Fd, WaylandProtocols.WlShm.Requests[WlShm.Requests.CreatePool].Args[1].Kind);
    }
}
