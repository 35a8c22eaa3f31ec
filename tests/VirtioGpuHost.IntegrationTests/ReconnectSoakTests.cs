using System.Diagnostics;
using VirtioGpuHost.Device.Wire;
using VirtioGpuHost.FrontEnd;
using VirtioGpuHost.TestKit;
using VirtioGpuHost.VhostUser.Wire;

namespace VirtioGpuHost.IntegrationTests;

/// <summary>Runs alone: it counts the process's own fds and RSS, which parallel tests would disturb.</summary>
[CollectionDefinition(nameof(SoakCollection), DisableParallelization = true)]
public sealed class SoakCollection;

/// <summary>
/// Soak: one VM connects and disconnects over and over (clean; abrupt in the middle of a
/// vhost-user header or payload with an fd attached; vanishing with memory mapped and rings
/// running; a killed front-end process) while another VM keeps drawing into the compositor. The
/// process's fds and RSS must come back to where they were and the other VM's frames keep
/// arriving. Then 8 VMs draw at once, all visible. Bounded for CI (VGH_SOAK_CYCLES, default 200;
/// docs/reliability.md has the 1000-cycle numbers). Frame rates are printed, never asserted.
/// </summary>
[Collection(nameof(SoakCollection))]
public sealed class ReconnectSoakTests(ITestOutputHelper output)
{
    private static int Cycles => int.TryParse(Environment.GetEnvironmentVariable("VGH_SOAK_CYCLES"), out int n) && n > 0 ? n : 200;

    /// <summary>Open fds, without the runtime's lazily loaded assemblies (it keeps a .dll open once it loads it).</summary>
    private static int OpenFds() => FdTargets().Count(t => !t.EndsWith(".dll", StringComparison.Ordinal) && !t.EndsWith(".so", StringComparison.Ordinal));

    private static List<string> FdTargets() =>
        Directory.GetFiles("/proc/self/fd").Select(f => { try { return new FileInfo(f).LinkTarget ?? "?"; } catch (IOException) { return "gone"; } }).ToList();

