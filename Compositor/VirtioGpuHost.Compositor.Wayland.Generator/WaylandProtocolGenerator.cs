using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Text;
using System.Xml.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Text;

namespace VirtioGpuHost.Compositor.Wayland.Generator;

/// <summary>
/// Turns Wayland protocol XML files into C#. For each interface: a descriptor (name, version,
/// request/event signatures) in WaylandProtocols, and an abstract resource class with opcode
/// constants, nested enums, one abstract handler per request, the typed dispatch that parses
/// a request's arguments from the wire and calls that handler, and one sender per event.
/// Opcodes are positions in the XML, so nothing is numbered by hand.
/// </summary>
[Generator(LanguageNames.CSharp)]
public sealed class WaylandProtocolGenerator : IIncrementalGenerator
{
    private const string Ns = "VirtioGpuHost.Compositor.Wayland";

    public void Initialize(IncrementalGeneratorInitializationContext context)
    {
        var files = context.AdditionalTextsProvider
            .Combine(context.AnalyzerConfigOptionsProvider)
            .Where(p => p.Right.GetOptions(p.Left).TryGetValue("build_metadata.AdditionalFiles.WaylandProtocol", out var v)
                        && string.Equals(v, "true", StringComparison.OrdinalIgnoreCase))
            .Select((p, ct) => (Path: p.Left.Path, Text: p.Left.GetText(ct)?.ToString() ?? ""))
            .Collect();

        context.RegisterSourceOutput(files, (spc, all) =>
        {
            var interfaces = new List<Iface>();
            foreach (var f in all.OrderBy(f => f.Path, StringComparer.Ordinal))
            {
                interfaces.AddRange(Parse(f.Text));
            }
            var known = new HashSet<string>(interfaces.Select(i => i.Name));
            foreach (var i in interfaces)
                spc.AddSource(Pascal(i.Name) + ".g.cs", SourceText.From(EmitInterface(i, known), Encoding.UTF8));
            spc.AddSource("WaylandProtocols.g.cs", SourceText.From(EmitRegistry(interfaces), Encoding.UTF8));
        });
    }

    // ---- model ----

    private sealed class Iface
    {
        public string Name = "";
        public uint Version;
        public string Summary = "";
        public List<Msg> Requests = new();
        public List<Msg> Events = new();
        public List<EnumDef> Enums = new();
    }

    private sealed class Msg
    {
        public string Name = "";
        public uint Since = 1;
        public bool Destructor;
        public string Summary = "";
        public List<Arg> Args = new();
    }

    private sealed class Arg
    {
        public string Name = "";
        public string Type = "";
        public string? Interface;
        public bool Nullable;
    }

    private sealed class EnumDef
    {
        public string Name = "";
        public bool Bitfield;
        public List<(string Name, string Value, string Summary)> Entries = new();
    }

    private static IEnumerable<Iface> Parse(string text)
    {
        var doc = XDocument.Parse(text);
        foreach (var ie in doc.Root!.Elements("interface"))
        {
            var i = new Iface
            {
                Name = (string)ie.Attribute("name")!,
                Version = uint.Parse((string)ie.Attribute("version")!, CultureInfo.InvariantCulture),
                Summary = Summary(ie),
            };
            foreach (var me in ie.Elements())
            {
                if (me.Name == "request" || me.Name == "event")
                {
                    var m = new Msg
                    {
                        Name = (string)me.Attribute("name")!,
                        Since = me.Attribute("since") is { } s ? uint.Parse(s.Value, CultureInfo.InvariantCulture) : 1,
                        Destructor = (string?)me.Attribute("type") == "destructor",
                        Summary = Summary(me),
                    };
                    foreach (var ae in me.Elements("arg"))
                    {
                        m.Args.Add(new Arg
                        {
                            Name = (string)ae.Attribute("name")!,
                            Type = (string)ae.Attribute("type")!,
                            Interface = (string?)ae.Attribute("interface"),
                            Nullable = (string?)ae.Attribute("allow-null") == "true",
                        });
                    }
                    (me.Name == "request" ? i.Requests : i.Events).Add(m);
                }
                else if (me.Name == "enum")
                {
                    var e = new EnumDef { Name = (string)me.Attribute("name")!, Bitfield = (string?)me.Attribute("bitfield") == "true" };
                    foreach (var en in me.Elements("entry"))
                        e.Entries.Add(((string)en.Attribute("name")!, (string)en.Attribute("value")!, (string?)en.Attribute("summary") ?? ""));
                    i.Enums.Add(e);
                }
            }
            yield return i;
        }
    }

