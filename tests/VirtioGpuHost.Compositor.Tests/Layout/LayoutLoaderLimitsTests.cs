using VirtioGpuHost.Compositor.Core.Layout;

namespace VirtioGpuHost.Compositor.Tests.Layout;

/// <summary>The per-VM quota keys of [[vm]]: max_resources, max_host_memory_mib, max_blob_mappings, max_contexts, max_wayland_clients.</summary>
public class LayoutLoaderLimitsTests
{
    private static string Layout(string vmKeys) => LayoutTestKit.OneVmLayout(vmKeys: vmKeys);

    private static VmConfig Ok(string vmKeys) => LayoutTestKit.LoadClean(Layout(vmKeys)).Vm("a")!;

    private static void ExpectError(string vmKeys, string field, string fragment) => LayoutTestKit.ExpectError(Layout(vmKeys), field, fragment);

    [Fact]
    public void NoLimitKeys_NullLimits() => Assert.Null(Ok("").Limits);

    [Fact]
    public void AllLimitKeys_Parsed()
    {
        var vm = Ok("max_resources = 100\nmax_host_memory_mib = 32\nmax_blob_mappings = 8\nmax_contexts = 4\nmax_wayland_clients = 3");
        Assert.Equal(new VmLimitsConfig(100, 32, 8, 4, 3), vm.Limits);
    }

    [Fact]
    public void SomeLimitKeys_OthersNull()
    {
        var vm = Ok("max_contexts = 0");
        Assert.Equal(new VmLimitsConfig(MaxContexts: 0), vm.Limits);
    }

    [Theory]
    [InlineData("max_resources", 0, "between 1 and 1048576")]
    [InlineData("max_resources", 1048577, "between 1 and 1048576")]
    [InlineData("max_host_memory_mib", 0, "between 1 and 1048576")]
    [InlineData("max_blob_mappings", -1, "between 0 and 65536")]
    [InlineData("max_blob_mappings", 65537, "between 0 and 65536")]
    [InlineData("max_contexts", 4097, "between 0 and 4096")]
    [InlineData("max_wayland_clients", -5, "between 0 and 4096")]
    public void OutOfRange_ErrorOnLineAndField(string key, long value, string fragment) =>
        ExpectError($"{key} = {value} {LayoutTestKit.Marker}", key, fragment);

    [Theory]
    [InlineData("max_resources = \"10\"", "max_resources")]
    [InlineData("max_host_memory_mib = 1.5", "max_host_memory_mib")]
    [InlineData("max_blob_mappings = true", "max_blob_mappings")]
    [InlineData("max_contexts = [1]", "max_contexts")]
    [InlineData("max_wayland_clients = \"many\"", "max_wayland_clients")]
    public void WrongType_ErrorOnLineAndField(string line, string key) =>
        ExpectError($"{line} {LayoutTestKit.Marker}", key, "an integer");

    [Fact]
    public void MisspelledKey_DidYouMean() =>
        ExpectError($"max_resource = 10 {LayoutTestKit.Marker}", "max_resource", "max_resources");
}
