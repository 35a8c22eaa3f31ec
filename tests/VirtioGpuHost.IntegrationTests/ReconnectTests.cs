using VirtioGpuHost.Device.Wire;
using VirtioGpuHost.FrontEnd;
using VirtioGpuHost.TestKit;
using VirtioGpuHost.VhostUser.Wire;

namespace VirtioGpuHost.IntegrationTests;

/// <summary>
/// The back-end process outlives its front-ends (QEMU restarted), clean or abrupt, and
/// every fd and mapping a connection took is released.
/// </summary>
public class ReconnectTests
{
    private static void DrawOnce(string socket)
    {
        using var vm = GpuVm.Connect(socket, new GpuVmOptions { Display = new DisplayServerOptions { Width = 128, Height = 64 } });
        Assert.True(vm.WaitForDisplayReady(TimeSpan.FromSeconds(10)));
        var fb = FrameBuffer.Allocate(vm.Ram, 128, 64, VirtioGpuFormat.B8G8R8X8Unorm, scattered: true);
        fb.Fill((x, y) => 0xFF102030);
        vm.Driver.SetUpFrameBuffer(1, fb, 0);
        vm.Driver.Present(1, fb, new VirtioGpuRect(0, 0, 128, 64));
        BackendContractTests.AssertConsoleEquals(vm, 0, fb);
    }

    [Fact]
    public void ManyConnections_CleanAndAbrupt_NoFdOrMappingLeak()
    {
        using var b = BackendProcess.Start(BackendKind.Ours);
        DrawOnce(b.SocketPath); // warm up: JIT, thread pool, logging
        Thread.Sleep(300);
        int fds0 = b.OpenFds, memfds0 = b.MemfdMappings("vgh");
        for (int i = 0; i < 30; i++)
        {
            if (i % 3 == 0)
            {
                DrawOnce(b.SocketPath);
            }
            else if (i % 3 == 1)
            {
                // Abrupt: a front-end that dies in the middle of a message (with an fd attached).
                using var fe = VhostUserFrontEnd.Connect(b.SocketPath);
                Assert.NotEqual(0UL, fe.GetFeatures());
                using var ram = GuestRam.CreateShared(1 << 20);
                var header = new byte[VhostUserHeader.Length];
                new VhostUserHeader((uint)VhostUserRequest.AddMemReg, VhostUserHeader.Version, SingleMemoryRegion.Size).Write(header);
                fe.SendRaw(header, [ram.Fd]);
            }
            else
            {
                // Abrupt: the front-end vanishes with guest memory mapped and rings running.
                var vm = GpuVm.Connect(b.SocketPath, new GpuVmOptions { Display = new DisplayServerOptions { Width = 64, Height = 64 } });
                vm.Driver.CreateResource2D(1, VirtioGpuFormat.B8G8R8X8Unorm, 64, 64);
                vm.FrontEnd.Socket.Dispose();
                vm.Dispose();
            }
        }
        Assert.False(b.HasExited, b.Output);
        DrawOnce(b.SocketPath); // still serving
        // The back-end notices each disconnect asynchronously; give it a moment to clean up.
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while ((b.OpenFds > fds0 || b.MemfdMappings("vgh") > memfds0) && DateTime.UtcNow < deadline) Thread.Sleep(50);
        Assert.True(b.OpenFds <= fds0, $"fds: {fds0} before, {b.OpenFds} after 30 connections");
        Assert.True(b.MemfdMappings("vgh") <= memfds0, $"memfd mappings: {memfds0} before, {b.MemfdMappings("vgh")} after");
    }

    [Theory]
    [InlineData(BackendKind.Ours, true)]
    [InlineData(BackendKind.QemuC, false)]
    public void FrontEndDisconnects_BackendServesTheNextOne(BackendKind kind, bool expectNextServed)
    {
        using var b = BackendProcess.Start(kind);
        DrawOnce(b.SocketPath);
        if (expectNextServed)
        {
            DrawOnce(b.SocketPath);
            Assert.False(b.HasExited);
        }
        else
        {
            // QEMU's C back-end closes its listening socket after the first accept: nobody
            // is listening any more.
            var e = Assert.ThrowsAny<Exception>(() => VhostUserFrontEnd.Connect(b.SocketPath, TimeSpan.FromSeconds(2)).Dispose());
            Assert.Contains("connect", e.Message);
        }
    }
}
