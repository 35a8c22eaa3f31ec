using Microsoft.Extensions.Logging;
using VirtioGpuHost.Device.Capsets;
using VirtioGpuHost.Device.Contexts;
using VirtioGpuHost.Device.Wire;

namespace VirtioGpuHost.Device;

// CTX_CREATE, CTX_DESTROY, CTX_ATTACH_RESOURCE, CTX_DETACH_RESOURCE, SUBMIT_3D and their fences.
public sealed partial class GpuDevice
{
    private readonly Dictionary<uint, GpuContext> _contexts = new();

    /// <summary>Fences of SUBMIT_3D that contexts have not signalled yet.</summary>
    public FenceTable Fences { get; } = new();

    /// <summary>Ids of the live contexts.</summary>
    public IReadOnlyCollection<uint> ContextIds => _contexts.Keys;

    /// <summary>The ids of the resources attached to a context (empty if it does not exist).</summary>
    public IReadOnlyCollection<uint> ContextResources(uint ctxId) =>
        _contexts.TryGetValue(ctxId, out var c) ? c.Resources.Keys : [];

    /// <summary>
    /// Typed contexts (context_init = the id of a capset we report) get their capset's
    /// implementation. context_init 0 asks for a virgl context: with VirglCompat (we offered the
    /// VIRGL bit, so the Linux driver creates one for every DRM client) it is created without an
    /// implementation, so resource attach/detach bookkeeping works and SUBMIT_3D is refused;
    /// without VirglCompat it is refused with ERR_INVALID_PARAMETER.
    /// </summary>
    private GpuResponse CtxCreate(GpuRequest r)
    {
        const string cmd = "CTX_CREATE";
        if (!r.TryRead<VirtioGpuCtxCreate>(out var c)) return Short(r, cmd, 96);
        uint id = c.Header.CtxId;
        if (id == 0) return Fail(VirtioGpuCtrlType.ErrInvalidContextId, cmd, "ctx_id 0 is reserved");
        if (_contexts.ContainsKey(id)) return Fail(VirtioGpuCtrlType.ErrInvalidContextId, cmd, $"ctx_id {id} already exists");
        if (c.NameLength > VirtioGpuCtxCreate.MaxDebugName)
            return Fail(VirtioGpuCtrlType.ErrInvalidParameter, cmd, $"ctx_id {id}: nlen {c.NameLength} exceeds {VirtioGpuCtxCreate.MaxDebugName}");
        if ((c.ContextInit & ~VirtioGpuCtxCreate.CapsetIdMask) != 0)
            return Fail(VirtioGpuCtrlType.ErrInvalidParameter, cmd, $"ctx_id {id}: context_init 0x{c.ContextInit:x} has bits above the capset id");
        uint capsetId = c.ContextInit & VirtioGpuCtxCreate.CapsetIdMask;
        if (capsetId == 0 && !_options.VirglCompat)
            return Fail(VirtioGpuCtrlType.ErrInvalidParameter, cmd, $"ctx_id {id}: context_init 0 asks for a virgl context, which is not implemented (VIRGL was not offered)");
        ICapset? capset = null;
        if (capsetId != 0 && (capset = Capsets.ById(capsetId)) is null)
            return Fail(VirtioGpuCtrlType.ErrInvalidParameter, cmd, $"ctx_id {id}: capset {capsetId} in context_init is not reported by this device");
        if (_contexts.Count >= _options.MaxContexts)
            return Fail(VirtioGpuCtrlType.ErrOutOfMemory, cmd, $"ctx_id {id}: limit of {_options.MaxContexts} contexts reached");
        var ctx = new GpuContext(this, id, capsetId, DebugName(c.DebugName, (int)c.NameLength));
        try
        {
            ctx.Impl = capset?.CreateContext(ctx); // a virgl placeholder has none
        }
        catch (Exception e)
        {
            _log.LogError(e, "{Conn}: creating a context of capset {Capset} failed", Name, capsetId);
            return Fail(VirtioGpuCtrlType.ErrUnspec, cmd, $"ctx_id {id}: the capset {capsetId} context could not be created: {e.Message}");
        }
        _contexts.Add(id, ctx);
        return GpuResponse.Ok;
    }

