using CsCheck;
using VirtioGpuHost.Compositor.Core.Geometry;
using VirtioGpuHost.Compositor.Core.Layout;

namespace VirtioGpuHost.Compositor.Tests.Layout;

/// <summary>
/// The layout file: the shipped example loads, and every validation rule reports an error that
/// names the file, the line (marked <c>#&lt;</c> in each test's TOML) and the field.
/// </summary>
public class LayoutLoaderTests
{
    /// <summary>A small valid layout; tests change one line (or append tables) to break one rule.</summary>
    private const string Base = """
        [[output]]
        name = "main"
        width = 800
        height = 480

        [[zone]]
        name = "cluster"
        output = "main"
        rect = [0, 0, 400, 480]
        class = "critical"

        [[zone]]
        name = "ivi"
        output = "main"
        rect = [400, 0, 400, 480]
        class = "normal"

        [[vm]]
        name = "cluster"
        socket = "/tmp/vgh/cluster.sock"
        label = "CLUSTER"
        label_color = "#112233"
        class = "critical"

        [[vm]]
        name = "ivi"
        socket = "/tmp/vgh/ivi.sock"
        label = "IVI"
        label_color = "#445566"
        class = "normal"
        frame_period_ms = 100

        [[placement]]
        vm = "cluster"
        zone = "cluster"

        [[placement]]
        vm = "ivi"
        zone = "ivi"

        """;

    private static string With(string oldText, string newText)
    {
        Assert.Contains(oldText, Base, StringComparison.Ordinal);
        return Base.Replace(oldText, newText, StringComparison.Ordinal);
    }

    // ---- the example and the happy path ----

    [Fact]
    public void LoadFile_HeadUnitExample_LoadsWithoutDiagnostics()
    {
        var result = LayoutLoader.LoadFile(LayoutTestKit.HeadUnitPath);

        Assert.True(result.Success, result.ToString());
        Assert.Empty(result.Diagnostics);
        var l = result.Layout!;
        Assert.Equal(["main"], l.Outputs.Select(o => o.Name));
        Assert.Equal(["cluster", "ivi", "apps"], l.Zones.Select(z => z.Name));
        Assert.Equal(["cluster", "ivi", "apps", "camera"], l.Vms.Select(v => v.Name));
        Assert.Equal(SafetyClass.Critical, l.Zone("cluster")!.Class);
        Assert.Equal(SafetyClass.Untrusted, l.Vm("apps")!.Class);
        var camera = l.Placements.Single(p => p.Vm == "camera");
        Assert.True(camera.Preempts);
        Assert.Equal("ivi", camera.Zone);
        Assert.Equal(ScaleMode.Fill, camera.Scale);
        Assert.Equal(100, camera.Priority);
        Assert.Equal(new FallbackConfig(FallbackKind.Color, ColorBgra.Opaque(0x40, 0, 0)), l.Vm("cluster")!.Fallback);
        Assert.True(l.Vm("cluster")!.ContentMustChange);
        Assert.Equal(TimeSpan.FromMilliseconds(100), l.Vm("cluster")!.FramePeriod);
        Assert.All(l.Vms, v => Assert.StartsWith("/tmp/vgh/", v.Socket, StringComparison.Ordinal));
    }

    [Fact]
    public void LayoutDoc_HeadUnitExample_SameAsTheExampleFile()
    {
        string doc = File.ReadAllText(Path.Combine(LayoutTestKit.RepoRoot, "docs", "layout.md"));
        int start = doc.IndexOf("```toml\n", doc.IndexOf("## Example", StringComparison.Ordinal), StringComparison.Ordinal) + "```toml\n".Length;
        int end = doc.IndexOf("```", start, StringComparison.Ordinal);

        Assert.Equal(File.ReadAllText(LayoutTestKit.HeadUnitPath), doc[start..end]);
    }

