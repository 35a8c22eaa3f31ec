using System.Text.RegularExpressions;
using VirtioGpuHost.FrontEnd.CrossDomain;
using VirtioGpuHost.Interop;
using VirtioGpuHost.TestKit;

namespace VirtioGpuHost.CrossDomain.Tests;

/// <summary>
/// Real components end to end: weston 10 headless is the host compositor, our back-end's
/// cross-domain contexts connect to its socket (external socket mode, as crosvm's
/// --wayland-sock), the reference front-end plays the VM and the guest Wayland proxy carries
/// real clients. WAYLAND_DEBUG=1 on the client shows what crossed: wl_surface.commit requests
/// sent and wl_callback.done events (frame callbacks weston sent back) received.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public partial class WestonE2ETests(ITestOutputHelper output)
{
    private static void RequireProgram(string path)
    {
        if (!File.Exists(path)) Assert.Skip($"{path} is not installed (Debian package weston); this end-to-end test needs it");
    }

    [GeneratedRegex(@"-> wl_surface@\d+\.commit\(")]
    private static partial Regex CommitRequest();

    [GeneratedRegex(@"\] wl_callback@\d+\.done\(")]
    private static partial Regex FrameDone();

    [GeneratedRegex(@"\] xdg_surface@\d+\.configure\(")]
    private static partial Regex Configure();

    [Fact]
    public void WestonSimpleShm_AndWestonFlower_RunThroughTheProxy()
    {
        RequireProgram("/usr/bin/weston");
        RequireProgram("/usr/bin/weston-simple-shm");
        RequireProgram("/usr/bin/weston-flower");
        using var hostDir = new TempDir();
        using var guestDir = new TempDir();
        File.SetUnixFileMode(hostDir.Path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        File.SetUnixFileMode(guestDir.Path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        // weston is the host compositor here, not a client: its socket goes in its XDG_RUNTIME_DIR.
        using var weston = WaylandClientProcess.Start("/usr/bin/weston", "--backend=headless-backend.so --socket=wl-host --idle-time=0 --width=640 --height=480", "",
            new Dictionary<string, string> { ["XDG_RUNTIME_DIR"] = hostDir.Path });
        string hostSocket = hostDir.File("wl-host");
        if (!SpinWait.SpinUntil(() => File.Exists(hostSocket), 15000))
            Assert.Fail($"weston did not create {hostSocket}:\n{weston.Output}");

        long commits, dones;
        // Counted once weston runs (its output pipes stay open until the end) and the runtime's
        // process-start machinery exists.
        var fdsBefore = XdRig.OpenFds();
        var (backend, vm) = CrossDomainSocketTests.Start(hostSocket);
        using (backend)
        using (vm)
        {
            using (var proxy = new WaylandGuestProxy(vm, guestDir.File("wayland-guest")))
            {
                string guestSocket = guestDir.File("wayland-guest");
                var env = new Dictionary<string, string> { ["WAYLAND_DEBUG"] = "1" };

                using (var shm = WaylandClientProcess.Start("/usr/bin/weston-simple-shm", "", guestSocket, env))
                {
                    // It animates until killed: let it draw for a while.
                    SpinWait.SpinUntil(() => FrameDone().Count(shm.Output) >= 30 || shm.HasExited, 20000);
                    string log = shm.Output;
                    commits = CommitRequest().Count(log);
                    dones = FrameDone().Count(log);
                    output.WriteLine($"weston-simple-shm: {commits} commits, {dones} frame callbacks done; proxy: {proxy.Sends} SENDs, {proxy.Receives} RECEIVEs, {proxy.PoolCopies} pool copies ({proxy.PoolBytesCopied} bytes)");
                    Assert.False(shm.HasExited, $"weston-simple-shm exited:\n{Tail(log)}\nproxy errors: {string.Join("; ", proxy.Errors)}");
                    Assert.True(commits >= 10, $"only {commits} commits:\n{Tail(log)}\nproxy errors: {string.Join("; ", proxy.Errors)}");
                    Assert.True(dones >= 10, $"only {dones} frame callbacks came back:\n{Tail(log)}\nproxy errors: {string.Join("; ", proxy.Errors)}");
                }

                using (var flower = WaylandClientProcess.Start("/usr/bin/weston-flower", "", guestSocket, env))
                {
                    SpinWait.SpinUntil(() => CommitRequest().Count(flower.Output) >= 1 && Configure().Count(flower.Output) >= 1 || flower.HasExited, 20000);
                    Thread.Sleep(500);
                    string log = flower.Output;
                    long flowerCommits = CommitRequest().Count(log);
                    output.WriteLine($"weston-flower: {flowerCommits} commits, {Configure().Count(log)} configures, {FrameDone().Count(log)} frame callbacks done");
                    Assert.False(flower.HasExited, $"weston-flower exited:\n{Tail(log)}\nproxy errors: {string.Join("; ", proxy.Errors)}");
                    Assert.True(flowerCommits >= 1, $"weston-flower committed nothing:\n{Tail(log)}");
                    Assert.True(Configure().Count(log) >= 1, $"weston-flower got no configure from weston:\n{Tail(log)}");
                }
                Assert.True(SpinWait.SpinUntil(() => proxy.ActiveSessions == 0, 10000), "the proxy kept sessions of exited clients");
                output.WriteLine($"proxy: {proxy.ClientsAccepted} clients, errors: {string.Join("; ", proxy.Errors)}");
                Assert.Equal(2, proxy.ClientsAccepted);
            }
        }
        // Every context, worker thread, blob, pipe and socket of this process is gone.
        var after = XdRig.OpenFds();
        for (int i = 0; i < 200 && after.Count > fdsBefore.Count; i++)
        {
            Thread.Sleep(25);
            after = XdRig.OpenFds();
        }
        Assert.True(after.Count <= fdsBefore.Count, $"{after.Count} fds open after the run, {fdsBefore.Count} before; new: {string.Join(", ", after.Except(fdsBefore))}");
    }

    private static string Tail(string s) => s.Length > 3000 ? s[^3000..] : s;
}