    private static string Summary(XElement e) =>
        (string?)e.Element("description")?.Attribute("summary") ?? "";

    // ---- emit ----

    private static string EmitInterface(Iface i, HashSet<string> known)
    {
        var cls = Pascal(i.Name);
        var sb = new StringBuilder();
        sb.AppendLine("// <auto-generated>from the Wayland protocol XML by WaylandProtocolGenerator</auto-generated>");
        sb.AppendLine("#nullable enable");
        sb.AppendLine($"namespace {Ns}.Protocol;");
        sb.AppendLine();
        sb.AppendLine($"/// <summary>{i.Name} v{i.Version}: {Xml(i.Summary)}</summary>");
        sb.AppendLine($"public abstract partial class {cls} : global::{Ns}.Runtime.WaylandResource");
        sb.AppendLine("{");
        sb.AppendLine($"    public const string InterfaceName = \"{i.Name}\";");
        sb.AppendLine($"    public const uint MaxVersion = {i.Version};");
        sb.AppendLine($"    public static global::{Ns}.Wire.InterfaceInfo Info => WaylandProtocols.{cls};");
        sb.AppendLine($"    protected {cls}(global::{Ns}.Runtime.WaylandClient client, uint id, uint version) : base(client, id, version) {{ }}");
        sb.AppendLine($"    public sealed override global::{Ns}.Wire.InterfaceInfo Interface => Info;");
        sb.AppendLine();
        EmitConstants(sb, "Requests", "RequestSince", i.Requests);
        EmitConstants(sb, "Events", "EventSince", i.Events);

        foreach (var e in i.Enums)
        {
            if (e.Bitfield) sb.AppendLine("    [global::System.Flags]");
            sb.AppendLine($"    public enum {Pascal(e.Name)} : uint");
            sb.AppendLine("    {");
            foreach (var (name, value, summary) in e.Entries)
            {
                if (summary.Length > 0) sb.AppendLine($"        /// <summary>{Xml(summary)}</summary>");
                sb.AppendLine($"        {EnumMember(name)} = {value},");
            }
            sb.AppendLine("    }");
            sb.AppendLine();
        }

        // Handlers.
        foreach (var m in i.Requests)
        {
            var ps = string.Join(", ", m.Args.SelectMany(a => HandlerParams(a, known)));
            sb.AppendLine($"    /// <summary>{Xml(m.Summary)}{(m.Destructor ? " (destructor: the object is destroyed after this returns)" : "")}</summary>");
            if (m.Destructor && m.Args.Count == 0)
                sb.AppendLine($"    protected virtual void On{Pascal(m.Name)}() {{ }}");
            else
                sb.AppendLine($"    protected abstract void On{Pascal(m.Name)}({ps});");
        }
        sb.AppendLine();

        // Dispatch.
        sb.AppendLine($"    protected internal sealed override void Dispatch(ushort opcode, ref global::{Ns}.Wire.WireReader reader)");
        sb.AppendLine("    {");
        sb.AppendLine("        switch (opcode)");
        sb.AppendLine("        {");
        for (int op = 0; op < i.Requests.Count; op++)
        {
            var m = i.Requests[op];
            sb.AppendLine($"            case {op}:");
            sb.AppendLine("            {");
            var callArgs = new List<string>();
            foreach (var a in m.Args)
            {
                var v = "a_" + a.Name;
                switch (a.Type)
                {
                    case "int": sb.AppendLine($"                int {v} = reader.ReadInt();"); callArgs.Add(v); break;
                    case "uint": sb.AppendLine($"                uint {v} = reader.ReadUInt();"); callArgs.Add(v); break;
                    case "fixed": sb.AppendLine($"                var {v} = reader.ReadFixed();"); callArgs.Add(v); break;
                    case "string":
                        sb.AppendLine($"                string{(a.Nullable ? "?" : "")} {v} = reader.ReadString{(a.Nullable ? "Nullable" : "")}(\"{a.Name}\");"); callArgs.Add(v); break;
                    case "array": sb.AppendLine($"                var {v} = reader.ReadArray(\"{a.Name}\");"); callArgs.Add(v); break;
                    case "fd": sb.AppendLine($"                var {v} = reader.ReadFd(\"{a.Name}\");"); callArgs.Add(v); break;
                    case "object":
                        {
                            var t = ObjType(a, known);
                            sb.AppendLine($"                var {v} = reader.ReadObject{(a.Nullable ? "Nullable" : "")}<{t}>(\"{a.Name}\");");
                            callArgs.Add(v);
                            break;
                        }
                    case "new_id":
                        if (a.Interface is null)
                        {
                            sb.AppendLine($"                string {v}_interface = reader.ReadString(\"{a.Name}.interface\");");
                            sb.AppendLine($"                uint {v}_version = reader.ReadUInt();");
                            sb.AppendLine($"                uint {v} = reader.ReadNewId(\"{a.Name}\");");
                            callArgs.Add(v + "_interface"); callArgs.Add(v + "_version"); callArgs.Add(v);
                        }
                        else
                        {
                            sb.AppendLine($"                uint {v} = reader.ReadNewId(\"{a.Name}\");");
                            callArgs.Add(v);
                        }
                        break;
                    default: throw new InvalidOperationException($"unknown arg type {a.Type} in {i.Name}.{m.Name}");
                }
            }
            sb.AppendLine("                reader.ExpectEnd();");
            sb.AppendLine($"                On{Pascal(m.Name)}({string.Join(", ", callArgs)});");
            if (m.Destructor) sb.AppendLine("                Client.DestroyResource(this);");
            sb.AppendLine("                break;");
            sb.AppendLine("            }");
        }
        sb.AppendLine($"            default: throw new global::System.ArgumentOutOfRangeException(nameof(opcode));");
        sb.AppendLine("        }");
        sb.AppendLine("    }");
        sb.AppendLine();

        // Event senders.
        for (int op = 0; op < i.Events.Count; op++)
        {
            var m = i.Events[op];
            var ps = new List<string>();
            foreach (var a in m.Args)
            {
                ps.Add(a.Type switch
                {
                    "int" => "int ",
                    "uint" => "uint ",
                    "fixed" => $"global::{Ns}.Wire.WlFixed ",
                    "string" => a.Nullable ? "string? " : "string ",
                    "array" => "global::System.ReadOnlySpan<byte> ",
                    "fd" => "global::VirtioGpuHost.Interop.FdHandle ",
                    "object" => $"global::{Ns}.Runtime.WaylandResource{(a.Nullable ? "?" : "")} ",
                    "new_id" => $"global::{Ns}.Runtime.WaylandResource ",
                    _ => throw new InvalidOperationException(a.Type),
                } + "@" + a.Name);
            }
            sb.AppendLine($"    /// <summary>{Xml(m.Summary)} (event {op}, since v{m.Since}{(m.Args.Any(a => a.Type == "fd") ? "; takes ownership of the fd" : "")})</summary>");
            sb.AppendLine($"    public void Send{Pascal(m.Name)}({string.Join(", ", ps)})");
            sb.AppendLine("    {");
            sb.AppendLine($"        var w = BeginEvent({op}, {m.Since});");
            foreach (var a in m.Args)
            {
                var n = "@" + a.Name;
                sb.AppendLine(a.Type switch
                {
                    "int" => $"        w.WriteInt({n});",
                    "uint" => $"        w.WriteUInt({n});",
                    "fixed" => $"        w.WriteFixed({n});",
                    "string" => $"        w.WriteString({n});",
                    "array" => $"        w.WriteArray({n});",
                    "fd" => $"        w.WriteFd({n});",
                    "object" => $"        w.WriteObject({n});",
                    "new_id" => $"        w.WriteObject({n});",
                    _ => throw new InvalidOperationException(a.Type),
                });
            }
            sb.AppendLine("        EndEvent(w);");
            sb.AppendLine("    }");
        }
        sb.AppendLine("}");
        return sb.ToString();
    }

