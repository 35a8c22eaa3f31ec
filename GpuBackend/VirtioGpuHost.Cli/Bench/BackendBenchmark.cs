using System.Diagnostics;
using VirtioGpuHost.Device.Wire;
using VirtioGpuHost.FrontEnd;

namespace VirtioGpuHost.Cli.Bench;

/// <summary>One back-end under test: how to start it.</summary>
internal sealed record BenchTarget(string Name, string Program, IReadOnlyList<string> Arguments);

/// <summary>Results of one back-end and one damage size.</summary>
internal sealed record BenchResult(
    string Backend, string Variant, int Frames, double Seconds, double FramesPerSecond,
    double LatencyP50Ms, double LatencyP99Ms, double CpuMsPerFrame, long RssKb, long HwmKb);

/// <summary>
/// Drives one back-end process through the reference front-end over its real socket, as a
/// Linux guest does a DIRTYFB: the guest changes its framebuffer, queues
/// TRANSFER_TO_HOST_2D + RESOURCE_FLUSH with one kick, and waits for both to come back
/// (the driver waits on the flush fence) before drawing the next frame. Round trips per
/// second count those guest-visible completions; latency runs from the kick until the
/// display side has received the frame's whole UPDATE (measured on the display thread,
/// which reads pixels straight into its console surface, as QEMU's console holds them).
/// </summary>
internal static class BackendBenchmark
{
    public static BenchResult Run(BenchTarget target, uint width, uint height, uint damage, int warmup, TimeSpan duration, int maxFrames)
    {
        using var dir = new TempDirectory();
        string socket = Path.Combine(dir.Path, "gpu.sock");
        var psi = new ProcessStartInfo(target.Program) { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in target.Arguments) psi.ArgumentList.Add(a);
        psi.ArgumentList.Add("-s");
        psi.ArgumentList.Add(socket);
        using var proc = Process.Start(psi) ?? throw new InvalidOperationException($"cannot start {target.Program}");
        proc.BeginErrorReadLine();
        proc.BeginOutputReadLine();
        try
        {
            var sw0 = Stopwatch.StartNew();
            while (!File.Exists(socket))
            {
                if (proc.HasExited) throw new InvalidOperationException($"{target.Name} exited with {proc.ExitCode}");
                if (sw0.Elapsed > TimeSpan.FromSeconds(30)) throw new TimeoutException($"{target.Name} did not listen");
                Thread.Sleep(10);
            }
            using var vm = GpuVm.Connect(socket, new GpuVmOptions
            {
                RamSize = Math.Max(64UL << 20, (ulong)width * height * 4 * 3),
                Display = new DisplayServerOptions { Width = width, Height = height },
            });
            if (!vm.WaitForDisplayReady(TimeSpan.FromSeconds(10))) throw new InvalidOperationException($"{target.Name} never negotiated the display");
            var fb = FrameBuffer.Allocate(vm.Ram, width, height, VirtioGpuFormat.B8G8R8X8Unorm, scattered: true);
            fb.Fill((x, y) => 0xFF000000 | (x * 255 / width) << 16 | (y * 255 / height) << 8);
            var d = vm.Driver;
            d.SetUpFrameBuffer(1, fb, 0);
            d.Present(1, fb, new VirtioGpuRect(0, 0, width, height));

            // Back-ends differ in how many UPDATEs set-up makes (ours also sends one after
            // SET_SCANOUT): let them settle, then count from here, one UPDATE per frame.
            Thread.Sleep(200);
            var arrivals = new List<long>();
            vm.Display!.UpdateReceived += u => { lock (arrivals) arrivals.Add(u.ReceivedTimestamp); };
            var kicks = new List<long>();
            int firstArrival = -1;
            var marker = new byte[16 * 4];
            TimeSpan cpu0 = default;
            var wall = new Stopwatch();
            int frame = 0, measured = 0;
            while (true)
            {
                if (frame == warmup)
                {
                    cpu0 = ProcessStats.CpuTime(proc.Id);
                    wall.Start();
                }
                bool measuring = frame >= warmup;
                if (measuring && (wall.Elapsed >= duration || measured >= maxFrames)) break;

                // The guest draws: a marker of 16 pixels inside the damaged rect changes each frame.
                uint rx = damage >= width ? 0 : (uint)(frame * 8 % (width - damage));
                uint ry = damage >= height ? 0 : (height - damage) / 2;
                var rect = damage >= width ? new VirtioGpuRect(0, 0, width, height) : new VirtioGpuRect(rx, ry, damage, damage);
                Array.Fill(marker, (byte)frame);
                fb.Write((ulong)rect.Y * fb.Stride + rect.X * 4UL, marker);

                if (measuring && firstArrival < 0)
                {
                    // Every earlier frame's UPDATE must be in before latencies are matched up.
                    int want = frame;
                    if (!vm.Display.WaitFor(_ => { lock (arrivals) return arrivals.Count >= want; }, TimeSpan.FromSeconds(10)))
                        throw new TimeoutException($"{target.Name}: warm-up UPDATEs missing");
                    firstArrival = want; // frame i's UPDATE is arrival i
                    lock (arrivals)
                        if (arrivals.Count != want) throw new InvalidOperationException($"{target.Name}: {arrivals.Count} UPDATEs for {want} frames");
                }
                var transfer = d.Queue(Bytes(d.TransferCommand(1, rect, (ulong)rect.Y * fb.Stride + rect.X * 4UL)));
                var flush = d.Queue(Bytes(d.FlushCommand(1, rect)));
                long t0 = Stopwatch.GetTimestamp();
                d.KickControl();
                GpuDriver.Expect(d.Wait(transfer), "TRANSFER_TO_HOST_2D");
                GpuDriver.Expect(d.Wait(flush), "RESOURCE_FLUSH");
                if (measuring)
                {
                    kicks.Add(t0);
                    measured++;
                }
                frame++;
            }
            wall.Stop();
            var cpuEnd = ProcessStats.CpuTime(proc.Id);
            int need = firstArrival + measured;
            if (!vm.Display.WaitFor(_ => { lock (arrivals) return arrivals.Count >= need; }, TimeSpan.FromSeconds(10)))
                throw new TimeoutException($"{target.Name}: {need - arrivals.Count} UPDATEs never arrived");
            var latencies = new List<double>();
            lock (arrivals)
                for (int i = 0; i < measured; i++) latencies.Add((arrivals[firstArrival + i] - kicks[i]) * 1000.0 / Stopwatch.Frequency);
            var cpu = cpuEnd - cpu0;
            var (rss, hwm) = ProcessStats.Memory(proc.Id);
            latencies.Sort();
            return new BenchResult(target.Name, damage >= width ? $"full {width}x{height}" : $"damage {damage}x{damage}",
                measured, wall.Elapsed.TotalSeconds, measured / wall.Elapsed.TotalSeconds,
                Percentile(latencies, 0.50), Percentile(latencies, 0.99), cpu.TotalMilliseconds / measured, rss, hwm);
        }
        finally
        {
            if (!proc.HasExited) proc.Kill(entireProcessTree: true);
            proc.WaitForExit(5000);
        }
    }

    private static byte[] Bytes<T>(T value) where T : unmanaged =>
        System.Runtime.InteropServices.MemoryMarshal.AsBytes(new ReadOnlySpan<T>(in value)).ToArray();

    private static double Percentile(List<double> sorted, double p) =>
        sorted.Count == 0 ? double.NaN : sorted[Math.Min(sorted.Count - 1, (int)Math.Ceiling(p * sorted.Count) - 1)];

    private sealed class TempDirectory : IDisposable
    {
        public string Path { get; } = Directory.CreateTempSubdirectory("vgh-bench.").FullName;
        public void Dispose() { try { Directory.Delete(Path, true); } catch (IOException) { } }
    }
}
