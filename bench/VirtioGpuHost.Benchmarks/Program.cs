using BenchmarkDotNet.Running;

BenchmarkSwitcher.FromAssembly(typeof(VirtioGpuHost.Benchmarks.TransferBenchmarks).Assembly).Run(args);
