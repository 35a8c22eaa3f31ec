using VirtioGpuHost.Compositor.Wayland.Protocol;
using VirtioGpuHost.Fuzz.Targets;

namespace VirtioGpuHost.Fuzz.Tests;

/// <summary>The wayland and cross-domain seeds reach what they are for (not just a protocol error at the first message).</summary>
public sealed class WaylandCrossDomainSeedTests
{
    private static Dictionary<string, byte[]> Seeds(IFuzzTarget t) => t.Seeds().ToDictionary(s => s.Name, s => s.Data);

    [Fact]
    public void Wayland_seeds_run_without_a_protocol_error_and_map_their_windows()
    {
        var t = new WaylandTarget();
        foreach (var (name, data) in Seeds(t))
        {
            t.Run(data);
            var run = WaylandTarget.Last!;
            var error = run.Events.FirstOrDefault(e => e.ObjectId == 1 && e.Opcode == WlDisplay.Events.Error);
            if (name == "shm-pools")
            {
                // Its last request is a pool on a pipe: refused with wl_shm.invalid_fd, after the valid pools.
                Assert.True(error.Body is not null, "shm-pools: the pipe pool was not refused");
                Assert.Equal((uint)WlShm.Error.InvalidFd, error.U(1));
                continue;
            }
            Assert.True(error.Body is null, $"{name}: wl_display.error {(error.Body is null ? "" : error.S(2))}");
            if (name is "shm-toplevel" or "subsurface" or "viewporter" or "presentation-feedback" or "popup-positioner")
                Assert.True(run.WindowsMapped > 0, $"{name}: no window was mapped");
            if (name == "registry-bind-all")
                Assert.True(run.Events.Count(e => e.Opcode == WlRegistry.Events.Global && e.ObjectId == 2) >= 9, $"{name}: fewer globals than the server has");
        }
    }

    [Fact]
    public void Cross_domain_seeds_get_their_polls_answered_and_reach_the_peer()
    {
        var t = new CrossDomainTarget(patient: true); // waits for the worker thread as long as a loaded machine needs
        var seeds = Seeds(t);
        t.Run(seeds["init-poll-receive"]);
        Assert.Equal(2, CrossDomainTarget.Last.PollsAnswered);
        t.Run(seeds["read-pipe"]);
        Assert.Equal(2, CrossDomainTarget.Last.PollsAnswered); // READ, then READ with hang_up
        Assert.Equal(1, CrossDomainTarget.Last.PeerMessages);
        t.Run(seeds["send-host-blob"]);
        Assert.True(CrossDomainTarget.Last.PeerMessages >= 1);
        Assert.Equal(0, CrossDomainTarget.Last.Errors);
        t.Run(seeds["write-pipe"]);
        Assert.Equal(0, CrossDomainTarget.Last.Errors);
        t.Run(seeds["refused"]);
        Assert.True(CrossDomainTarget.Last.Errors >= 6);
    }

    [Fact]
    public void An_error_level_log_is_a_finding()
    {
        var loggers = new CapturingLoggers();
        Microsoft.Extensions.Logging.LoggerExtensions.LogWarning(loggers.CreateLogger("x"), "a protocol error: fine");
        loggers.ThrowIfAny("test");
        Microsoft.Extensions.Logging.LoggerExtensions.LogError(loggers.CreateLogger("x"), "failed; disconnecting");
        Assert.Throws<FuzzInvariantException>(() => loggers.ThrowIfAny("test"));
    }
}
