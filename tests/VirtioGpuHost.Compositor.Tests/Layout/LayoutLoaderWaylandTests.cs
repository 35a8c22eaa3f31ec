using VirtioGpuHost.Compositor.Core.Layout;

namespace VirtioGpuHost.Compositor.Tests.Layout;

/// <summary>The Wayland keys: [[vm]] wayland_socket / cross_domain_wayland and [[placement]] app_id / title.</summary>
public class LayoutLoaderWaylandTests
{
    private static string Layout(string vmKeys, string placementKeys) => LayoutTestKit.OneVmLayout(vmKeys: vmKeys, placementKeys: placementKeys);

    [Fact]
    public void Defaults_NoWayland_ScanoutPlacement()
    {
        var l = LayoutTestKit.LoadClean(Layout("", ""));
        Assert.Null(l.Vms[0].Wayland);
        Assert.Null(l.Placements[0].Match);
    }

    [Fact]
    public void AllKeys_Parsed()
    {
        var l = LayoutTestKit.LoadClean(Layout("wayland_socket = \"/tmp/vgh/a-wayland\"\ncross_domain_wayland = \"/run/user/0/wayland-0\"", "app_id = \"weston-*\"\ntitle = \"Flower\""));
        Assert.Equal(new VmWaylandConfig("/tmp/vgh/a-wayland", "/run/user/0/wayland-0"), l.Vms[0].Wayland);
        Assert.Equal(new WindowMatch("weston-*", "Flower"), l.Placements[0].Match);
    }

    [Fact]
    public void CrossDomainBuiltin_IsTheDefaultTarget()
    {
        var l = LayoutTestKit.LoadClean(Layout("wayland_socket = \"/tmp/vgh/a-wl\"\ncross_domain_wayland = \"builtin\"", ""));
        Assert.Equal(new VmWaylandConfig("/tmp/vgh/a-wl", null), l.Vms[0].Wayland);
    }

    [Fact]
    public void CrossDomain_NotAPath_Error() =>
        LayoutTestKit.ExpectError(Layout("cross_domain_wayland = \"wayland-0\" #<", ""), "cross_domain_wayland", "must be \"builtin\" (the built-in Wayland server) or the absolute path");

    [Fact]
    public void WaylandSocket_Relative_Error() =>
        LayoutTestKit.ExpectError(Layout("wayland_socket = \"a-wayland\" #<", ""), "wayland_socket", "wayland_socket must be an absolute path");

    [Fact]
    public void WaylandSocket_SameAsVhostUserSocket_Error() =>
        LayoutTestKit.ExpectError(Layout("wayland_socket = \"/tmp/vgh/a.sock\" #<", ""), "wayland_socket", "is already used by vm \"a\" at line 14 (its socket)");

    [Fact]
    public void WaylandSocket_TooLong_Error() =>
        LayoutTestKit.ExpectError(Layout($"wayland_socket = \"/{new string('w', 120)}\" #<", ""), "wayland_socket", "a Unix socket path holds at most 107");

    [Fact]
    public void Placement_ScanoutAndAppId_Error() =>
        LayoutTestKit.ExpectError(Layout("", "app_id = \"x\"\nscanout = 1 #<"), "scanout", "either a scanout or a Wayland window (app_id / title), not both");

    [Fact]
    public void Placement_EmptyAppId_Error() =>
        LayoutTestKit.ExpectError(Layout("", "app_id = \"\" #<"), "app_id", "app_id must be 1 to 256 printable characters");

    [Fact]
    public void Placement_TitleNotAString_TypeError() =>
        LayoutTestKit.ExpectError(Layout("", "title = 3 #<"), "title", "title must be a string");

    [Fact]
    public void Placement_AppIdTypo_DidYouMean() =>
        LayoutTestKit.ExpectError(Layout("", "appid = \"x\" #<"), "appid", "did you mean \"app_id\"?");
}
