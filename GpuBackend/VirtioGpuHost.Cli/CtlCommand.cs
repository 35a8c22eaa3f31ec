using System.CommandLine;
using System.Globalization;
using System.Text;
using VirtioGpuHost.Compositor.Control;

namespace VirtioGpuHost.Cli;

/// <summary>
/// `virtio-gpu-host ctl`: the control API from the command line (in the manner of weston's
/// LayerManagerControl): readable tables, or the API's JSON with --json. Exit status: 0 done,
/// 1 the server refused (its message is printed), 2 no server reachable.
/// </summary>
internal static class CtlCommand
{
    public const string DefaultServer = "http://127.0.0.1:8080";

    public static Command Build()
    {
        var server = new Option<string>("--server") { Description = $"The control API: http://HOST:PORT or unix:/path (default $VGH_CONTROL, else {DefaultServer})", HelpName = "URL", Recursive = true };
        var json = new Option<bool>("--json") { Description = "Print the API's JSON instead of a table", Recursive = true };
        var cmd = new Command("ctl", "Query and control a running compositor (serve or demo) through its control API") { server, json };

        Command Query(string name, string description, string path, Func<byte[], string> table)
        {
            var c = new Command(name, description);
            c.SetAction(parse => Run(parse.GetValue(server), async client =>
            {
                var r = await client.GetAsync(path).ConfigureAwait(false);
                if (!r.Ok) return Fail(r);
                Console.Write(parse.GetValue(json) ? r.Text + "\n" : table(r.Body));
                return 0;
            }));
            return c;
        }

        cmd.Subcommands.Add(Query("vms", "List the VMs: connection, watchdog, fps, latency, commands, errors, resources, memory", "api/vms", VmsTable));
        cmd.Subcommands.Add(Query("surfaces", "List every VM scanout (size, format, frames) and the zones it is placed in", "api/surfaces", SurfacesTable));
        cmd.Subcommands.Add(Query("zones", "List the zones and what each shows now", "api/zones", ZonesTable));
        cmd.Subcommands.Add(Query("outputs", "List the outputs", "api/outputs", OutputsTable));
        cmd.Subcommands.Add(Query("layout", "Show the active layout (placements, preemptions)", "api/layout", LayoutTable));
        cmd.Subcommands.Add(Query("status", "The compositor's frame rate, frame cost and safety-check failures", "api/status", StatusTable));

        var outName = new Argument<string>("OUTPUT") { Description = "The output's name (see `ctl outputs`)" };
        var file = new Argument<string>("FILE") { Description = "Where the PNG goes" };
        var shot = new Command("screenshot", "Save a PNG of an output") { outName, file };
        shot.SetAction(parse => Run(parse.GetValue(server), async client =>
        {
            var r = await client.GetAsync($"api/outputs/{Uri.EscapeDataString(parse.GetValue(outName)!)}/screenshot.png").ConfigureAwait(false);
            if (!r.Ok) return Fail(r);
            await File.WriteAllBytesAsync(parse.GetValue(file)!, r.Body).ConfigureAwait(false);
            Console.WriteLine(parse.GetValue(json) ? $"{{\"file\": \"{parse.GetValue(file)}\", \"bytes\": {r.Body.Length}}}" : $"{parse.GetValue(file)}: {r.Body.Length} bytes");
            return 0;
        }));
        cmd.Subcommands.Add(shot);

        foreach (var (name, description, path, method) in new[]
        {
            ("apply", "Apply a layout file atomically (rejected files change nothing; errors as `serve --check` prints them)", "api/layout", HttpMethod.Put),
            ("validate", "Check a layout file against the running server's rules without applying it", "api/layout/validate", HttpMethod.Post),
        })
        {
            var layoutFile = new Argument<string>("FILE") { Description = "The layout file (TOML; docs/layout.md)" };
            var c = new Command(name, description) { layoutFile };
            c.SetAction(parse => Run(parse.GetValue(server), async client =>
            {
                string f = parse.GetValue(layoutFile)!;
                string text;
                try { text = await File.ReadAllTextAsync(f).ConfigureAwait(false); }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    Console.Error.WriteLine($"ctl: {f}: {e.Message}");
                    return 1;
                }
                var r = await client.SendAsync(method, $"{path}?name={Uri.EscapeDataString(Path.GetFileName(f))}", text, "application/toml").ConfigureAwait(false);
                if (parse.GetValue(json)) { Console.WriteLine(r.Text); return r.Ok ? 0 : 1; }
                if (!r.Ok) return Fail(r);
                var result = r.Json<LayoutResultDto>();
                foreach (var d in result.Diagnostics) Console.Error.WriteLine(d.Text);
                Console.WriteLine($"{f}: ok ({result.Summary}){(result.Applied ? ", applied" : ", not applied (validate)")}");
                return 0;
            }));
            cmd.Subcommands.Add(c);
        }