    private static long RssKiB()
    {
        var line = File.ReadLines("/proc/self/status").First(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
        return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]);
    }

    private static long SettledRss()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        return RssKiB();
    }

    /// <summary>One connect/disconnect of the churning VM, of kind <paramref name="i"/> mod 4 (every 20th: a killed process).</summary>
    private static void Cycle(MultiVmRig rig, int i, List<int> killed)
    {
        string socket = rig.Socket(0);
        if (i % 20 == 19)
        {
            // A real front-end process, killed (SIGKILL) while it is connected and drawing.
            var p = Process.Start(new ProcessStartInfo("dotnet", [TestPaths.OurBackend, "frontend", "--socket", socket, "--size", "196x176", "--frames", "1000000"])
            { RedirectStandardOutput = true, RedirectStandardError = true })!;
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
            int served = rig.Host.ConnectionsServed("vm0");
            while (rig.Host.ConnectionsServed("vm0") == served && !p.HasExited && DateTime.UtcNow < deadline) Thread.Sleep(10);
            Thread.Sleep(50 + i % 7 * 40); // somewhere in its setup or drawing
            if (!p.HasExited)
            {
                p.Kill();
                killed.Add(p.Id);
            }
            p.WaitForExit();
            p.Dispose();
            return;
        }
        switch (i % 4)
        {
            case 0:
            {
                using var vm = rig.Connect(0, ram: 4UL << 20);
                var fb = FrameBuffer.Allocate(vm.Ram, 64, 64, VirtioGpuFormat.B8G8R8X8Unorm, scattered: true);
                fb.Fill((x, y) => 0xFF000000u | (uint)i);
                vm.Driver.SetUpFrameBuffer(1, fb, 0);
                vm.Driver.Present(1, fb, new VirtioGpuRect(0, 0, 64, 64));
                break;
            }
            case 1:
            {
                // Half a header, with guest RAM's fd attached, then gone.
                using var fe = VhostUserFrontEnd.Connect(socket);
                Assert.NotEqual(0UL, fe.GetFeatures());
                using var ram = GuestRam.CreateShared(1 << 20);
                var header = new byte[VhostUserHeader.Length];
                new VhostUserHeader((uint)VhostUserRequest.AddMemReg, VhostUserHeader.Version, SingleMemoryRegion.Size).Write(header);
                fe.SendRaw(header.AsSpan(0, 7), [ram.Fd]);
                break;
            }
            case 2:
            {
                // A whole header announcing a payload, half the payload, then gone.
                using var fe = VhostUserFrontEnd.Connect(socket);
                var msg = new byte[VhostUserHeader.Length + SingleMemoryRegion.Size / 2];
                new VhostUserHeader((uint)VhostUserRequest.AddMemReg, VhostUserHeader.Version, SingleMemoryRegion.Size).Write(msg);
                using var ram = GuestRam.CreateShared(1 << 20);
                fe.SendRaw(msg, [ram.Fd]);
                break;
            }
            default:
            {
                // The VMM vanishes with guest memory mapped, rings running and resources alive.
                var vm = rig.Connect(0, ram: 4UL << 20);
                vm.Driver.CreateResource2D(1, VirtioGpuFormat.B8G8R8X8Unorm, 64, 64);
                vm.FrontEnd.Socket.Dispose();
                vm.Dispose();
                break;
            }
        }
    }

    [Fact]
    public void ChurningVm_CleanAbruptKilled_WhileAnotherDraws_FdsAndRssFlat_FramesKeepComing()
    {
        using var rig = new MultiVmRig(2, frameClock: true);
        using var drawer = rig.Connect(1);
        var fb = MultiVmRig.Draw2D(drawer, 1, (x, y) => 0xFF204060);
        var stop = new CancellationTokenSource();
        long presents = 0;
        Exception? drawError = null;
        var drawing = new Thread(() =>
        {
            try
            {
                var rect = new VirtioGpuRect(0, 0, 64, 64);
                for (uint n = 0; !stop.IsCancellationRequested; n++)
                {
                    fb.FillRect(0, 0, 64, 64, 0xFF000000 | n);
                    drawer.Driver.Present(1, fb, rect);
                    Interlocked.Increment(ref presents);
                    Thread.Sleep(4);
                }
            }
            catch (Exception e) { drawError = e; }
        }) { IsBackground = true };
        drawing.Start();

        // The other VM's frame rate alone (reported next to the rate during the churn, not asserted).
        Thread.Sleep(300);
        long quiet0 = rig.Host.Store.FramesOf("vm1");
        var quiet = Stopwatch.StartNew();
        Thread.Sleep(1000);
        double quietRate = (rig.Host.Store.FramesOf("vm1") - quiet0) / quiet.Elapsed.TotalSeconds;
        var killed = new List<int>();
        foreach (int i in new[] { 0, 1, 2, 3, 19, 4, 5, 6, 7 }) Cycle(rig, i, killed); // warm up: JIT, pools, the runtime's child-process plumbing
        killed.Clear();
        Thread.Sleep(500);
        var fdTargets0 = FdTargets();
        int fds0 = OpenFds();
        long rss0 = SettledRss();
        long frames0 = rig.Host.Store.FramesOf("vm1");
        var sw = Stopwatch.StartNew();
        var perPhase = new List<double>();
        int cycles = Cycles;
        for (int i = 0; i < cycles; i++)
        {
            long f = rig.Host.Store.FramesOf("vm1");
            var t = Stopwatch.StartNew();
            Cycle(rig, i, killed);
            perPhase.Add((rig.Host.Store.FramesOf("vm1") - f) / t.Elapsed.TotalSeconds);
        }
        double seconds = sw.Elapsed.TotalSeconds;
        long frames = rig.Host.Store.FramesOf("vm1") - frames0;

        // Disconnects are noticed asynchronously: give the connection threads a moment to clean up.
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(15);
        int fds1;
        while ((fds1 = OpenFds()) > fds0 && DateTime.UtcNow < deadline) Thread.Sleep(50);
        long rss1 = SettledRss();
        stop.Cancel();
        drawing.Join();

        output.WriteLine($"{cycles} cycles in {seconds:F1} s ({killed.Count} killed processes); fds {fds0} -> {fds1}; RSS {rss0 / 1024} -> {rss1 / 1024} MiB; " +
            $"other VM: {frames} frames, {frames / seconds:F1}/s ({quietRate:F1}/s without the churn; per cycle min {perPhase.Min():F0}, median {perPhase.Order().ElementAt(perPhase.Count / 2):F0}); connections served {rig.Host.ConnectionsServed("vm0")}");
        Console.WriteLine($"soak: {cycles} cycles {seconds:F1}s killed={killed.Count} fds {fds0}->{fds1} rssKiB {rss0}->{rss1} frames={frames} rate={frames / seconds:F1}/s quietRate={quietRate:F1}/s served={rig.Host.ConnectionsServed("vm0")}");

        Assert.Null(drawError);
        Assert.True(killed.Count > 0, "no front-end process was still running when it was to be killed");
        Assert.True(frames > 0, "the other VM's frames stopped arriving");
        Assert.True(fds1 <= fds0, $"fds: {fds0} before, {fds1} after {cycles} cycles; new: {string.Join(", ", FdTargets().Except(fdTargets0))}");
        // RSS: the GC keeps some heap and the allocator some arenas; a leak of one small resource
        // per cycle (a 64x64 memfd is 16 KiB plus its mapping) would add > 3 MiB per 200 cycles.
        Assert.True(rss1 - rss0 < 16 * 1024 + cycles * 8, $"RSS grew from {rss0} KiB to {rss1} KiB over {cycles} cycles");
        Assert.True(rig.Host.IsConnected("vm1"));

        // Still serving the churned VM after all that.
        using var last = rig.Connect(0);
        MultiVmRig.Draw2D(last, 1, (x, y) => 0xFF00FF00);
        Assert.True(rig.ComposeUntil(() => rig.ZoneShows(0, (_, _) => 0xFF00FF00)), "the churned VM's last connection was not served");
    }

    [Fact]
    public void EightVms_DrawAtOnce_AllVisible()
    {
        const int Vms = 8, FramesEach = 60;
        using var rig = new MultiVmRig(Vms, frameClock: true);
        var vms = Enumerable.Range(0, Vms).Select(i => rig.Connect(i, ram: 8UL << 20)).ToArray();
        try
        {
            static uint Colour(int vm, uint n) => 0xFF000000 | (uint)(vm * 30 + 10) << 16 | (n & 0xFF) << 8 | 0x40;
            var sw = Stopwatch.StartNew();
            var threads = vms.Select((vm, i) => new Thread(() =>
            {
                var fb = MultiVmRig.Draw2D(vm, 1, (_, _) => Colour(i, 0));
                for (uint n = 1; n <= FramesEach; n++)
                {
                    fb.Fill((_, _) => Colour(i, n));
                    vm.Driver.Present(1, fb, new VirtioGpuRect(0, 0, MultiVmRig.W, MultiVmRig.H));
                }
            })).ToArray();
            foreach (var t in threads) t.Start();
            foreach (var t in threads) Assert.True(t.Join(TimeSpan.FromSeconds(120)), "a VM's drawing thread hung");
            double seconds = sw.Elapsed.TotalSeconds;
            Assert.True(rig.ComposeUntil(() => Enumerable.Range(0, Vms).All(i => rig.ZoneShows(i, (_, _) => Colour(i, FramesEach)))),
                "not every VM's last frame is visible");
            long frames = Enumerable.Range(0, Vms).Sum(i => rig.Host.Store.FramesOf($"vm{i}"));
            output.WriteLine($"8 VMs: {frames} frames flushed in {seconds:F1} s ({frames / seconds:F0}/s all together)");
            Console.WriteLine($"eight: frames={frames} seconds={seconds:F2} rate={frames / seconds:F0}/s safetyFailures={rig.Host.Engine.SafetyFailures}");
            Assert.Equal(0, rig.Host.Engine.SafetyFailures);
        }
        finally
        {
            foreach (var vm in vms) vm.Dispose();
        }
    }
}