    [Fact]
    public void Load_MinimalFile_AppliesDefaults()
    {
        var result = LayoutLoader.Load(Base);

        Assert.True(result.Success, result.ToString());
        var l = result.Layout!;
        Assert.Equal(LayoutLoader.DefaultLabelHeight, l.LabelHeight);
        Assert.Equal(LayoutLoader.DefaultBorderWidth, l.BorderWidth);
        Assert.Equal(new OutputConfig("main", 800, 480, 60, ColorBgra.Opaque(0, 0, 0)), l.Outputs[0]);
        Assert.Equal(0, l.Zones[0].Z);
        var cluster = l.Vm("cluster")!;
        Assert.Equal(TimeSpan.FromMilliseconds(LayoutLoader.DefaultFramePeriodMs), cluster.FramePeriod);
        Assert.False(cluster.ContentMustChange);
        Assert.Equal(FallbackKind.Dim, cluster.Fallback.Kind);
        Assert.Equal(new PlacementConfig("cluster", 0, "cluster", ScaleMode.Fit, 0, false), l.Placements[0]);
        Assert.Equal(ColorBgra.Opaque(0x11, 0x22, 0x33), cluster.LabelColor);
    }

    [Fact]
    public void Load_AllFallbackForms_Parsed()
    {
        string toml = Base + """
            [[vm]]
            name = "a"
            socket = "/tmp/vgh/a.sock"
            label = "A"
            label_color = "#000000"
            class = "critical"
            fallback = "vm:cluster:3"

            [[vm]]
            name = "b"
            socket = "/tmp/vgh/b.sock"
            label = "B"
            label_color = "#000000"
            class = "normal"
            fallback = "vm:ivi"

            [[vm]]
            name = "c"
            socket = "/tmp/vgh/c.sock"
            label = "C"
            label_color = "#000000"
            class = "normal"
            fallback = "color:#FF8000"

            [[placement]]
            vm = "a"
            zone = "cluster"
            preempts = true
            priority = 1

            [[placement]]
            vm = "b"
            zone = "ivi"
            preempts = true
            priority = 1

            [[placement]]
            vm = "c"
            zone = "ivi"
            preempts = true
            priority = 2
            """;

        var result = LayoutLoader.Load(toml);

        Assert.True(result.Success, result.ToString());
        Assert.Equal(new FallbackConfig(FallbackKind.OtherVm, default, "cluster", 3), result.Layout!.Vm("a")!.Fallback);
        Assert.Equal(new FallbackConfig(FallbackKind.OtherVm, default, "ivi", 0), result.Layout.Vm("b")!.Fallback);
        Assert.Equal(new FallbackConfig(FallbackKind.Color, ColorBgra.Opaque(0xFF, 0x80, 0)), result.Layout.Vm("c")!.Fallback);
    }

    [Fact]
    public void Load_ZoneWithOnlyPreemptingPlacements_Accepted()
    {
        // An overlay zone that shows only while its VM is live (documented: allowed, not shown otherwise).
        string toml = Base + """
            [[zone]]
            name = "overlay"
            output = "main"
            rect = [100, 100, 200, 100]
            z = 50
            class = "critical"

            [[placement]]
            vm = "cluster"
            scanout = 1
            zone = "overlay"
            preempts = true
            """;

        var result = LayoutLoader.Load(toml);

        Assert.True(result.Success, result.ToString());
    }

    [Fact]
    public void Load_ManyErrors_AllReportedInLineOrder()
    {
        string toml = With("width = 800", "width = 0").Replace("label = \"IVI\"", "label = \"\"", StringComparison.Ordinal)
            .Replace("vm = \"ivi\"\nzone = \"ivi\"", "vm = \"ivy\"\nzone = \"ivi\"", StringComparison.Ordinal);

        var result = LayoutLoader.Load(toml);

        Assert.False(result.Success);
        Assert.True(result.Errors.Count() >= 3, result.ToString());
        Assert.Contains(result.Errors, d => d.Field == "width");
        Assert.Contains(result.Errors, d => d.Field == "label");
        Assert.Contains(result.Errors, d => d.Field == "vm" && d.Message.Contains("did you mean \"ivi\"", StringComparison.Ordinal));
        Assert.Equal(result.Diagnostics.Select(d => d.Line).Order(), result.Diagnostics.Select(d => d.Line));
    }

    // ---- TOML level ----

    [Fact]
    public void Load_SyntaxError_ReportsLine()
    {
        var d = LayoutTestKit.ExpectError(With("height = 480", "height = #<"), "", "value");
        Assert.Equal(LayoutSeverity.Error, d.Severity);
    }

    [Fact]
    public void Load_KeyDefinedTwice_ReportsSecondLine() =>
        LayoutTestKit.ExpectError(With("height = 480", "height = 480\nheight = 481 #<"), "", "height");