    private static void EmitConstants(StringBuilder sb, string opClass, string sinceClass, List<Msg> msgs)
    {
        sb.AppendLine($"    public static class {opClass}");
        sb.AppendLine("    {");
        for (int op = 0; op < msgs.Count; op++) sb.AppendLine($"        public const ushort {Pascal(msgs[op].Name)} = {op};");
        sb.AppendLine("    }");
        sb.AppendLine($"    public static class {sinceClass}");
        sb.AppendLine("    {");
        foreach (var m in msgs) sb.AppendLine($"        public const uint {Pascal(m.Name)} = {m.Since};");
        sb.AppendLine("    }");
        sb.AppendLine();
    }

    private static IEnumerable<string> HandlerParams(Arg a, HashSet<string> known)
    {
        var n = "@" + a.Name;
        switch (a.Type)
        {
            case "int": yield return "int " + n; break;
            case "uint": yield return "uint " + n; break;
            case "fixed": yield return $"global::{Ns}.Wire.WlFixed " + n; break;
            case "string": yield return (a.Nullable ? "string? " : "string ") + n; break;
            case "array": yield return "global::System.ReadOnlySpan<byte> " + n; break;
            case "fd": yield return "global::VirtioGpuHost.Interop.FdHandle " + n; break;
            case "object": yield return ObjType(a, known) + (a.Nullable ? "? " : " ") + n; break;
            case "new_id":
                if (a.Interface is null)
                {
                    yield return "string " + n + "Interface";
                    yield return "uint " + n + "Version";
                }
                yield return "uint " + n;
                break;
            default: throw new InvalidOperationException(a.Type);
        }
    }

