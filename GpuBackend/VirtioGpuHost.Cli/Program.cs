using VirtioGpuHost.Cli;

return CommandLine.Build().Parse(args).Invoke();
