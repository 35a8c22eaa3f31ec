using Prometheus;
using VirtioGpuHost.Compositor.Core.Layout;

namespace VirtioGpuHost.Compositor.Control;

/// <summary>
/// Prometheus metrics of the compositor and of every VM (prometheus-net, a registry of its own so
/// nothing else in the process leaks in). Counters are read from the host at scrape time; the
/// latency histogram is fed per guest frame from the frame thread.
/// </summary>
public sealed class ControlMetrics
{
    private readonly ControlService _control;
    private readonly Counter _frames, _commands, _errors, _copied, _composed, _composeSeconds, _safety, _api;
    private readonly Gauge _health, _connected, _resources, _memory, _mapped, _copiesPerFrame, _fps, _viewers, _connections;
    private readonly Histogram _latency;

    public ControlMetrics(ControlService control)
    {
        _control = control;
        Registry = Metrics.NewCustomRegistry();
        var f = Metrics.WithCustomRegistry(Registry);
        string[] vm = ["vm"];
        _frames = f.CreateCounter("vgh_vm_frames_total", "Guest frames (RESOURCE_FLUSH of a scanout) received, all connections", vm);
        _commands = f.CreateCounter("vgh_vm_commands_total", "virtio-gpu commands executed by the VM's devices, all connections", vm);
        _errors = f.CreateCounter("vgh_vm_guest_errors_total", "Malformed or refused guest commands (GuestErrorLog), all connections", vm);
        _copied = f.CreateCounter("vgh_vm_scanout_bytes_copied_total", "Bytes copied between guest pixels and what the compositor reads (2D transfers, blob gathers)", vm);
        _copiesPerFrame = f.CreateGauge("vgh_vm_scanout_bytes_copied_per_frame", "Bytes copied per guest frame (0 for zero-copy blob scanouts)", vm);
        _mapped = f.CreateGauge("vgh_vm_mapped_blobs", "Blobs mapped into the VM's host-visible region now", vm);
        _resources = f.CreateGauge("vgh_vm_resources", "Resources the VM's live connection holds", vm);
        _memory = f.CreateGauge("vgh_vm_host_memory_bytes", "Host memory charged to the VM's resources", vm);
        _connected = f.CreateGauge("vgh_vm_connected", "1 while a front-end is connected", vm);
        _connections = f.CreateGauge("vgh_vm_connections_served", "Connections the VM's socket has served", vm);
        _fps = f.CreateGauge("vgh_vm_fps", "Guest frames per second (last half second)", vm);
        _health = f.CreateGauge("vgh_vm_watchdog_state", "1 for the VM's current watchdog state (no_signal, live, stale), 0 for the others", "vm", "state");
        _latency = f.CreateHistogram("vgh_vm_flush_to_present_seconds", "Time from a guest's flush to the compositor presenting the frame that shows it", new HistogramConfiguration
        {
            LabelNames = vm,
            Buckets = Histogram.ExponentialBuckets(0.001, 2, 12),
        });
        _composed = f.CreateCounter("vgh_compositor_frames_total", "Frames composed");
        _composeSeconds = f.CreateCounter("vgh_compositor_compose_seconds_total", "Time spent composing frames");
        _safety = f.CreateCounter("vgh_compositor_safety_check_failures_total", "Critical-zone pixel checks that found a mismatch");
        _viewers = f.CreateGauge("vgh_viewer_clients", "Viewer and stream requests in progress");
        _api = f.CreateCounter("vgh_api_requests_total", "Control API requests by status code", "code");
        control.LatencyObserved += (name, seconds) => _latency.WithLabels(name).Observe(seconds);
        Registry.AddBeforeCollectCallback(Update);
    }

    public CollectorRegistry Registry { get; }

    public void CountRequest(int status) => _api.WithLabels(status.ToString(System.Globalization.CultureInfo.InvariantCulture)).Inc();

    private void Update()
    {
        var host = _control.Host;
        foreach (var v in host.Layout.Vms)
        {
            var s = host.DeviceStats(v.Name) ?? new VmDeviceStats();
            long frames = host.Store.FramesOf(v.Name);
            _frames.WithLabels(v.Name).IncTo(frames);
            _commands.WithLabels(v.Name).IncTo(s.Commands);
            _errors.WithLabels(v.Name).IncTo(s.GuestErrors);
            _copied.WithLabels(v.Name).IncTo(s.BytesCopied);
            _copiesPerFrame.WithLabels(v.Name).Set(frames > 0 ? (double)s.BytesCopied / frames : 0);
            _mapped.WithLabels(v.Name).Set(s.MappedBlobs);
            _resources.WithLabels(v.Name).Set(s.Resources);
            _memory.WithLabels(v.Name).Set(s.HostMemoryBytes);
            _connected.WithLabels(v.Name).Set(host.IsConnected(v.Name) ? 1 : 0);
            _connections.WithLabels(v.Name).Set(host.ConnectionsServed(v.Name));
            var health = host.Engine.Health.TryGetValue(v.Name, out var h) ? h : VmHealth.NoSignal;
            _health.WithLabels(v.Name, "no_signal").Set(health == VmHealth.NoSignal ? 1 : 0);
            _health.WithLabels(v.Name, "live").Set(health == VmHealth.Live ? 1 : 0);
            _health.WithLabels(v.Name, "stale").Set(health == VmHealth.Stale ? 1 : 0);
            if (_control.Vm(v.Name) is { } dto) _fps.WithLabels(v.Name).Set(dto.Fps);
        }
        _composed.IncTo(host.Engine.Frames);
        _composeSeconds.IncTo(host.Engine.ComposeTime.TotalSeconds);
        _safety.IncTo(host.Engine.SafetyFailures);
        _viewers.Set(_control.ViewerClients);
    }
}