    private static string ObjType(Arg a, HashSet<string> known) =>
        a.Interface is not null && known.Contains(a.Interface) ? Pascal(a.Interface) : $"global::{Ns}.Runtime.WaylandResource";

    private static string EmitRegistry(List<Iface> interfaces)
    {
        var sb = new StringBuilder();
        sb.AppendLine("// <auto-generated>from the Wayland protocol XML by WaylandProtocolGenerator</auto-generated>");
        sb.AppendLine("#nullable enable");
        sb.AppendLine($"namespace {Ns}.Protocol;");
        sb.AppendLine($"using global::{Ns}.Wire;");
        sb.AppendLine();
        sb.AppendLine("/// <summary>Descriptors of every interface in the protocol files the library was built from.</summary>");
        sb.AppendLine("public static class WaylandProtocols");
        sb.AppendLine("{");
        foreach (var i in interfaces)
        {
            sb.AppendLine($"    public static readonly InterfaceInfo {Pascal(i.Name)} = new(\"{i.Name}\", {i.Version},");
            sb.AppendLine($"        new MessageInfo[] {{ {string.Join(", ", i.Requests.Select(MsgInfo))} }},");
            sb.AppendLine($"        new MessageInfo[] {{ {string.Join(", ", i.Events.Select(MsgInfo))} }});");
        }
        sb.AppendLine();
        sb.AppendLine($"    public static readonly global::System.Collections.Generic.IReadOnlyList<InterfaceInfo> All = new InterfaceInfo[] {{ {string.Join(", ", interfaces.Select(i => Pascal(i.Name)))} }};");
        sb.AppendLine("}");
        return sb.ToString();
    }

    private static string MsgInfo(Msg m) =>
        $"new(\"{m.Name}\", {m.Since}, {(m.Destructor ? "true" : "false")}, new ArgInfo[] {{ {string.Join(", ", m.Args.Select(ArgInfoOf))} }})";

    private static string ArgInfoOf(Arg a)
    {
        var kind = a.Type switch
        {
            "int" => "Int", "uint" => "UInt", "fixed" => "Fixed", "string" => "String",
            "object" => "Object", "new_id" => "NewId", "array" => "Array", "fd" => "Fd",
            _ => throw new InvalidOperationException(a.Type),
        };
        var iface = a.Interface is null ? "null" : $"\"{a.Interface}\"";
        return $"new(\"{a.Name}\", ArgKind.{kind}, {(a.Nullable ? "true" : "false")}, {iface})";
    }

    private static string Pascal(string snake)
    {
        var sb = new StringBuilder();
        foreach (var part in snake.Split('_'))
        {
            if (part.Length == 0) continue;
            sb.Append(char.ToUpperInvariant(part[0])).Append(part.Substring(1));
        }
        return sb.ToString();
    }

    private static string EnumMember(string name)
    {
        var p = Pascal(name);
        return char.IsDigit(p[0]) ? "_" + p : p;
    }

    private static string Xml(string s) =>
        s.Replace("&", "&amp;").Replace("<", "&lt;").Replace(">", "&gt;").Replace("\n", " ");
}
