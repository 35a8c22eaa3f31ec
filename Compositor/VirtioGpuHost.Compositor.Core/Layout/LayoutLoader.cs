using System.Globalization;
using System.Text;
using Tomlyn;
using Tomlyn.Parsing;
using Tomlyn.Syntax;
using VirtioGpuHost.Compositor.Core.Geometry;

namespace VirtioGpuHost.Compositor.Core.Layout;

/// <summary>
/// Reads a layout file (TOML, schema in docs/layout.md) into a validated
/// <see cref="LayoutConfig"/>, or into diagnostics that name the file, the line and the field.
/// Bad input never throws: every problem is a <see cref="LayoutDiagnostic"/>, all of them are
/// reported (not just the first), and a file with any error yields no layout.
/// </summary>
/// <remarks>
/// The file is parsed into Tomlyn's syntax tree (not deserialized into objects) so that every
/// key and value keeps its source line. TOML-level errors (syntax, a key defined twice) stop
/// there; otherwise the tree is checked against the schema (unknown tables and keys, types,
/// required fields, ranges), then the cross-references and the safety rules.
/// </remarks>
public static class LayoutLoader
{
    public const int DefaultLabelHeight = 28, MinLabelHeight = 8, MaxLabelHeight = 256;
    public const int DefaultBorderWidth = 2, MaxBorderWidth = 32;
    public const int MaxOutputSize = 16384;
    public const int DefaultRefreshHz = 60, MaxRefreshHz = 240;
    public const int DefaultFramePeriodMs = 100, MaxFramePeriodMs = 60_000;
    /// <summary>virtio-gpu's VIRTIO_GPU_MAX_SCANOUTS.</summary>
    public const int MaxScanouts = 16;
    /// <summary>sun_path holds 108 bytes including the terminating NUL.</summary>
    public const int MaxSocketPathBytes = 107;
    public const int MaxNameLength = 64, MaxLabelLength = 64;
    public const int MaxWindowPatternLength = 256;
    public const int MaxTitleLength = 128;

    private static readonly string[] TableNames = ["layout", "output", "zone", "vm", "placement"];
    private static readonly string[] LayoutKeys = ["label_height", "border_width", "renderer"];
    private static readonly string[] OutputKeys = ["name", "width", "height", "refresh_hz", "background", "kind", "fullscreen", "title", "resizable"];
    private static readonly string[] OutputKindNames = ["headless", "window"];
    private static readonly string[] WindowOnlyKeys = ["fullscreen", "title", "resizable"];
    private static readonly string[] ZoneKeys = ["name", "output", "rect", "z", "class"];
    private static readonly string[] VmKeys = ["name", "socket", "label", "label_color", "class", "frame_period_ms", "content_must_change", "fallback", "blob", "host_visible_mib", "virgl_compat", "wayland_socket", "cross_domain_wayland", "max_resources", "max_host_memory_mib", "max_blob_mappings", "max_contexts", "max_wayland_clients"];
    private static readonly string[] PlacementKeys = ["vm", "scanout", "app_id", "title", "zone", "scale", "priority", "preempts"];
    private static readonly string[] ClassNames = ["critical", "normal", "untrusted"];
    private static readonly string[] ScaleNames = ["fit", "fill", "integer", "none"];

