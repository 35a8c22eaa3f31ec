namespace VirtioGpuHost.Compositor.Core.Layout;

/// <summary>A VM's health changed (for the log and the API).</summary>
public sealed record HealthTransition(string Vm, VmHealth From, VmHealth To, TimeSpan At, string Reason)
{
    public override string ToString() => $"vm \"{Vm}\": {From} -> {To} at {At.TotalSeconds:0.000}s ({Reason})";
}

/// <summary>
/// Per-VM watchdog: decides <see cref="VmHealth"/> from frame events. Pure: time is whatever the
/// caller passes (the compositor's monotonic clock, a fake one in tests), nothing runs by itself.
/// </summary>
/// <remarks>
/// <list type="bullet">
/// <item><see cref="VmHealth.NoSignal"/> until the VM's first frame, and again after
/// <see cref="OnDisconnected"/>.</item>
/// <item><see cref="VmHealth.Live"/> while the last frame is at most
/// <see cref="VmConfig.FramePeriod"/> old.</item>
/// <item><see cref="VmHealth.Stale"/> once now − last frame &gt; FramePeriod; Live again with
/// the next frame.</item>
/// </list>
/// A frame is a RESOURCE_FLUSH that reaches a scanout the layout shows; the caller filters (a
/// flush of a hidden scanout proves nothing about what the driver sees). With
/// <see cref="VmConfig.ContentMustChange"/>, a frame counts only when its content hash differs
/// from the previous frame's: a guest that keeps flushing a frozen picture goes stale. Such a
/// VM must be given hashes: a frame without one (null) does not count for it, since unverified
/// content is no proof of life (fail safe).
/// <para>Detection latency: health is decided only in <see cref="Evaluate"/>, which the compositor
/// calls once per output frame. The VM becomes stale at the first evaluation after
/// lastFrame + FramePeriod; evaluations are at most one output period O apart, so that is no
/// later than lastFrame + FramePeriod + O, i.e. within two frame periods as long as
/// O ≤ FramePeriod (the loader warns about a frame_period_ms shorter than the output's frame
/// period).</para>
/// Not thread-safe: the compositor's frame loop owns it.
/// </remarks>
public sealed class Watchdog
{
    private sealed class State(VmConfig config)
    {
        public VmConfig Config { get; } = config;
        public TimeSpan? LastFrame { get; set; }
        public ulong? LastHash { get; set; }
        public VmHealth Reported { get; set; } = VmHealth.NoSignal;
        public bool Disconnected { get; set; }
    }

    private readonly List<State> _states = new();
    private readonly Dictionary<string, State> _byName = new(StringComparer.Ordinal);

    public Watchdog(IEnumerable<VmConfig> vms)
    {
        ArgumentNullException.ThrowIfNull(vms);
        foreach (var vm in vms)
        {
            if (_byName.ContainsKey(vm.Name)) continue;
            var s = new State(vm);
            _states.Add(s);
            _byName[vm.Name] = s;
        }
    }

    /// <summary>
    /// A watchdog for a new layout's VMs that keeps what this one knows about the VMs both have
    /// (last frame, hash, reported health), so a reload does not flash "no signal" on live VMs.
    /// </summary>
    public Watchdog Reconfigure(IEnumerable<VmConfig> vms)
    {
        var next = new Watchdog(vms);
        foreach (var s in next._states)
        {
            if (!_byName.TryGetValue(s.Config.Name, out var old)) continue;
            s.LastFrame = old.LastFrame;
            s.LastHash = old.LastHash;
            s.Reported = old.Reported;
            s.Disconnected = old.Disconnected;
        }
        return next;
    }

    /// <summary>
    /// A frame of <paramref name="vm"/> reached a shown scanout at <paramref name="now"/>.
    /// Returns whether it counted as a frame (false: unknown VM, or unchanged content where the
    /// content must change).
    /// </summary>
    public bool OnFrame(string vm, TimeSpan now, ulong? contentHash)
    {
        if (!_byName.TryGetValue(vm, out var s)) return false;
        s.Disconnected = false;
        if (s.Config.ContentMustChange)
        {
            ulong? previous = s.LastHash;
            s.LastHash = contentHash;
            if (contentHash is null) return false;
            if (previous == contentHash) return false;
        }
        else
        {
            s.LastHash = contentHash;
        }
        s.LastFrame = now;
        return true;
    }

    /// <summary>The VM's connection went away: no signal until its next frame.</summary>
    public void OnDisconnected(string vm)
    {
        if (!_byName.TryGetValue(vm, out var s)) return;
        s.LastFrame = null;
        s.LastHash = null;
        s.Disconnected = true;
    }

    /// <summary>
    /// Every configured VM's health at <paramref name="now"/> (in configuration order). Changes
    /// since the previous evaluation are appended to <paramref name="transitions"/> when given.
    /// </summary>
    public IReadOnlyDictionary<string, VmHealth> Evaluate(TimeSpan now, ICollection<HealthTransition>? transitions = null)
    {
        var result = new Dictionary<string, VmHealth>(_states.Count, StringComparer.Ordinal);
        foreach (var s in _states)
        {
            var (health, reason) = Decide(s, now);
            result[s.Config.Name] = health;
            if (health != s.Reported)
            {
                transitions?.Add(new HealthTransition(s.Config.Name, s.Reported, health, now, reason));
                s.Reported = health;
            }
        }
        return result;
    }

    /// <summary>The health last returned by <see cref="Evaluate"/> (NoSignal before the first call or for an unknown VM).</summary>
    public VmHealth HealthOf(string vm) => _byName.TryGetValue(vm, out var s) ? s.Reported : VmHealth.NoSignal;

    private static (VmHealth, string) Decide(State s, TimeSpan now)
    {
        var period = s.Config.FramePeriod;
        if (s.LastFrame is not { } last)
            return (VmHealth.NoSignal, s.Disconnected ? "disconnected" : "no frame yet");
        var age = now - last;
        if (age > period)
        {
            string what = s.Config.ContentMustChange ? "no changed frame" : "no frame";
            return (VmHealth.Stale, $"{what} for {age.TotalMilliseconds:0.#} ms, period {period.TotalMilliseconds:0.#} ms");
        }
        return (VmHealth.Live, "frames arriving");
    }
}