        var zone = new Argument<string>("ZONE") { Description = "The zone to take" };
        var vm = new Argument<string>("VM") { Description = "The VM whose scanout takes it while the VM is live" };
        var scanout = new Option<int>("--scanout") { Description = "Which scanout of the VM", DefaultValueFactory = _ => 0 };
        var preempt = new Command("preempt", "Let a VM's scanout take a zone while it is live (the layout's class rules apply: a critical zone only takes critical VMs)") { zone, vm, scanout };
        preempt.SetAction(parse => Run(parse.GetValue(server), async client =>
        {
            string body = $"{{\"vm\": {System.Text.Json.JsonSerializer.Serialize(parse.GetValue(vm))}, \"scanout\": {parse.GetValue(scanout)}}}";
            var r = await client.SendAsync(HttpMethod.Post, $"api/zones/{Uri.EscapeDataString(parse.GetValue(zone)!)}/preempt", body, "application/json").ConfigureAwait(false);
            if (!r.Ok) return Fail(r);
            if (parse.GetValue(json)) Console.WriteLine(r.Text);
            else
            {
                var p = r.Json<PreemptionDto>();
                Console.WriteLine($"zone {p.Zone}: vm {p.Vm} scanout {p.Scanout} preempts it (priority {p.Priority}) while it is live");
            }
            return 0;
        }));
        cmd.Subcommands.Add(preempt);