    /// <summary>Reads and validates <paramref name="path"/>; diagnostics name the path as given.</summary>
    public static LayoutLoadResult LoadFile(string path)
    {
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException or System.Security.SecurityException)
        {
            return new LayoutLoadResult(null, [new LayoutDiagnostic(LayoutSeverity.Error, path, 0, "", "", $"cannot read the layout file: {e.Message}")]);
        }
        return Load(text, path);
    }

    /// <summary>Parses and validates layout TOML; <paramref name="fileName"/> names it in diagnostics.</summary>
    public static LayoutLoadResult Load(string text, string fileName = "layout.toml")
    {
        ArgumentNullException.ThrowIfNull(text);
        var reader = new Reader(fileName);
        try
        {
            return reader.Run(text);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // A parser bug must not take the compositor down: the running layout stays.
            reader.Error(0, "", "", $"internal error while reading the layout: {e.GetType().Name}: {e.Message}");
            return reader.Result(null);
        }
    }

    /// <summary>The values of <c>[layout] renderer</c> (and <c>--renderer</c>).</summary>
    public static IReadOnlyList<string> RendererNames { get; } = ["auto", "vulkan", "gl", "cpu"];

    /// <summary>"auto" / "vulkan" / "gl" / "cpu" as written in the file.</summary>
    public static string RendererName(RendererKind kind) => kind switch
    {
        RendererKind.Vulkan => "vulkan",
        RendererKind.Gl => "gl",
        RendererKind.Cpu => "cpu",
        _ => "auto",
    };

    /// <summary>Parses a renderer name (exactly as written in the file: lower case).</summary>
    public static bool TryParseRenderer(string? text, out RendererKind kind)
    {
        kind = text switch
        {
            "auto" => RendererKind.Auto,
            "vulkan" => RendererKind.Vulkan,
            "gl" => RendererKind.Gl,
            "cpu" => RendererKind.Cpu,
            _ => (RendererKind)(-1),
        };
        return kind >= RendererKind.Auto;
    }

    /// <summary>"critical" / "normal" / "untrusted" as written in the file.</summary>
    public static string ClassName(SafetyClass c) => c switch
    {
        SafetyClass.Critical => "critical",
        SafetyClass.Normal => "normal",
        _ => "untrusted",
    };

    /// <summary>The value of <c>fallback</c> that means <paramref name="f"/>.</summary>
    public static string FallbackText(FallbackConfig f) => f.Kind switch
    {
        FallbackKind.Dim => "dim",
        FallbackKind.Color => $"color:#{f.Color.R:X2}{f.Color.G:X2}{f.Color.B:X2}",
        _ => f.Scanout == 0 ? $"vm:{f.Vm}" : $"vm:{f.Vm}:{f.Scanout}",
    };

    /// <summary>One [[table]] (or [layout]) with its keys, before validation.</summary>
    private sealed class RawTable(string kind, int number, int line)
    {
        public string Kind { get; } = kind;
        public int Number { get; } = number;
        public int Line { get; } = line;
        public Dictionary<string, KeyValueSyntax> Fields { get; } = new(StringComparer.Ordinal);
        public string Subject { get; set; } = $"{kind} #{number}";

        public int LineOf(string field) => Fields.TryGetValue(field, out var kv) ? LineOfNode(kv) : Line;
    }

    private sealed record Entry<T>(T Config, RawTable Raw);

    private sealed class Reader(string file)
    {
        private readonly List<LayoutDiagnostic> _diagnostics = new();

        public void Error(int line, string subject, string field, string message) =>
            _diagnostics.Add(new LayoutDiagnostic(LayoutSeverity.Error, file, line, subject, field, message));

        private void Warning(int line, string subject, string field, string message) =>
            _diagnostics.Add(new LayoutDiagnostic(LayoutSeverity.Warning, file, line, subject, field, message));

        private void Error(RawTable t, string field, string message) => Error(t.LineOf(field), t.Subject, field, message);

        public LayoutLoadResult Result(LayoutConfig? layout)
        {
            var sorted = _diagnostics.Select((d, i) => (d, i)).OrderBy(x => x.d.Line).ThenBy(x => x.i).Select(x => x.d).ToList();
            bool failed = sorted.Any(d => d.IsError);
            return new LayoutLoadResult(failed ? null : layout, sorted);
        }

        /// <summary>The 1-based line of a trailing backslash or of the first \\u or \\U escape that is not a Unicode scalar value (0 if none is found).</summary>
        private static int LineOfBadEscape(string text)
        {
            int line = 1;
            for (int i = 0; i < text.Length; i++)
            {
                if (text[i] == '\n') { line++; continue; }
                if (text[i] != '\\') continue;
                if (i + 1 >= text.Length) return line; // a backslash at the very end
                int digits = text[i + 1] == 'u' ? 4 : text[i + 1] == 'U' ? 8 : 0;
                if (digits == 0)
                {
                    i++; // an escaped character (\\ included) is skipped as a pair
                    continue;
                }
                if (i + 2 + digits <= text.Length &&
                    uint.TryParse(text.AsSpan(i + 2, digits), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out uint v) &&
                    !System.Text.Rune.IsValid(v))
                    return line;
            }
            return 0;
        }

        public LayoutLoadResult Run(string text)
        {
            DocumentSyntax doc;
            try
            {
                doc = SyntaxParser.Parse(text, file, validate: true);
            }
            catch (TomlException e)
            {
                // Tomlyn throws (instead of reporting) when arrays or inline tables nest deeper
                // than its limit of 64 (found by fuzzing, docs/reliability.md).
                Error(0, "", "", $"TOML: {e.Message.Split(". Change ")[0]}");
                return Result(null);
            }
            catch (ArgumentOutOfRangeException)
            {
                // Tomlyn 2.10's lexer throws while describing a \u/\U escape that names a
                // surrogate or a value past U+10FFFF (found by fuzzing): report it as the syntax error it is.
                Error(LineOfBadEscape(text), "", "", "TOML: invalid escape sequence in a string (a backslash at the end of the file, or a \\u or \\U escape that is not a Unicode scalar value)");
                return Result(null);
            }
            foreach (var d in doc.Diagnostics)
            {
                if (d.Kind == DiagnosticMessageKind.Error) Error(d.Span.Start.Line + 1, "", "", d.Message);
                else Warning(d.Span.Start.Line + 1, "", "", d.Message);
            }
            if (doc.HasErrors) return Result(null);

            // ---- structure: which tables, which keys ----
            var layoutTables = new List<RawTable>();
            var outputs = new List<RawTable>();
            var zones = new List<RawTable>();
            var vms = new List<RawTable>();
            var placements = new List<RawTable>();

            foreach (var kv in doc.KeyValues)
            {
                string key = FullKey(kv.Key);
                Error(LineOfNode(kv), "", key,
                    LayoutKeys.Contains(key) ? $"\"{key}\" belongs in the [layout] table"
                    : TableNames.Contains(key) ? $"write {(key == "layout" ? "a [layout] table" : $"[[{key}]] tables")} instead of \"{key} = ...\""
                    : $"unknown top-level key \"{key}\"; everything belongs in a table: [layout], [[output]], [[zone]], [[vm]] or [[placement]]");
            }

            foreach (var table in doc.Tables)
            {
                string name = FullKey(table.Name);
                int line = LineOfNode(table);
                bool isArray = table is TableArraySyntax;
                List<RawTable>? target = name switch
                {
                    "layout" => layoutTables,
                    "output" => outputs,
                    "zone" => zones,
                    "vm" => vms,
                    "placement" => placements,
                    _ => null,
                };
                if (target is null)
                {
                    string written = isArray ? $"[[{name}]]" : $"[{name}]";
                    string suggestion = Suggest(name, TableNames);
                    Error(line, "", name, $"unknown table {written}{suggestion}; the tables are [layout], [[output]], [[zone]], [[vm]] and [[placement]]");
                    continue;
                }
                if (name == "layout" && isArray)
                {
                    Error(line, "", name, "layout settings are one table: write [layout], not [[layout]]");
                    continue;
                }
                if (name != "layout" && !isArray)
                {
                    Error(line, "", name, $"{name} entries are an array of tables: write [[{name}]], not [{name}]");
                    continue;
                }
                var raw = new RawTable(name, target.Count + 1, line);
                if (name == "layout") raw.Subject = "[layout]";
                foreach (var kv in table.Items) raw.Fields[FullKey(kv.Key)] = kv;
                target.Add(raw);
            }

            foreach (var t in outputs.Concat(zones).Concat(vms)) NameSubject(t);
            foreach (var t in placements) PlacementSubject(t);
            foreach (var t in layoutTables) CheckKeys(t, LayoutKeys);
            foreach (var t in outputs) CheckKeys(t, OutputKeys);
            foreach (var t in zones) CheckKeys(t, ZoneKeys);
            foreach (var t in vms) CheckKeys(t, VmKeys);
            foreach (var t in placements) CheckKeys(t, PlacementKeys);

            // ---- [layout] ----
            int labelHeight = DefaultLabelHeight, borderWidth = DefaultBorderWidth;
            var renderer = RendererKind.Auto;
            bool layoutOk = true;
            if (layoutTables.Count > 0)
            {
                var t = layoutTables[0];
                long? lh = ReadInt(t, "label_height", false, MinLabelHeight, MaxLabelHeight);
                long? bw = ReadInt(t, "border_width", false, 0, MaxBorderWidth);
                if (t.Fields.ContainsKey("label_height") && lh is null) layoutOk = false;
                if (t.Fields.ContainsKey("border_width") && bw is null) layoutOk = false;
                labelHeight = (int)(lh ?? DefaultLabelHeight);
                borderWidth = (int)(bw ?? DefaultBorderWidth);
                renderer = ReadRenderer(t) ?? RendererKind.Auto;
            }

            // ---- outputs ----
            var outputList = new List<Entry<OutputConfig>>();
            var outputNames = new Dictionary<string, RawTable>(StringComparer.Ordinal);
            if (outputs.Count == 0) Error(1, "", "output", "no [[output]] table: a layout needs at least one output");
            foreach (var t in outputs)
            {
                string? name = ReadName(t, outputNames, "output");
                long? width = ReadInt(t, "width", true, 1, MaxOutputSize);
                long? height = ReadInt(t, "height", true, 1, MaxOutputSize);
                long? refresh = ReadInt(t, "refresh_hz", false, 1, MaxRefreshHz);
                bool refreshOk = refresh is not null || !t.Fields.ContainsKey("refresh_hz");
                ColorBgra? background = ReadColor(t, "background", false);
                bool backgroundOk = background is not null || !t.Fields.ContainsKey("background");
                bool windowOk = ReadWindow(t, out var window);
                if (name is null || width is null || height is null || !refreshOk || !backgroundOk || !windowOk) continue;
                outputList.Add(new(new OutputConfig(name, (int)width, (int)height, (int)(refresh ?? DefaultRefreshHz),
                    background ?? ColorBgra.Opaque(0, 0, 0), window), t));
            }

            // ---- zones ----
            var zoneList = new List<Entry<ZoneConfig>>();
            var zoneNames = new Dictionary<string, RawTable>(StringComparer.Ordinal);
            foreach (var t in zones)
            {
                string? name = ReadName(t, zoneNames, "zone");
                string? output = ReadString(t, "output", true);
                int[]? rect = ReadRect(t);
                long? z = ReadInt(t, "z", false, int.MinValue, int.MaxValue);
                bool zOk = z is not null || !t.Fields.ContainsKey("z");
                SafetyClass? cls = ReadClass(t);
                bool ok = name is not null && output is not null && rect is not null && zOk && cls is not null;

                if (output is not null && !outputNames.ContainsKey(output))
                {
                    Error(t, "output", $"unknown output \"{output}\"{Suggest(output, outputNames.Keys)}");
                    ok = false;
                }
                if (rect is not null)
                {
                    var r = new RectI(rect[0], rect[1], rect[2], rect[3]);
                    var outputConfig = output is null ? null : outputList.FirstOrDefault(o => o.Config.Name == output)?.Config;
                    if (outputConfig is not null && !new RectI(0, 0, outputConfig.Width, outputConfig.Height).Contains(r))
                    {
                        Error(t, "rect", $"rect {FormatRect(r)} extends beyond output \"{output}\" ({outputConfig.Width}x{outputConfig.Height})");
                        ok = false;
                    }
                    int minWidth = 2 * borderWidth + 1, minHeight = labelHeight + 2 * borderWidth + 1;
                    if (layoutOk && (r.Width < minWidth || r.Height < minHeight))
                    {
                        Error(t, "rect", $"rect {FormatRect(r)} leaves no room for content below the {labelHeight}-px label bar inside the {borderWidth}-px border: a zone needs at least {minWidth}x{minHeight}");
                        ok = false;
                    }
                }
                if (ok) zoneList.Add(new(new ZoneConfig(name!, output!, new RectI(rect![0], rect[1], rect[2], rect[3]), (int)(z ?? 0), cls!.Value), t));
            }

            // ---- vms ----
            var vmList = new List<Entry<VmConfig>>();
            var vmNames = new Dictionary<string, RawTable>(StringComparer.Ordinal);
            var sockets = new Dictionary<string, (RawTable Table, string Key)>(StringComparer.Ordinal);
            foreach (var t in vms)
            {
                string? name = ReadName(t, vmNames, "vm");
                string? socket = ReadSocket(t, sockets);
                string? label = ReadLabel(t);
                ColorBgra? labelColor = ReadColor(t, "label_color", true);
                SafetyClass? cls = ReadClass(t);
                long? period = ReadInt(t, "frame_period_ms", false, 1, MaxFramePeriodMs);
                bool periodOk = period is not null || !t.Fields.ContainsKey("frame_period_ms");
                bool? mustChange = ReadBool(t, "content_must_change", false);
                bool mustChangeOk = mustChange is not null || !t.Fields.ContainsKey("content_must_change");
                FallbackConfig? fallback = ReadFallback(t);
                var device = ReadDevice(t);
                var wayland = ReadWayland(t, sockets, out bool waylandOk);
                var limits = ReadLimits(t, out bool limitsOk);
                if (name is null || socket is null || label is null || labelColor is null || cls is null || !periodOk || !mustChangeOk || fallback is null || device is null || !waylandOk || !limitsOk) continue;
                vmList.Add(new(new VmConfig(name, socket, label, labelColor.Value, cls.Value,
                    TimeSpan.FromMilliseconds(period ?? DefaultFramePeriodMs), mustChange ?? false, fallback,
                    device == VmDeviceConfig.Default ? null : device, wayland, limits), t));
            }
            foreach (var (vm, t) in vmList)
            {
                if (vm.Fallback.Kind != FallbackKind.OtherVm) continue;
                if (vm.Fallback.Vm == vm.Name)
                    Error(t, "fallback", $"fallback \"{FallbackText(vm.Fallback)}\" names the VM itself, which has no signal whenever its fallback is shown");
                else if (!vmNames.ContainsKey(vm.Fallback.Vm!))
                    Error(t, "fallback", $"fallback names unknown vm \"{vm.Fallback.Vm}\"{Suggest(vm.Fallback.Vm!, vmNames.Keys)}");
            }

            // ---- placements ----
            var placementList = new List<Entry<PlacementConfig>>();
            foreach (var t in placements)
            {
                string? vm = ReadString(t, "vm", true);
                long? scanout = ReadInt(t, "scanout", false, 0, MaxScanouts - 1);
                bool scanoutOk = scanout is not null || !t.Fields.ContainsKey("scanout");
                string? zone = ReadString(t, "zone", true);
                ScaleMode? scale = ReadScale(t);
                bool scaleOk = scale is not null || !t.Fields.ContainsKey("scale");
                long? priority = ReadInt(t, "priority", false, int.MinValue, int.MaxValue);
                bool priorityOk = priority is not null || !t.Fields.ContainsKey("priority");
                bool? preempts = ReadBool(t, "preempts", false);
                bool preemptsOk = preempts is not null || !t.Fields.ContainsKey("preempts");
                var match = ReadWindowMatch(t, out bool matchOk);
                bool ok = vm is not null && zone is not null && scanoutOk && scaleOk && priorityOk && preemptsOk && matchOk;
                if (match is not null && t.Fields.ContainsKey("scanout"))
                {
                    Error(t, "scanout", "a placement shows either a scanout or a Wayland window (app_id / title), not both");
                    ok = false;
                }
                if (vm is not null && !vmNames.ContainsKey(vm))
                {
                    Error(t, "vm", $"unknown vm \"{vm}\"{Suggest(vm, vmNames.Keys)}");
                    ok = false;
                }
                if (zone is not null && !zoneNames.ContainsKey(zone))
                {
                    Error(t, "zone", $"unknown zone \"{zone}\"{Suggest(zone, zoneNames.Keys)}");
                    ok = false;
                }
                if (ok) placementList.Add(new(new PlacementConfig(vm!, (int)(scanout ?? 0), zone!, scale ?? ScaleMode.Fit, (int)(priority ?? 0), preempts ?? false, match), t));
            }
            CheckPlacements(placementList, zoneList, vmList, zones, placements, outputList);

            var layout = new LayoutConfig(
                outputList.Select(e => e.Config).ToList(),
                zoneList.Select(e => e.Config).ToList(),
                vmList.Select(e => e.Config).ToList(),
                placementList.Select(e => e.Config).ToList(),
                labelHeight,
                borderWidth,
                renderer);
            return Result(layout);
        }

        /// <summary>The rules across placements, zones and VMs (the safety rules live here).</summary>
        private void CheckPlacements(List<Entry<PlacementConfig>> placements, List<Entry<ZoneConfig>> zones, List<Entry<VmConfig>> vms,
            List<RawTable> rawZones, List<RawTable> rawPlacements, List<Entry<OutputConfig>> outputs)
        {
            var zoneByName = zones.ToDictionary(e => e.Config.Name, StringComparer.Ordinal);
            var vmByName = vms.ToDictionary(e => e.Config.Name, StringComparer.Ordinal);
            var seen = new Dictionary<(string, int, string), RawTable>();
            var ordinary = new Dictionary<string, Entry<PlacementConfig>>(StringComparer.Ordinal);

            foreach (var (p, t) in placements)
            {
                if (!seen.TryAdd((p.Vm, p.Scanout, p.Zone), t))
                    Error(t, "zone", $"vm \"{p.Vm}\" scanout {p.Scanout} is already placed in zone \"{p.Zone}\" at line {seen[(p.Vm, p.Scanout, p.Zone)].Line}");

                if (!p.Preempts)
                {
                    if (ordinary.TryGetValue(p.Zone, out var first))
                        Error(t, "preempts", $"zone \"{p.Zone}\" already shows vm \"{first.Config.Vm}\" (placement at line {first.Raw.Line}); a zone has at most one ordinary placement, since ordinary placements are always active: set preempts = true for one that shows only while its VM is live");
                    else
                        ordinary[p.Zone] = new(p, t);
                }

                if (!zoneByName.TryGetValue(p.Zone, out var zone) || !vmByName.TryGetValue(p.Vm, out var vm)) continue;
                if (vm.Config.Class < zone.Config.Class)
                    Error(t, "vm", $"vm \"{p.Vm}\" is {ClassName(vm.Config.Class)} and cannot be shown in zone \"{p.Zone}\", which is {ClassName(zone.Config.Class)}: content is never drawn over a zone of a higher class");
                var fb = vm.Config.Fallback;
                if (fb.Kind == FallbackKind.OtherVm && fb.Vm is not null && vmByName.TryGetValue(fb.Vm, out var other) && other.Config.Class < zone.Config.Class)
                    Error(vm.Raw, "fallback", $"fallback vm \"{fb.Vm}\" is {ClassName(other.Config.Class)}, lower than zone \"{p.Zone}\" ({ClassName(zone.Config.Class)}) where this VM is placed (line {t.Line})");
            }

            foreach (var (p, t) in placements)
            {
                if (p.Preempts && ordinary.TryGetValue(p.Zone, out var o) && p.Priority <= o.Config.Priority)
                    Error(t, "priority", $"priority {p.Priority} must be above {o.Config.Priority}, the priority of zone \"{p.Zone}\"'s ordinary placement (line {o.Raw.Line}), or this preempting placement never shows");
            }

            // A zone nothing is ever placed in could never show anything: almost certainly a mistake.
            // (Counted from the raw tables, so a placement rejected for another reason does not add this error.)
            var placedZones = rawPlacements
                .Select(t => t.Fields.TryGetValue("zone", out var z) && z.Value is StringValueSyntax { Value: { } name } ? name : null)
                .OfType<string>().ToHashSet(StringComparer.Ordinal);
            foreach (var t in rawZones)
            {
                if (t.Fields.TryGetValue("name", out var kv) && kv.Value is StringValueSyntax { Value: { } name } && !placedZones.Contains(name)
                    && zoneByName.ContainsKey(name))
                    Error(t.Line, t.Subject, "placement", "no [[placement]] shows anything in this zone; add one, or remove the zone");
            }

            // Warnings: a VM never shown anywhere, and a watchdog period the output frame clock cannot resolve.
            var namedInPlacements = rawPlacements
                .Select(t => t.Fields.TryGetValue("vm", out var v) && v.Value is StringValueSyntax { Value: { } name } ? name : null)
                .OfType<string>().ToHashSet(StringComparer.Ordinal);
            var usedAsFallback = vms.Where(e => e.Config.Fallback.Kind == FallbackKind.OtherVm).Select(e => e.Config.Fallback.Vm!).ToHashSet(StringComparer.Ordinal);
            foreach (var (vm, t) in vms)
            {
                var shownOn = placements.Where(e => e.Config.Vm == vm.Name && zoneByName.ContainsKey(e.Config.Zone))
                    .Select(e => zoneByName[e.Config.Zone].Config.Output).Distinct().ToList();
                if (!namedInPlacements.Contains(vm.Name) && !usedAsFallback.Contains(vm.Name))
                    Warning(t.Line, t.Subject, "name", "this VM is neither placed in a zone nor used as a fallback, so it is never shown");
                foreach (var outputName in shownOn)
                {
                    var output = outputs.FirstOrDefault(o => o.Config.Name == outputName)?.Config;
                    if (output is null) continue;
                    double outputPeriod = 1000.0 / output.RefreshHz;
                    if (vm.FramePeriod.TotalMilliseconds < outputPeriod)
                        Warning(t.LineOf("frame_period_ms"), t.Subject, "frame_period_ms",
                            $"frame_period_ms {vm.FramePeriod.TotalMilliseconds:0.#} is shorter than the {outputPeriod.ToString("0.#", CultureInfo.InvariantCulture)}-ms frame period of output \"{output.Name}\" where it is shown; the watchdog runs once per output frame, so staleness is detected only within frame_period_ms + {outputPeriod.ToString("0.#", CultureInfo.InvariantCulture)} ms");
                }
            }
        }

        // ---- field readers: each reports its own errors and returns null when the value is unusable ----

        private void CheckKeys(RawTable t, string[] allowed)
        {
            foreach (var (key, kv) in t.Fields)
            {
                if (allowed.Contains(key, StringComparer.Ordinal)) continue;
                Error(LineOfNode(kv), t.Subject, key, $"unknown key \"{key}\"{Suggest(key, allowed)}");
            }
        }

        private static void NameSubject(RawTable t)
        {
            if (t.Fields.TryGetValue("name", out var kv) && kv.Value is StringValueSyntax { Value: { Length: > 0 } name })
                t.Subject = $"{t.Kind} \"{name}\"";
        }

        private static void PlacementSubject(RawTable t)
        {
            string? vm = t.Fields.TryGetValue("vm", out var v) && v.Value is StringValueSyntax { Value: { } vs } ? vs : null;
            string? zone = t.Fields.TryGetValue("zone", out var z) && z.Value is StringValueSyntax { Value: { } zs } ? zs : null;
            if (vm is not null && zone is not null) t.Subject = $"placement #{t.Number} (vm \"{vm}\" in zone \"{zone}\")";
        }

        private bool TryGet(RawTable t, string field, bool required, out KeyValueSyntax kv)
        {
            if (t.Fields.TryGetValue(field, out kv!)) return true;
            if (required) Error(t.Line, t.Subject, field, $"missing required field \"{field}\"");
            return false;
        }

        private void TypeError(RawTable t, string field, ValueSyntax? value, string expected) =>
            Error(t, field, $"{field} must be {expected}, got {Describe(value)}");

        private string? ReadString(RawTable t, string field, bool required)
        {
            if (!TryGet(t, field, required, out var kv)) return null;
            if (kv.Value is StringValueSyntax s) return s.Value ?? "";
            TypeError(t, field, kv.Value, "a string");
            return null;
        }

        private long? ReadInt(RawTable t, string field, bool required, long min, long max)
        {
            if (!TryGet(t, field, required, out var kv)) return null;
            if (kv.Value is not IntegerValueSyntax i)
            {
                TypeError(t, field, kv.Value, "an integer");
                return null;
            }
            if (i.Value < min || i.Value > max)
            {
                Error(t, field, RangeMessage(field, i.Value, min, max));
                return null;
            }
            return i.Value;
        }

        private static string RangeMessage(string field, long value, long min, long max) =>
            min == int.MinValue && max == int.MaxValue ? $"{field} {value} does not fit in 32 bits"
            : min == 1 && max >= int.MaxValue ? $"{field} must be > 0, got {value}"
            : $"{field} must be between {min} and {max}, got {value}";

        private bool? ReadBool(RawTable t, string field, bool required)
        {
            if (!TryGet(t, field, required, out var kv)) return null;
            if (kv.Value is BooleanValueSyntax b) return b.Value;
            TypeError(t, field, kv.Value, "true or false");
            return null;
        }

        /// <summary>blob, host_visible_mib (0 or a power of two up to 65536), virgl_compat; null after an error.</summary>
        private VmDeviceConfig? ReadDevice(RawTable t)
        {
            var d = VmDeviceConfig.Default;
            bool ok = true;
            bool? blob = ReadBool(t, "blob", false);
            ok &= blob is not null || !t.Fields.ContainsKey("blob");
            bool? virgl = ReadBool(t, "virgl_compat", false);
            ok &= virgl is not null || !t.Fields.ContainsKey("virgl_compat");
            long? mib = ReadInt(t, "host_visible_mib", false, 0, 65536);
            ok &= mib is not null || !t.Fields.ContainsKey("host_visible_mib");
            if (mib is > 0 and var m && (m & (m - 1)) != 0)
            {
                Error(t, "host_visible_mib", $"host_visible_mib must be 0 (no region) or a power of two (the VMM maps the region as a PCI BAR), got {m}");
                ok = false;
            }
            if (!ok) return null;
            bool blobOn = blob ?? d.Blob;
            if (!blobOn && (mib ?? 0) > 0 && t.Fields.ContainsKey("host_visible_mib"))
                Warning(t.LineOf("host_visible_mib"), t.Subject, "host_visible_mib", "host_visible_mib has no effect with blob = false (only blobs are mapped into the region)");
            return new VmDeviceConfig(blobOn, blobOn ? (int)(mib ?? d.HostVisibleMiB) : 0, virgl ?? d.VirglCompat);
        }

        private string? ReadName(RawTable t, Dictionary<string, RawTable> names, string kind)
        {
            string? name = ReadString(t, "name", true);
            if (name is null) return null;
            if (!IsValidName(name))
            {
                Error(t, "name", $"name \"{name}\" must be 1 to {MaxNameLength} letters, digits, '_', '-' or '.'");
                return null;
            }
            if (names.TryGetValue(name, out var first))
            {
                Error(t, "name", $"name \"{name}\" is already used by the {kind} at line {first.Line}");
                return null;
            }
            names[name] = t;
            return name;
        }

        private static bool IsValidName(string name) =>
            name.Length is > 0 and <= MaxNameLength && name.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-' or '.');

        private ColorBgra? ReadColor(RawTable t, string field, bool required)
        {
            string? text = ReadString(t, field, required);
            if (text is null) return null;
            if (!TryParseRgb(text, out var color))
            {
                Error(t, field, $"{field} must be an opaque colour \"#RRGGBB\", got \"{text}\"");
                return null;
            }
            return color;
        }

        private static bool TryParseRgb(string text, out ColorBgra color)
        {
            color = default;
            return text.Length == 7 && text[0] == '#' && text.Skip(1).All(char.IsAsciiHexDigit) && ColorBgra.TryParse(text, out color);
        }

        private SafetyClass? ReadClass(RawTable t)
        {
            string? text = ReadString(t, "class", true);
            if (text is null) return null;
            switch (text)
            {
                case "critical": return SafetyClass.Critical;
                case "normal": return SafetyClass.Normal;
                case "untrusted": return SafetyClass.Untrusted;
            }
            Error(t, "class", $"class must be \"critical\", \"normal\" or \"untrusted\", got \"{text}\"{Suggest(text, ClassNames)}");
            return null;
        }

        /// <summary>[layout] renderer: "auto", "vulkan", "gl" or "cpu"; null when absent or wrong (reported).</summary>
        private RendererKind? ReadRenderer(RawTable t)
        {
            string? text = ReadString(t, "renderer", false);
            if (text is null) return null;
            if (TryParseRenderer(text, out var kind)) return kind;
            Error(t, "renderer", $"renderer must be \"auto\", \"vulkan\", \"gl\" or \"cpu\", got \"{Escape(text)}\"{Suggest(text, RendererNames)}");
            return null;
        }

        /// <summary>
        /// kind ("headless" or "window") and the window-only keys fullscreen, title, resizable;
        /// false after an error. <paramref name="window"/> is null for a headless output.
        /// </summary>
        private bool ReadWindow(RawTable t, out OutputWindowConfig? window)
        {
            window = null;
            bool ok = true;
            string kind = "headless";
            if (t.Fields.ContainsKey("kind"))
            {
                string? text = ReadString(t, "kind", false);
                if (text is null) ok = false;
                else if (!OutputKindNames.Contains(text, StringComparer.Ordinal))
                {
                    Error(t, "kind", $"kind must be \"headless\" or \"window\", got \"{Escape(text)}\"{Suggest(text, OutputKindNames)}");
                    ok = false;
                }
                else kind = text;
            }
            bool? fullscreen = ReadBool(t, "fullscreen", false);
            ok &= fullscreen is not null || !t.Fields.ContainsKey("fullscreen");
            bool? resizable = ReadBool(t, "resizable", false);
            ok &= resizable is not null || !t.Fields.ContainsKey("resizable");
            string? title = ReadString(t, "title", false);
            if (title is null) ok &= !t.Fields.ContainsKey("title");
            else if (title.Trim().Length == 0 || title.Length > MaxTitleLength || title.Any(char.IsControl))
            {
                Error(t, "title", $"title must be 1 to {MaxTitleLength} printable characters, got \"{Escape(title)}\"");
                ok = false;
            }
            if (ok && kind != "window")
            {
                foreach (var key in WindowOnlyKeys)
                {
                    if (!t.Fields.ContainsKey(key)) continue;
                    Error(t, key, $"{key} applies only to a window: add kind = \"window\" to this output (or remove {key})");
                    ok = false;
                }
            }
            if (!ok) return false;
            if (kind == "window") window = new OutputWindowConfig(fullscreen ?? false, title, resizable ?? true);
            return true;
        }

        private ScaleMode? ReadScale(RawTable t)
        {
            string? text = ReadString(t, "scale", false);
            if (text is null) return null;
            switch (text)
            {
                case "fit": return ScaleMode.Fit;
                case "fill": return ScaleMode.Fill;
                case "integer": return ScaleMode.Integer;
                case "none": return ScaleMode.None;
            }
            Error(t, "scale", $"scale must be \"fit\", \"fill\", \"integer\" or \"none\", got \"{text}\"{Suggest(text, ScaleNames)}");
            return null;
        }

        private int[]? ReadRect(RawTable t)
        {
            if (!TryGet(t, "rect", true, out var kv)) return null;
            if (kv.Value is not ArraySyntax array)
            {
                TypeError(t, "rect", kv.Value, "[x, y, width, height]");
                return null;
            }
            var items = array.Items.Select(i => i.Value).ToList();
            if (items.Count != 4)
            {
                Error(t, "rect", $"rect must be [x, y, width, height] (4 integers), got {items.Count} item{(items.Count == 1 ? "" : "s")}");
                return null;
            }
            string[] parts = ["x", "y", "width", "height"];
            var result = new int[4];
            bool ok = true;
            for (int i = 0; i < 4; i++)
            {
                if (items[i] is not IntegerValueSyntax n)
                {
                    Error(t, "rect", $"rect {parts[i]} must be an integer, got {Describe(items[i])}");
                    ok = false;
                    continue;
                }
                long min = i < 2 ? 0 : 1;
                if (n.Value < min || n.Value > MaxOutputSize)
                {
                    Error(t, "rect", i < 2 ? $"rect {parts[i]} must be between 0 and {MaxOutputSize}, got {n.Value}"
                        : n.Value < 1 ? $"rect {parts[i]} must be > 0, got {n.Value}"
                        : $"rect {parts[i]} must be at most {MaxOutputSize}, got {n.Value}");
                    ok = false;
                    continue;
                }
                result[i] = (int)n.Value;
            }
            return ok ? result : null;
        }

        private string? ReadSocket(RawTable t, Dictionary<string, (RawTable Table, string Key)> sockets) => ReadSocketPath(t, "socket", true, sockets);

        /// <summary>A Unix socket path this process listens on (unique among all of the file's sockets) or connects to (<paramref name="sockets"/> null).</summary>
        private string? ReadSocketPath(RawTable t, string key, bool required, Dictionary<string, (RawTable Table, string Key)>? sockets)
        {
            string? socket = ReadString(t, key, required);
            if (socket is null) return null;
            if (!socket.StartsWith('/'))
            {
                Error(t, key, $"{key} must be an absolute path, got \"{socket}\"");
                return null;
            }
            int bytes = Encoding.UTF8.GetByteCount(socket);
            if (bytes > MaxSocketPathBytes)
            {
                Error(t, key, $"{key} path is {bytes} bytes; a Unix socket path holds at most {MaxSocketPathBytes}");
                return null;
            }
            if (socket.Contains('\0'))
            {
                Error(t, key, $"{key} path must not contain NUL");
                return null;
            }
            if (sockets is null) return socket;
            if (sockets.TryGetValue(socket, out var first))
            {
                Error(t, key, $"{key} \"{socket}\" is already used by {first.Table.Subject} at line {first.Table.LineOf(first.Key)} (its {first.Key})");
                return null;
            }
            sockets[socket] = (t, key);
            return socket;
        }

        /// <summary>The per-VM quota keys; null when none is given (the defaults apply), ok = false after an error.</summary>
        private VmLimitsConfig? ReadLimits(RawTable t, out bool ok)
        {
            bool good = true;
            int? Read(string field, long min, long max)
            {
                if (!t.Fields.ContainsKey(field)) return null;
                long? v = ReadInt(t, field, false, min, max);
                if (v is null) good = false;
                return (int?)v;
            }
            var limits = new VmLimitsConfig(
                Read("max_resources", 1, VmLimitsConfig.MaxResourcesLimit),
                Read("max_host_memory_mib", 1, VmLimitsConfig.MaxHostMemoryMiBLimit),
                Read("max_blob_mappings", 0, VmLimitsConfig.MaxBlobMappingsLimit),
                Read("max_contexts", 0, VmLimitsConfig.MaxContextsLimit),
                Read("max_wayland_clients", 0, VmLimitsConfig.MaxWaylandClientsLimit));
            ok = good;
            return ok && limits != new VmLimitsConfig() ? limits : null;
        }

        private VmWaylandConfig? ReadWayland(RawTable t, Dictionary<string, (RawTable Table, string Key)> sockets, out bool ok)
        {
            ok = true;
            string? socket = null, target = null;
            if (t.Fields.ContainsKey("wayland_socket"))
            {
                socket = ReadSocketPath(t, "wayland_socket", false, sockets);
                ok &= socket is not null;
            }
            if (t.Fields.ContainsKey("cross_domain_wayland"))
            {
                string? text = ReadString(t, "cross_domain_wayland", false);
                if (text == "builtin") { }
                else if (text is not null && text.StartsWith('/')) { target = ReadSocketPath(t, "cross_domain_wayland", false, null); ok &= target is not null; }
                else
                {
                    if (text is not null)
                        Error(t, "cross_domain_wayland", $"cross_domain_wayland must be \"builtin\" (the built-in Wayland server) or the absolute path of a host compositor's socket, got \"{Escape(text)}\"");
                    ok = false;
                }
            }
            return ok && (socket is not null || target is not null) ? new VmWaylandConfig(socket, target) : null;
        }

        private WindowMatch? ReadWindowMatch(RawTable t, out bool ok)
        {
            ok = true;
            string? appId = null, title = null;
            foreach (var key in new[] { "app_id", "title" })
            {
                if (!t.Fields.ContainsKey(key)) continue;
                string? text = ReadString(t, key, false);
                if (text is null || text.Length == 0 || text.Length > MaxWindowPatternLength || text.Any(char.IsControl))
                {
                    if (text is not null)
                        Error(t, key, $"{key} must be 1 to {MaxWindowPatternLength} printable characters ('*' and '?' match any run / any one character), got \"{Escape(text)}\"");
                    ok = false;
                    continue;
                }
                if (key == "app_id") appId = text; else title = text;
            }
            return ok && (appId is not null || title is not null) ? new WindowMatch(appId, title) : null;
        }

        private string? ReadLabel(RawTable t)
        {
            string? label = ReadString(t, "label", true);
            if (label is null) return null;
            if (label.Trim().Length == 0 || label.Length > MaxLabelLength || label.Any(char.IsControl))
            {
                Error(t, "label", $"label must be 1 to {MaxLabelLength} printable characters, got \"{Escape(label)}\"");
                return null;
            }
            return label;
        }

        private FallbackConfig? ReadFallback(RawTable t)
        {
            if (!t.Fields.ContainsKey("fallback")) return new FallbackConfig(FallbackKind.Dim);
            string? text = ReadString(t, "fallback", false);
            if (text is null) return null;
            if (text == "dim") return new FallbackConfig(FallbackKind.Dim);
            if (text.StartsWith("color:", StringComparison.Ordinal))
            {
                string c = text["color:".Length..];
                if (TryParseRgb(c, out var color)) return new FallbackConfig(FallbackKind.Color, color);
                Error(t, "fallback", $"fallback colour must be \"color:#RRGGBB\", got \"{text}\"");
                return null;
            }
            if (text.StartsWith("vm:", StringComparison.Ordinal))
            {
                string[] parts = text.Split(':');
                if (parts.Length is 2 or 3 && IsValidName(parts[1]))
                {
                    int scanout = 0;
                    if (parts.Length == 3 && (!int.TryParse(parts[2], NumberStyles.None, CultureInfo.InvariantCulture, out scanout) || scanout >= MaxScanouts))
                    {
                        Error(t, "fallback", $"fallback scanout must be between 0 and {MaxScanouts - 1}, got \"{parts[2]}\"");
                        return null;
                    }
                    return new FallbackConfig(FallbackKind.OtherVm, default, parts[1], scanout);
                }
                Error(t, "fallback", $"fallback must be \"vm:NAME\" or \"vm:NAME:SCANOUT\", got \"{text}\"");
                return null;
            }
            Error(t, "fallback", $"fallback must be \"dim\", \"color:#RRGGBB\", \"vm:NAME\" or \"vm:NAME:SCANOUT\", got \"{text}\"");
            return null;
        }
    }

    // ---- helpers ----

    private static int LineOfNode(SyntaxNode node) => node.Span.Start.Line + 1;

    private static string FullKey(KeySyntax? key)
    {
        if (key is null) return "";
        var sb = new StringBuilder(KeyPart(key.Key));
        foreach (var dotted in key.DotKeys) sb.Append('.').Append(KeyPart(dotted.Key));
        return sb.ToString();
    }

    private static string KeyPart(BareKeyOrStringValueSyntax? part) => part switch
    {
        BareKeySyntax b => b.Key?.Text ?? "",
        StringValueSyntax s => s.Value ?? "",
        _ => "",
    };

    private static string Describe(ValueSyntax? value) => value switch
    {
        StringValueSyntax s => $"the string \"{Escape(s.Value ?? "")}\"",
        IntegerValueSyntax i => $"the integer {i.Value}",
        FloatValueSyntax f => $"the float {f.Value.ToString(CultureInfo.InvariantCulture)}",
        BooleanValueSyntax b => b.Value ? "true" : "false",
        ArraySyntax => "an array",
        InlineTableSyntax => "a table",
        DateTimeValueSyntax => "a date/time",
        _ => "nothing",
    };

    private static string Escape(string s)
    {
        var sb = new StringBuilder();
        foreach (char c in s.Length > 40 ? s[..40] + "…" : s)
            sb.Append(char.IsControl(c) ? $"\\u{(int)c:x4}" : c.ToString());
        return sb.ToString();
    }

    private static string FormatRect(RectI r) => $"[{r.X}, {r.Y}, {r.Width}, {r.Height}]";

    /// <summary>" (did you mean "x"?)" for the closest candidate within a small edit distance, or "".</summary>
    internal static string Suggest(string word, IEnumerable<string> candidates)
    {
        string? best = null;
        int bestDistance = int.MaxValue;
        string lower = word.ToLowerInvariant();
        foreach (var c in candidates)
        {
            string candidate = c.ToLowerInvariant();
            int d = EditDistance(lower, candidate);
            // On a tie, prefer a candidate the word is the start of ("fil" -> "fill", not "fit").
            if (d < bestDistance || (d == bestDistance && best is not null && candidate.StartsWith(lower, StringComparison.Ordinal)
                && !best.ToLowerInvariant().StartsWith(lower, StringComparison.Ordinal)))
            {
                best = c;
                bestDistance = d;
            }
        }
        if (best is null || best == word) return "";
        int limit = Math.Max(1, Math.Min(3, best.Length / 3));
        return bestDistance <= limit ? $" (did you mean \"{best}\"?)" : "";
    }

    /// <summary>Edit distance counting a swap of two neighbours as one edit (optimal string alignment).</summary>
    private static int EditDistance(string a, string b)
    {
        if (a.Length > 64 || b.Length > 64) return int.MaxValue;
        var d = new int[a.Length + 1, b.Length + 1];
        for (int i = 0; i <= a.Length; i++) d[i, 0] = i;
        for (int j = 0; j <= b.Length; j++) d[0, j] = j;
        for (int i = 1; i <= a.Length; i++)
        {
            for (int j = 1; j <= b.Length; j++)
            {
                int cost = a[i - 1] == b[j - 1] ? 0 : 1;
                d[i, j] = Math.Min(Math.Min(d[i - 1, j] + 1, d[i, j - 1] + 1), d[i - 1, j - 1] + cost);
                if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
                    d[i, j] = Math.Min(d[i, j], d[i - 2, j - 2] + 1);
            }
        }
        return d[a.Length, b.Length];
    }
}