    /// <summary>debug_name as printable ASCII (it goes into log lines), up to a NUL.</summary>
    private static string DebugName(ReadOnlySpan<byte> name, int length)
    {
        var chars = new char[length];
        int n = 0;
        foreach (byte b in name[..length])
        {
            if (b == 0) break;
            chars[n++] = b is >= 0x20 and < 0x7F ? (char)b : '?';
        }
        return new string(chars, 0, n);
    }

    private GpuResponse CtxDestroy(GpuRequest r)
    {
        const string cmd = "CTX_DESTROY";
        if (!r.HasHeader) return Short(r, cmd, 24);
        uint id = r.Header.CtxId;
        if (!_contexts.TryGetValue(id, out var ctx)) return Fail(VirtioGpuCtrlType.ErrInvalidContextId, cmd, $"ctx_id {id} does not exist");
        DestroyContext(ctx);
        return GpuResponse.Ok;
    }

    private GpuResponse CtxAttachResource(GpuRequest r)
    {
        const string cmd = "CTX_ATTACH_RESOURCE";
        if (!TryGetContextAndResource(r, cmd, out var ctx, out var res, out var error)) return error;
        if (ctx.Resources.TryAdd(res.Id, res))
        {
            res.Contexts.Add(ctx.ContextId);
            ctx.Impl?.ResourceAttached(res);
        }
        // Attaching twice is harmless (virglrenderer and rutabaga treat it as a no-op too).
        return GpuResponse.Ok;
    }

    private GpuResponse CtxDetachResource(GpuRequest r)
    {
        const string cmd = "CTX_DETACH_RESOURCE";
        if (!TryGetContextAndResource(r, cmd, out var ctx, out var res, out var error)) return error;
        // Detaching what is not attached changes nothing: answered OK like attaching twice.
        if (ctx.Resources.Remove(res.Id))
        {
            res.Contexts.Remove(ctx.ContextId);
            ctx.Impl?.ResourceDetached(res);
        }
        return GpuResponse.Ok;
    }

    private bool TryGetContextAndResource(GpuRequest r, string cmd, out GpuContext ctx, out GpuResource res, out GpuResponse error)
    {
        ctx = null!;
        res = null!;
        error = default;
        if (!r.TryRead<VirtioGpuCtxResource>(out var c))
        {
            error = Short(r, cmd, 32);
            return false;
        }
        if (!_contexts.TryGetValue(c.Header.CtxId, out ctx!))
        {
            error = Fail(VirtioGpuCtrlType.ErrInvalidContextId, cmd, $"ctx_id {c.Header.CtxId} does not exist");
            return false;
        }
        if (!_resources.TryGetValue(c.ResourceId, out res!))
        {
            error = Fail(VirtioGpuCtrlType.ErrInvalidResourceId, cmd, $"ctx_id {c.Header.CtxId}: resource_id {c.ResourceId} does not exist");
            return false;
        }
        return true;
    }