        var releaseZone = new Argument<string>("ZONE") { Description = "The zone whose API preemption ends" };
        var release = new Command("release", "End a preemption made with `ctl preempt`") { releaseZone };
        release.SetAction(parse => Run(parse.GetValue(server), async client =>
        {
            var r = await client.SendAsync(HttpMethod.Delete, $"api/zones/{Uri.EscapeDataString(parse.GetValue(releaseZone)!)}/preempt", null, null).ConfigureAwait(false);
            if (!r.Ok) return Fail(r);
            Console.WriteLine(parse.GetValue(json) ? r.Text : $"zone {parse.GetValue(releaseZone)}: preemption released");
            return 0;
        }));
        cmd.Subcommands.Add(release);
        return cmd;
    }

    private static int Run(string? server, Func<ControlClient, Task<int>> action)
    {
        server ??= Environment.GetEnvironmentVariable("VGH_CONTROL") is { Length: > 0 } env ? env : DefaultServer;
        try
        {
            using var client = new ControlClient(server, TimeSpan.FromSeconds(30));
            return action(client).GetAwaiter().GetResult();
        }
        catch (Exception e) when (e is HttpRequestException or System.Net.Sockets.SocketException or TaskCanceledException or UriFormatException)
        {
            Console.Error.WriteLine($"ctl: cannot reach the control API at {server}: {e.Message}");
            return 2;
        }
    }

    private static int Fail(ControlResponse r)
    {
        var e = r.Error();
        Console.Error.WriteLine($"ctl: {r.Status}: {e.Error}");
        if (e.Diagnostics is { } ds) foreach (var d in ds) Console.Error.WriteLine(d.Text);
        return 1;
    }

    private static T Parse<T>(byte[] body) => System.Text.Json.JsonSerializer.Deserialize<T>(body, ControlJson.Options)!;

    private static string F(double v, string format = "0.0") => v.ToString(format, CultureInfo.InvariantCulture);

    private static string Bytes(double b) => b switch
    {
        >= 1 << 30 => F(b / (1 << 30), "0.0") + " GiB",
        >= 1 << 20 => F(b / (1 << 20), "0.0") + " MiB",
        >= 1 << 10 => F(b / (1 << 10), "0.0") + " KiB",
        _ => F(b, "0") + " B",
    };

    private static string VmsTable(byte[] body) => Table(["VM", "LABEL", "CLASS", "CONNECTED", "WATCHDOG", "FPS", "LATENCY", "FRAMES", "COMMANDS", "ERRORS", "RESOURCES", "MEMORY", "COPIED/FRAME", "BLOBS"],
        Parse<List<VmDto>>(body).Select(v => new[]
        {
            v.Name, v.Label, v.Class, v.Connected ? "yes" : "no", v.Health, F(v.Fps), F(v.LatencyMs, "0.0") + " ms", v.Frames.ToString(CultureInfo.InvariantCulture),
            v.Commands.ToString(CultureInfo.InvariantCulture), v.GuestErrors.ToString(CultureInfo.InvariantCulture), v.Resources.ToString(CultureInfo.InvariantCulture),
            Bytes(v.HostMemoryBytes), Bytes(v.BytesCopiedPerFrame), v.MappedBlobs.ToString(CultureInfo.InvariantCulture),
        }));

    private static string SurfacesTable(byte[] body) => Table(["VM", "SCANOUT", "ENABLED", "SIZE", "FORMAT", "FRAMES", "LAST FRAME", "ZONES"],
        Parse<List<SurfaceDto>>(body).Select(s => new[]
        {
            s.Vm, s.Scanout.ToString(CultureInfo.InvariantCulture), s.Enabled ? "yes" : "no", s.Enabled ? $"{s.Width}x{s.Height}" : "-", s.Enabled ? s.Format : "-",
            s.Frames.ToString(CultureInfo.InvariantCulture), s.LastFrameAgoMs < 0 ? "never" : F(s.LastFrameAgoMs, "0") + " ms ago", string.Join(",", s.Zones),
        }));

    private static string ZonesTable(byte[] body) => Table(["ZONE", "OUTPUT", "RECT", "Z", "CLASS", "SHOWN", "VM", "STATE", "LABEL"],
        Parse<List<ZoneDto>>(body).Select(z => new[]
        {
            z.Name, z.Output, $"{z.Rect.X},{z.Rect.Y} {z.Rect.Width}x{z.Rect.Height}", z.Z.ToString(CultureInfo.InvariantCulture), z.Class, z.Shown ? "yes" : "no",
            z.Vm is null ? "-" : $"{z.Vm}:{z.Scanout}{(z.Preempting ? " (preempting)" : "")}", z.Fallback ? z.Health + ", fallback" : z.Health, z.Label ?? "-",
        }));

    private static string OutputsTable(byte[] body) => Table(["OUTPUT", "SIZE", "REFRESH", "FRAMES", "CAPTURE"],
        Parse<List<OutputDto>>(body).Select(o => new[] { o.Name, $"{o.Width}x{o.Height}", $"{o.RefreshHz} Hz", o.FramesPresented.ToString(CultureInfo.InvariantCulture), o.Capturable ? "yes" : "no" }));

    private static string StatusTable(byte[] body)
    {
        var s = Parse<StatusDto>(body);
        return Table(["FRAMES", "FPS", "MS/FRAME", "SAFETY FAILURES", "UPTIME", "VIEWERS", "LISTEN"],
            [[s.Frames.ToString(CultureInfo.InvariantCulture), F(s.Fps), F(s.AvgComposeMs, "0.00"), s.SafetyFailures.ToString(CultureInfo.InvariantCulture), F(s.UptimeSeconds, "0") + " s", s.ViewerClients.ToString(CultureInfo.InvariantCulture), s.Listen]]);
    }

    private static string LayoutTable(byte[] body)
    {
        var l = Parse<LayoutDto>(body);
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"layout from {l.Source}: {l.Outputs.Count} outputs, {l.Zones.Count} zones, {l.Vms.Count} VMs, label bar {l.LabelHeight} px, border {l.BorderWidth} px\n\n");
        sb.Append(Table(["VM", "ZONE", "SCANOUT", "SCALE", "PRIORITY", "PREEMPTS", "FROM"],
            l.Placements.Select(p => new[] { p.Vm, p.Zone, p.Scanout.ToString(CultureInfo.InvariantCulture), p.Scale, p.Priority.ToString(CultureInfo.InvariantCulture), p.Preempts ? "yes" : "no", p.FromApi ? "api" : "layout" })));
        if (l.Preemptions.Count > 0)
        {
            sb.Append('\n');
            sb.Append(Table(["PREEMPTED ZONE", "BY VM", "SCANOUT", "ACTIVE"], l.Preemptions.Select(p => new[] { p.Zone, p.Vm, p.Scanout.ToString(CultureInfo.InvariantCulture), p.Active ? "yes" : "no (VM not live)" })));
        }
        return sb.ToString();
    }

    /// <summary>Left-aligned columns, two spaces apart, a header row.</summary>
    public static string Table(string[] header, IEnumerable<string[]> rows)
    {
        var all = new List<string[]> { header };
        all.AddRange(rows);
        var widths = new int[header.Length];
        foreach (var r in all)
            for (int i = 0; i < header.Length && i < r.Length; i++) widths[i] = Math.Max(widths[i], r[i].Length);
        var sb = new StringBuilder();
        foreach (var r in all)
        {
            for (int i = 0; i < header.Length; i++)
            {
                string cell = i < r.Length ? r[i] : "";
                sb.Append(i == header.Length - 1 ? cell : cell.PadRight(widths[i] + 2));
            }
            sb.Append('\n');
        }
        if (all.Count == 1) sb.Append("(none)\n");
        return sb.ToString();
    }
}
