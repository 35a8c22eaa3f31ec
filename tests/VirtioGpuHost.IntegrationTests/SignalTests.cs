using System.Runtime.InteropServices;
using VirtioGpuHost.Device.Wire;
using VirtioGpuHost.FrontEnd;
using VirtioGpuHost.TestKit;

namespace VirtioGpuHost.IntegrationTests;

/// <summary>
/// Signals the runtime handles (SIGCONT: a shell's `fg`, a debugger; SIGWINCH: a resized
/// terminal) interrupt whatever system call the receiving thread is in: ppoll then fails with
/// EINTR, which the back-end must retry instead of taking it for an error. The signals go to
/// every thread of the back-end process (tgkill), so the event loops and the accept loop each
/// get them while they wait.
/// </summary>
public class SignalTests
{
    private const int SIGCONT = 18, SIGWINCH = 28;

    [DllImport("libc", SetLastError = true)]
    private static extern int tgkill(int tgid, int tid, int sig);

    /// <summary>Sends SIGCONT and SIGWINCH to every thread of <paramref name="pid"/> until stopped; returns how many rounds went out.</summary>
    private static Thread StartSignalling(int pid, CancellationToken stop, Action<int> rounds)
    {
        var t = new Thread(() =>
        {
            int n = 0;
            while (!stop.IsCancellationRequested)
            {
                string[] tasks;
                try { tasks = Directory.GetDirectories($"/proc/{pid}/task"); }
                catch (DirectoryNotFoundException) { break; } // the process is gone: the test fails on that
                foreach (var task in tasks)
                {
                    if (!int.TryParse(Path.GetFileName(task), out int tid)) continue;
                    tgkill(pid, tid, SIGCONT);
                    tgkill(pid, tid, SIGWINCH);
                }
                rounds(++n);
                Thread.Sleep(1);
            }
        }) { IsBackground = true, Name = "signaller" };
        t.Start();
        return t;
    }

    [Fact]
    public void SigcontAndSigwinch_SentRepeatedlyDuringASession_FramesKeepArrivingExactly()
    {
        using var b = BackendProcess.Start(BackendKind.Ours);
        using var vm = GpuVm.Connect(b.SocketPath, new GpuVmOptions { Display = new DisplayServerOptions { Width = 160, Height = 100 } });
        Assert.True(vm.WaitForDisplayReady(TimeSpan.FromSeconds(10)), b.Output);
        var fb = FrameBuffer.Allocate(vm.Ram, 160, 100, VirtioGpuFormat.B8G8R8X8Unorm, scattered: true);
        vm.Driver.SetUpFrameBuffer(1, fb, 0);

        using var stop = new CancellationTokenSource();
        int rounds = 0;
        var signaller = StartSignalling(b.Pid, stop.Token, n => Volatile.Write(ref rounds, n));
        try
        {
            for (uint i = 0; i < 60; i++)
            {
                uint seed = i;
                fb.Fill((x, y) => TestPatterns.GradientAt(x, y, 160, 100, seed) ^ (seed * 0x010101u & 0xFFFFFF));
                vm.Driver.Present(1, fb, new VirtioGpuRect(0, 0, 160, 100));
                BackendContractTests.AssertConsoleEquals(vm, 0, fb);
                // Idle waits are where a loop sits in ppoll: let the signals find it there too.
                if (i % 10 == 9) Thread.Sleep(50);
            }
            Assert.True(Volatile.Read(ref rounds) >= 20, $"only {rounds} rounds of signals were sent");
            // The listener thread got the signals too: a second VM is served while they go on.
            using (var second = GpuVm.Connect(b.SocketPath, new GpuVmOptions { Display = new DisplayServerOptions { Width = 64, Height = 64 } }))
            {
                Assert.True(second.WaitForDisplayReady(TimeSpan.FromSeconds(10)), b.Output);
                var fb2 = FrameBuffer.Allocate(second.Ram, 64, 64, VirtioGpuFormat.B8G8R8X8Unorm, scattered: false);
                fb2.Fill((x, y) => 0xFF00A0F0);
                second.Driver.SetUpFrameBuffer(1, fb2, 0);
                second.Driver.Present(1, fb2, new VirtioGpuRect(0, 0, 64, 64));
                BackendContractTests.AssertConsoleEquals(second, 0, fb2);
            }
        }
        finally
        {
            stop.Cancel();
            signaller.Join(TimeSpan.FromSeconds(5));
        }
        // The first session is still alive after all that.
        Assert.Equal(VirtioGpuCtrlType.OkNoData, vm.Driver.Flush(1, new VirtioGpuRect(0, 0, 160, 100)).Type);
        Assert.False(b.HasExited, b.Output);
        Assert.DoesNotContain("ppoll", b.Output, StringComparison.Ordinal);
    }
}