    [Fact]
    public void Load_Garbage_ReportsErrorsWithoutThrowing()
    {
        var result = LayoutLoader.Load("\u0000\u0001 ]] [[ = = \"\n\t[[[");

        Assert.False(result.Success);
        Assert.NotEmpty(result.Errors);
        Assert.All(result.Errors, e => Assert.True(e.Line >= 1));
    }

    [Fact]
    public void LoadFile_MissingFile_ReportsErrorWithoutLine()
    {
        string path = Path.Combine(Path.GetTempPath(), $"vgh-missing-{Guid.NewGuid():N}.toml");

        var result = LayoutLoader.LoadFile(path);

        Assert.False(result.Success);
        var e = Assert.Single(result.Errors);
        Assert.Equal(0, e.Line);
        Assert.StartsWith(path + ": ", e.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void LoadFile_FileWithError_NamesThePath()
    {
        string path = Path.Combine(Path.GetTempPath(), $"vgh-layout-{Guid.NewGuid():N}.toml");
        File.WriteAllText(path, With("width = 800", "width = -5"));
        try
        {
            var result = LayoutLoader.LoadFile(path);

            var e = Assert.Single(result.Errors);
            Assert.Equal($"{path}:3: output \"main\": width must be between 1 and 16384, got -5", e.ToString());
        }
        finally
        {
            File.Delete(path);
        }
    }

    // ---- structure ----

    [Fact]
    public void Load_UnknownTopLevelKey_Error() =>
        LayoutTestKit.ExpectError("version = 2 #<\n" + Base, "version", "unknown top-level key");

    [Fact]
    public void Load_LayoutSettingAtTopLevel_SaysWhereItBelongs() =>
        LayoutTestKit.ExpectError("label_height = 30 #<\n" + Base, "label_height", "belongs in the [layout] table");

    [Fact]
    public void Load_InlineArrayOfTables_SaysWriteTables() =>
        LayoutTestKit.ExpectError("zone = [{ name = \"x\" }] #<\n", "zone", "write [[zone]] tables");

    [Fact]
    public void Load_LayoutTwice_Error() =>
        LayoutTestKit.ExpectError("[layout]\nlabel_height = 20\n[layout] #<\nborder_width = 1\n" + Base, "", "layout");

    [Fact]
    public void Load_UnknownTable_SuggestsClosest() =>
        LayoutTestKit.ExpectError(Base + "[[zones]] #<\nname = \"x\"\n", "zones", "did you mean \"zone\"?");

    [Fact]
    public void Load_SubTable_Rejected() =>
        LayoutTestKit.ExpectError(Base + "[placement.extra] #<\nx = 1\n", "placement.extra", "unknown table [placement.extra]");

    [Fact]
    public void Load_OutputAsPlainTable_SaysWriteArrayOfTables() =>
        LayoutTestKit.ExpectError("[output] #<\nname = \"x\"\n", "output", "write [[output]]");

    [Fact]
    public void Load_LayoutAsArrayOfTables_SaysWritePlainTable() =>
        LayoutTestKit.ExpectError("[[layout]] #<\nlabel_height = 20\n" + Base, "layout", "write [layout]");

    [Fact]
    public void Load_UnknownKey_SuggestsClosest() =>
        LayoutTestKit.ExpectError(With("label = \"IVI\"", "lable = \"IVI\" #<"), "lable", "unknown key \"lable\" (did you mean \"label\"?)");

    [Fact]
    public void Load_DottedKey_Rejected() =>
        LayoutTestKit.ExpectError(With("height = 480", "height = 480\nsize.w = 3 #<"), "size.w", "unknown key \"size.w\"");

    [Fact]
    public void Load_NoOutput_Error()
    {
        var result = LayoutLoader.Load("# nothing\n");

        var e = Assert.Single(result.Errors);
        Assert.Equal("output", e.Field);
        Assert.Equal(1, e.Line);
        Assert.Contains("at least one output", e.Message, StringComparison.Ordinal);
    }

    // ---- types and required fields ----

    [Fact]
    public void Load_StringForInteger_TypeError() =>
        LayoutTestKit.ExpectError(With("width = 800", "width = \"800\" #<"), "width", "width must be an integer, got the string \"800\"");

    [Fact]
    public void Load_FloatForInteger_TypeError() =>
        LayoutTestKit.ExpectError(With("frame_period_ms = 100", "frame_period_ms = 16.7 #<"), "frame_period_ms", "must be an integer, got the float 16.7");

    [Fact]
    public void Load_IntegerForString_TypeError() =>
        LayoutTestKit.ExpectError(With("label = \"IVI\"", "label = 7 #<"), "label", "label must be a string, got the integer 7");

    [Fact]
    public void Load_StringForBoolean_TypeError() =>
        LayoutTestKit.ExpectError(With("frame_period_ms = 100", "content_must_change = \"yes\" #<"), "content_must_change", "must be true or false");

    [Fact]
    public void Load_MissingRequiredField_ErrorOnTableHeader()
    {
        string toml = With("[[vm]]\nname = \"ivi\"\nsocket = \"/tmp/vgh/ivi.sock\"\nlabel = \"IVI\"\n", "[[vm]] #<\nname = \"ivi\"\nsocket = \"/tmp/vgh/ivi.sock\"\n");

        var e = LayoutTestKit.ExpectError(toml, "label", "missing required field \"label\"");
        Assert.Equal("vm \"ivi\"", e.Subject);
    }

    [Fact]
    public void Load_MissingName_SubjectNumbersTheTable()
    {
        var e = LayoutTestKit.ExpectError(With("[[zone]]\nname = \"ivi\"\n", "[[zone]] #<\n"), "name", "missing required field \"name\"");
        Assert.Equal("zone #2", e.Subject);
    }

    // ---- [layout] ----

    [Fact]
    public void Load_LabelHeightOutOfRange_Error() =>
        LayoutTestKit.ExpectError("[layout]\nlabel_height = 4 #<\n" + Base, "label_height", "between 8 and 256");

    [Fact]
    public void Load_BorderWidthOutOfRange_Error() =>
        LayoutTestKit.ExpectError("[layout]\nborder_width = 40 #<\n" + Base, "border_width", "between 0 and 32");

    // ---- outputs ----

    [Fact]
    public void Load_OutputWidthZero_Error() =>
        LayoutTestKit.ExpectError(With("width = 800", "width = 0 #<"), "width", "width must be between 1 and 16384, got 0");

    [Fact]
    public void Load_RefreshOutOfRange_Error() =>
        LayoutTestKit.ExpectError(With("height = 480", "height = 480\nrefresh_hz = 1000 #<"), "refresh_hz", "between 1 and 240");

    [Fact]
    public void Load_BackgroundNotRgb_Error() =>
        LayoutTestKit.ExpectError(With("height = 480", "height = 480\nbackground = \"black\" #<"), "background", "\"#RRGGBB\"");

    [Fact]
    public void Load_DuplicateOutputName_ErrorNamesFirstLine() =>
        LayoutTestKit.ExpectError(Base + "[[output]]\nname = \"main\" #<\nwidth = 10\nheight = 10\n", "name", "already used by the output at line 1");

    [Fact]
    public void Load_InvalidNameCharacters_Error() =>
        LayoutTestKit.ExpectError(With("name = \"main\"", "name = \"main screen\" #<"), "name", "letters, digits");

    // ---- zones ----

    [Fact]
    public void Load_ZoneUnknownOutput_SuggestsClosest() =>
        LayoutTestKit.ExpectError(With("output = \"main\"\nrect = [400, 0, 400, 480]", "output = \"mian\" #<\nrect = [400, 0, 400, 480]"), "output", "unknown output \"mian\" (did you mean \"main\"?)");

    [Fact]
    public void Load_RectWidthZero_Error()
    {
        var e = LayoutTestKit.ExpectError(With("rect = [400, 0, 400, 480]", "rect = [400, 0, 0, 480] #<"), "rect", "rect width must be > 0");
        Assert.Equal($"layout.toml:{e.Line}: zone \"ivi\": rect width must be > 0, got 0", e.ToString());
    }

    [Fact]
    public void Load_RectNegativeX_Error() =>
        LayoutTestKit.ExpectError(With("rect = [400, 0, 400, 480]", "rect = [-1, 0, 400, 480] #<"), "rect", "rect x must be between 0 and");

    [Fact]
    public void Load_RectWrongLength_Error() =>
        LayoutTestKit.ExpectError(With("rect = [400, 0, 400, 480]", "rect = [400, 0, 400] #<"), "rect", "got 3 items");

    [Fact]
    public void Load_RectItemNotInteger_Error() =>
        LayoutTestKit.ExpectError(With("rect = [400, 0, 400, 480]", "rect = [400, 0, \"400\", 480] #<"), "rect", "rect width must be an integer");

    [Fact]
    public void Load_RectNotArray_Error() =>
        LayoutTestKit.ExpectError(With("rect = [400, 0, 400, 480]", "rect = \"400x480\" #<"), "rect", "rect must be [x, y, width, height]");

    [Fact]
    public void Load_ZoneOutsideOutput_Error() =>
        LayoutTestKit.ExpectError(With("rect = [400, 0, 400, 480]", "rect = [500, 0, 400, 480] #<"), "rect", "extends beyond output \"main\" (800x480)");

    [Fact]
    public void Load_ZoneTooSmallForLabelAndBorder_Error() =>
        LayoutTestKit.ExpectError(With("rect = [400, 0, 400, 480]", "rect = [400, 0, 400, 32] #<"), "rect", "a zone needs at least 5x33");

    [Fact]
    public void Load_ZoneTooSmallForCustomLabel_UsesLayoutSettings() =>
        LayoutTestKit.ExpectError("[layout]\nlabel_height = 40\nborder_width = 0\n" + With("rect = [400, 0, 400, 480]", "rect = [400, 0, 400, 40] #<"), "rect", "at least 1x41");

    [Fact]
    public void Load_ClassWrongCase_SuggestsLowercase() =>
        LayoutTestKit.ExpectError(With("class = \"normal\"\n\n[[vm]]", "class = \"Normal\" #<\n\n[[vm]]"), "class", "did you mean \"normal\"?");

    [Fact]
    public void Load_DuplicateZoneName_Error() =>
        LayoutTestKit.ExpectError(With("name = \"ivi\"\noutput", "name = \"cluster\" #<\noutput"), "name", "already used by the zone at line 6");

    [Fact]
    public void Load_ZoneWithoutPlacement_Error() =>
        LayoutTestKit.ExpectError(Base + "[[zone]] #<\nname = \"spare\"\noutput = \"main\"\nrect = [0, 0, 100, 100]\nclass = \"normal\"\n", "placement", "no [[placement]] shows anything in this zone");

    // ---- VMs ----

    [Fact]
    public void Load_RelativeSocket_Error() =>
        LayoutTestKit.ExpectError(With("socket = \"/tmp/vgh/ivi.sock\"", "socket = \"ivi.sock\" #<"), "socket", "absolute path");

    [Fact]
    public void Load_SocketPathTooLong_Error() =>
        LayoutTestKit.ExpectError(With("socket = \"/tmp/vgh/ivi.sock\"", $"socket = \"/tmp/{new string('s', 120)}\" #<"), "socket", "at most 107");

    [Fact]
    public void Load_DuplicateSocket_Error() =>
        LayoutTestKit.ExpectError(With("socket = \"/tmp/vgh/ivi.sock\"", "socket = \"/tmp/vgh/cluster.sock\" #<"), "socket", "already used by vm \"cluster\" at line 20");

    [Fact]
    public void Load_DuplicateVmName_Error() =>
        LayoutTestKit.ExpectError(With("name = \"ivi\"\nsocket", "name = \"cluster\" #<\nsocket"), "name", "already used by the vm at line 18");

    [Fact]
    public void Load_EmptyLabel_Error() =>
        LayoutTestKit.ExpectError(With("label = \"IVI\"", "label = \"  \" #<"), "label", "printable characters");

    [Fact]
    public void Load_LabelColorWithAlpha_Error() =>
        LayoutTestKit.ExpectError(With("label_color = \"#445566\"", "label_color = \"#44556680\" #<"), "label_color", "opaque colour");

    [Fact]
    public void Load_FramePeriodZero_Error() =>
        LayoutTestKit.ExpectError(With("frame_period_ms = 100", "frame_period_ms = 0 #<"), "frame_period_ms", "between 1 and 60000");

    [Fact]
    public void Load_FramePeriodTooLong_Error() =>
        LayoutTestKit.ExpectError(With("frame_period_ms = 100", "frame_period_ms = 60001 #<"), "frame_period_ms", "between 1 and 60000");

    [Fact]
    public void Load_UnknownFallbackForm_Error() =>
        LayoutTestKit.ExpectError(With("frame_period_ms = 100", "fallback = \"blank\" #<"), "fallback", "\"dim\", \"color:#RRGGBB\", \"vm:NAME\" or \"vm:NAME:SCANOUT\"");

    [Fact]
    public void Load_FallbackBadColour_Error() =>
        LayoutTestKit.ExpectError(With("frame_period_ms = 100", "fallback = \"color:red\" #<"), "fallback", "color:#RRGGBB");

    [Fact]
    public void Load_FallbackUnknownVm_Error() =>
        LayoutTestKit.ExpectError(With("frame_period_ms = 100", "fallback = \"vm:clustr\" #<"), "fallback", "unknown vm \"clustr\" (did you mean \"cluster\"?)");

    [Fact]
    public void Load_FallbackSelf_Error() =>
        LayoutTestKit.ExpectError(With("frame_period_ms = 100", "fallback = \"vm:ivi\" #<"), "fallback", "names the VM itself");

    [Fact]
    public void Load_FallbackScanoutOutOfRange_Error() =>
        LayoutTestKit.ExpectError(With("frame_period_ms = 100", "fallback = \"vm:cluster:16\" #<"), "fallback", "between 0 and 15");

    [Fact]
    public void Load_FallbackVmOfLowerClassThanZone_Error()
    {
        // The cluster (critical, in the critical zone) falls back to the IVI (normal): forbidden.
        string toml = With("label_color = \"#112233\"\nclass = \"critical\"", "label_color = \"#112233\"\nclass = \"critical\"\nfallback = \"vm:ivi\" #<");
        LayoutTestKit.ExpectError(toml, "fallback", "fallback vm \"ivi\" is normal, lower than zone \"cluster\" (critical)");
    }

    [Fact]
    public void Load_FallbackVmOfHigherClass_Accepted()
    {
        string toml = With("frame_period_ms = 100", "fallback = \"vm:cluster\"");

        var result = LayoutLoader.Load(toml);

        Assert.True(result.Success, result.ToString());
    }

    // ---- placements ----

    [Fact]
    public void Load_PlacementUnknownVm_Error() =>
        LayoutTestKit.ExpectError(Base + "[[placement]]\nvm = \"camera\" #<\nzone = \"ivi\"\npreempts = true\npriority = 5\n", "vm", "unknown vm \"camera\"");

    [Fact]
    public void Load_PlacementUnknownZone_Error() =>
        LayoutTestKit.ExpectError(Base + "[[placement]]\nvm = \"ivi\"\nzone = \"ivx\" #<\nscanout = 1\n", "zone", "unknown zone \"ivx\" (did you mean \"ivi\"?)");

    [Fact]
    public void Load_ScanoutOutOfRange_Error() =>
        LayoutTestKit.ExpectError(Base + "[[placement]]\nvm = \"ivi\"\nzone = \"ivi\"\nscanout = 16 #<\n", "scanout", "between 0 and 15");

    [Fact]
    public void Load_UnknownScale_SuggestsClosest() =>
        LayoutTestKit.ExpectError(Base + "[[placement]]\nvm = \"ivi\"\nzone = \"ivi\"\nscanout = 1\npreempts = true\npriority = 1\nscale = \"fil\" #<\n", "scale", "did you mean \"fill\"?");

    [Fact]
    public void Load_PriorityBeyond32Bits_Error() =>
        LayoutTestKit.ExpectError(Base + "[[placement]]\nvm = \"ivi\"\nzone = \"ivi\"\nscanout = 1\npreempts = true\npriority = 9999999999 #<\n", "priority", "does not fit in 32 bits");

    [Fact]
    public void Load_LowerClassVmInHigherClassZone_Error() =>
        LayoutTestKit.ExpectError(Base + "[[placement]]\nvm = \"ivi\" #<\nzone = \"cluster\"\npreempts = true\npriority = 5\n", "vm", "vm \"ivi\" is normal and cannot be shown in zone \"cluster\", which is critical");

    [Fact]
    public void Load_DuplicatePlacement_Error() =>
        LayoutTestKit.ExpectError(Base + "[[placement]]\nvm = \"ivi\"\nzone = \"ivi\" #<\n", "zone", "already placed in zone \"ivi\" at line 37");

    [Fact]
    public void Load_SecondOrdinaryPlacementInZone_Error() =>
        LayoutTestKit.ExpectError(Base + "[[placement]] #<\nvm = \"cluster\"\nscanout = 1\nzone = \"ivi\"\n", "preempts", "already shows vm \"ivi\" (placement at line 37)");

    [Fact]
    public void Load_PreemptingPriorityNotAboveOrdinary_Error() =>
        LayoutTestKit.ExpectError(Base + "[[placement]]\nvm = \"cluster\"\nscanout = 1\nzone = \"ivi\"\npreempts = true\npriority = 0 #<\n", "priority", "must be above 0");

    [Fact]
    public void Load_PreemptingPriorityDefaultNotAboveOrdinary_ErrorOnTableHeader() =>
        LayoutTestKit.ExpectError(Base + "[[placement]] #<\nvm = \"cluster\"\nscanout = 1\nzone = \"ivi\"\npreempts = true\n", "priority", "never shows");

    [Fact]
    public void Load_HostVisibleNotPowerOfTwo_Error() =>
        LayoutTestKit.ExpectError(With("frame_period_ms = 100", "host_visible_mib = 48 #<"), "host_visible_mib", "power of two");

    [Fact]
    public void Load_HostVisibleTooLarge_Error() =>
        LayoutTestKit.ExpectError(With("frame_period_ms = 100", "host_visible_mib = 131072 #<"), "host_visible_mib", "between 0 and 65536");

    [Fact]
    public void Load_BlobNotBoolean_Error() =>
        LayoutTestKit.ExpectError(With("frame_period_ms = 100", "blob = \"yes\" #<"), "blob", "true or false");

    [Fact]
    public void Load_DeviceKeys_DefaultsAndOverrides()
    {
        var result = LayoutLoader.Load(With("frame_period_ms = 100", "frame_period_ms = 100\nhost_visible_mib = 256\nvirgl_compat = true"));
        Assert.True(result.Success, result.ToString());
        Assert.Equal(VmDeviceConfig.Default, result.Layout!.Vm("cluster")!.DeviceOrDefault);
        Assert.Equal(new VmDeviceConfig(true, 256, true), result.Layout.Vm("ivi")!.DeviceOrDefault);

        var off = LayoutLoader.Load(With("frame_period_ms = 100", "frame_period_ms = 100\nblob = false"));
        Assert.True(off.Success, off.ToString());
        Assert.Equal(new VmDeviceConfig(false, 0, false), off.Layout!.Vm("ivi")!.DeviceOrDefault);
    }

    // ---- warnings ----

    [Fact]
    public void Load_VmNeverShown_WarningOnly()
    {
        string toml = Base + "[[vm]] #<\nname = \"spare\"\nsocket = \"/tmp/vgh/spare.sock\"\nlabel = \"SPARE\"\nlabel_color = \"#000000\"\nclass = \"normal\"\n";

        var result = LayoutLoader.Load(toml);

        Assert.True(result.Success, result.ToString());
        var w = Assert.Single(result.Warnings);
        Assert.Equal(LayoutTestKit.LineOf(toml, LayoutTestKit.Marker), w.Line);
        Assert.StartsWith($"layout.toml:{w.Line}: warning: vm \"spare\": ", w.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void Load_FramePeriodShorterThanOutputFrame_WarningOnly()
    {
        string toml = With("frame_period_ms = 100", "frame_period_ms = 10 #<");

        var result = LayoutLoader.Load(toml);

        Assert.True(result.Success, result.ToString());
        var w = Assert.Single(result.Warnings);
        Assert.Equal(LayoutTestKit.LineOf(toml, LayoutTestKit.Marker), w.Line);
        Assert.Equal("frame_period_ms", w.Field);
        Assert.Contains("16.7-ms frame period of output \"main\"", w.Message, StringComparison.Ordinal);
    }

    // ---- robustness ----

    [Fact]
    public void Load_MutatedExample_NeverThrowsAndFailsWithLines()
    {
        string example = File.ReadAllText(LayoutTestKit.HeadUnitPath);
        // Cut, duplicate or overwrite a random stretch of the example; the loader must answer, not throw.
        var gen = Gen.Select(Gen.Int[0, example.Length], Gen.Int[0, 40], Gen.Int[0, 3], Gen.String[0, 12]);
        gen.Sample((at, length, op, junk) =>
        {
            int end = Math.Min(example.Length, at + length);
            string text = op switch
            {
                0 => example[..at] + example[end..],
                1 => example[..end] + example[at..],
                2 => example[..at] + junk + example[end..],
                _ => example[..at] + junk + example[at..],
            };
            var result = LayoutLoader.Load(text);
            Assert.True(result.Success || result.Errors.Any());
            Assert.All(result.Diagnostics, d => Assert.InRange(d.Line, 1, text.Count(c => c == '\n') + 2));
        }, iter: 1000);
    }
}