    /// <summary>
    /// SUBMIT_3D: the context's command stream goes to its implementation. A fenced submit's fence
    /// is created in the context: signalled at once, or held (the response waits on its timeline,
    /// the ring goes on) until the context signals it.
    /// </summary>
    private GpuResponse Submit3D(GpuRequest r)
    {
        const string cmd = "SUBMIT_3D";
        if (!r.TryRead<VirtioGpuSubmit3D>(out var c)) return Short(r, cmd, 32);
        uint id = c.Header.CtxId;
        if (!_contexts.TryGetValue(id, out var ctx)) return Fail(VirtioGpuCtrlType.ErrInvalidContextId, cmd, $"ctx_id {id} does not exist");
        if (32UL + c.Size > (ulong)r.Bytes.Length)
        {
            return 32UL + c.Size <= r.ReadableLength
                ? Fail(VirtioGpuCtrlType.ErrInvalidParameter, cmd, $"ctx_id {id}: command stream of {c.Size} bytes exceeds the {GpuRequest.MaxBytes - 32}-byte limit")
                : Fail(VirtioGpuCtrlType.ErrInvalidParameter, cmd, $"ctx_id {id}: size {c.Size} but only {r.ReadableLength - 32} bytes follow the command");
        }
        bool ringIdx = (c.Header.Flags & VirtioGpuCtrlHeader.FlagInfoRingIdx) != 0;
        if (c.Header.HasFence && ringIdx && c.Header.RingIdx >= VirtioGpuLimits.MaxRings)
            return Fail(VirtioGpuCtrlType.ErrInvalidParameter, cmd, $"ctx_id {id}: ring_idx {c.Header.RingIdx} is not below {VirtioGpuLimits.MaxRings}");
        if (ctx.Impl is not { } impl)
            return Fail(VirtioGpuCtrlType.ErrUnspec, cmd, $"ctx_id {id} (capset {ctx.CapsetId}): not supported: this context type has no command implementation");

        GpuContextError? refused;
        try
        {
            refused = impl.Submit(r.Bytes.AsSpan(32, (int)c.Size));
        }
        catch (Exception e)
        {
            _log.LogError(e, "{Conn}: ctx {Ctx} (capset {Capset}) failed on SUBMIT_3D", Name, id, ctx.CapsetId);
            refused = new GpuContextError(VirtioGpuCtrlType.ErrUnspec, $"the context failed: {e.Message}");
        }
        if (refused is not null) return Fail(refused.Type, cmd, $"ctx_id {id}: {refused.Detail}");
        if (!c.Header.HasFence) return GpuResponse.Ok;

        var timeline = FenceTimeline.Of(c.Header);
        var fence = Fences.Add(timeline, c.Header.FenceId, id);
        bool signalled;
        try
        {
            signalled = impl.CreateFence(ringIdx ? c.Header.RingIdx : null, c.Header.FenceId);
        }
        catch (Exception e)
        {
            _log.LogError(e, "{Conn}: ctx {Ctx} failed to create fence {Fence}", Name, id, c.Header.FenceId);
            signalled = true; // never hold a response for a context that cannot signal it
        }
        if (signalled) Fences.Signal(timeline, c.Header.FenceId);
        return fence.Signalled.IsCompleted ? GpuResponse.Ok : GpuResponse.AfterFence(fence);
    }

    private void DestroyContext(GpuContext ctx)
    {
        ctx.Destroyed = true;
        _contexts.Remove(ctx.ContextId);
        foreach (var res in ctx.Resources.Values)
        {
            res.Contexts.Remove(ctx.ContextId);
            CallContext(ctx, i => i.ResourceDetached(res));
        }
        ctx.Resources.Clear();
        // Held responses of this context's fences go out now: nothing will signal them any more.
        Fences.SignalAll(ctx.ContextId);
        CallContext(ctx, i => i.Dispose());
    }

    private void DestroyAllContexts()
    {
        foreach (var ctx in _contexts.Values.ToArray()) DestroyContext(ctx);
        Fences.SignalAll(null);
    }

    /// <summary>A resource goes away: every context it is attached to lets go of it.</summary>
    private void DetachFromContexts(GpuResource res)
    {
        foreach (uint id in res.Contexts)
        {
            if (!_contexts.TryGetValue(id, out var ctx)) continue;
            ctx.Resources.Remove(res.Id);
            CallContext(ctx, i => i.ResourceDetached(res));
        }
        res.Contexts.Clear();
    }

    /// <summary>Calls a context's implementation where no error can be answered: a failure is logged.</summary>
    private void CallContext(GpuContext ctx, Action<IGpuContext> call)
    {
        if (ctx.Impl is not { } impl) return;
        try { call(impl); }
        catch (Exception e) { _log.LogError(e, "{Conn}: ctx {Ctx} (capset {Capset}) failed", Name, ctx.ContextId, ctx.CapsetId); }
    }
}
