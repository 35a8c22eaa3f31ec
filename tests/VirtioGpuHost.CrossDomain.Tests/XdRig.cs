using System.Diagnostics;
using System.Net.Sockets;
using VirtioGpuHost.Device;
using VirtioGpuHost.Device.Blobs;
using VirtioGpuHost.Device.Capsets;
using VirtioGpuHost.Device.Wire;
using VirtioGpuHost.FrontEnd;
using VirtioGpuHost.FrontEnd.CrossDomain;
using VirtioGpuHost.GuestMemory;
using VirtioGpuHost.Interop;
using VirtioGpuHost.TestKit;
using static VirtioGpuHost.FrontEnd.CrossDomain.CrossDomainGuestWire;

// Fd counts are process-wide: the tests of this assembly run one at a time.
[assembly: CollectionBehavior(DisableTestParallelization = true)]

namespace VirtioGpuHost.CrossDomain.Tests;

/// <summary>
/// The device in-process (DeviceRig: fake guest RAM, real queues, the reference driver) with
/// cross-domain contexts whose Wayland channel is a socketpair: <see cref="Peers"/> holds the
/// "server" ends the test reads and writes. Worker events reach the device through the rig's
/// manual scheduler, run whenever the test waits.
/// </summary>
internal sealed class XdRig : IDisposable
{
    private readonly Dictionary<uint, GuestAddress> _pages = new();

    public XdRig(int maxItems = 1024)
    {
        Rig = DeviceRig.Create(new GpuDeviceOptions
        {
            Blob = true,
            Capsets = [new CrossDomainCapset(host =>
            {
                var c = new CrossDomainContext(host, new CrossDomainOptions { OpenChannel = OpenPeer, Post = a => Rig!.Scheduler.Post(a), MaxItems = maxItems });
                Contexts.Add(c);
                return c;
            })],
        });
    }

    public DeviceRig Rig { get; }
    public GpuDriver Driver => Rig.Driver;
    public List<CrossDomainContext> Contexts { get; } = new();
    public List<FdHandle> Peers { get; } = new();
    public bool RefuseChannel { get; set; }

    private Socket? OpenPeer()
    {
        if (RefuseChannel) return null;
        var (mine, theirs) = UnixSocket.CreatePair();
        Peers.Add(theirs);
        return ToSocket(mine);
    }

    /// <summary>An FdHandle as a .NET Socket (what a Wayland server's ConnectInProcess returns).</summary>
    public static Socket ToSocket(FdHandle fd)
    {
        var socket = new Socket(new SafeSocketHandle(fd.DangerousGetHandle(), ownsHandle: true));
        fd.SetHandleAsInvalid(); // the Socket owns the fd now
        return socket;
    }

    public uint NewRing(uint ctx, uint id, uint size = 4096, bool attach = true)
    {
        var page = Rig.Ram.Allocator.Allocate(size);
        Rig.Ram.Span(page, (int)size).Clear();
        _pages[id] = page;
        GpuDriver.Expect(Driver.CreateBlob(id, VirtioGpuResourceCreateBlob.MemGuest, VirtioGpuResourceCreateBlob.FlagUseMappable, size, [new GuestBuffer(page, size)]), "ring blob");
        if (attach) GpuDriver.Expect(Driver.CtxAttachResource(ctx, id), "attach ring");
        return id;
    }

    public static uint QueryRingOf(uint ctx) => ctx * 100 + 1;
    public static uint ChannelRingOf(uint ctx) => ctx * 100 + 2;

    /// <summary>CTX_CREATE 5, two attached ring pages, INIT v1 Wayland.</summary>
    public CrossDomainContext Open(uint ctx)
    {
        GpuDriver.Expect(Driver.CtxCreate(ctx, CapsetId), "CTX_CREATE");
        NewRing(ctx, QueryRingOf(ctx));
        NewRing(ctx, ChannelRingOf(ctx));
        GpuDriver.Expect(Driver.Submit3D(ctx, Init(QueryRingOf(ctx), ChannelRingOf(ctx))), "INIT");
        return Contexts[^1];
    }

    public GpuReply Submit(uint ctx, byte[] commands, bool fence = false, byte? ring = null) => Driver.Submit3D(ctx, commands, fence, ring);

    public PendingCommand QueuePoll(uint ctx)
    {
        var p = Driver.Queue(Driver.Submit3DCommand(ctx, Poll(), fence: true, ringIdx: ChannelRing));
        Driver.KickControl();
        return p;
    }

    /// <summary>Runs the loop's posted work until the POLL comes back, or null after <paramref name="seconds"/>.</summary>
    public GpuReply? WaitPoll(PendingCommand p, double seconds = 5)
    {
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed.TotalSeconds < seconds)
        {
            Rig.Scheduler.RunPending();
            if (Driver.TryWait(p) is { } r) return r;
            Thread.Sleep(2);
        }
        return null;
    }

    public ReadOnlySpan<byte> Ring(uint id) => Rig.Ram.Span(_pages[id], 4096);

    public ChannelMessage ChannelMessageOf(uint ctx) =>
        ChannelMessage.Parse(Ring(ChannelRingOf(ctx)), out var why) ?? throw new InvalidOperationException(why);

    public ImageRequirementsReply Requirements(uint ctx, uint width, uint height, uint format)
    {
        GpuDriver.Expect(Submit(ctx, GetImageRequirements(width, height, format), fence: true, ring: QueryRing), "GET_IMAGE_REQUIREMENTS");
        return ImageRequirementsReply.Parse(Ring(QueryRingOf(ctx)));
    }

    public GpuReply CreateHostBlob(uint ctx, uint id, ulong blobId, ulong size) =>
        Driver.CreateBlob(id, VirtioGpuResourceCreateBlob.MemHost3D, VirtioGpuResourceCreateBlob.FlagUseMappable | VirtioGpuResourceCreateBlob.FlagUseShareable, size, blobId: blobId, ctxId: ctx);

    public BlobResource Blob(uint id) => (BlobResource)Rig.Device.Resources[id];

    /// <summary>A HOST3D blob made from GET_IMAGE_REQUIREMENTS, attached to the context, filled with <paramref name="fill"/>.</summary>
    public BlobResource ImageBlob(uint ctx, uint id, uint width, uint height, byte fill)
    {
        var reqs = Requirements(ctx, width, height, DrmFormatXrgb8888);
        GpuDriver.Expect(CreateHostBlob(ctx, id, reqs.BlobId, reqs.Size), "CREATE_BLOB HOST3D");
        GpuDriver.Expect(Driver.CtxAttachResource(ctx, id), "attach blob");
        var blob = Blob(id);
        blob.HostMemory!.AsSpan(0, (int)reqs.Size).Fill(fill);
        return blob;
    }

    /// <summary>Reads what the context sent to a peer: data and fds (waits up to 5 s).</summary>
    public static (byte[] Data, List<FdHandle> Fds) ReadPeer(FdHandle peer, int max = 8192)
    {
        Assert.True(Poller.WaitReadable(peer, 5000), "the context sent nothing to the Wayland peer");
        var buffer = new byte[max];
        var fds = new List<FdHandle>();
        var status = UnixSocket.Receive(peer, buffer, fds, out int n);
        Assert.Equal(IoStatus.Ok, status);
        return (buffer[..n], fds);
    }

    /// <summary>Open fds of the kinds contexts and the proxy create (assemblies the runtime loads meanwhile are not counted).</summary>
    public static List<string> OpenFds()
    {
        var list = new List<string>();
        foreach (var f in Directory.GetFiles("/proc/self/fd"))
        {
            string? target;
            try { target = new FileInfo(f).LinkTarget; }
            catch (IOException) { continue; }
            if (target is not null && (target.StartsWith("socket:", StringComparison.Ordinal) || target.StartsWith("anon_inode:", StringComparison.Ordinal) ||
                target.StartsWith("pipe:", StringComparison.Ordinal) || target.StartsWith("/memfd:", StringComparison.Ordinal)))
                list.Add($"{Path.GetFileName(f)}→{target}");
        }
        return list;
    }

    /// <summary>The error lines the device logged (one per refused command).</summary>
    public string Log => string.Join("\n", Rig.Logs.Lines.Select(l => l.Message));

    public void Dispose()
    {
        Rig.Dispose(); // destroys the contexts: workers stop, items close
        foreach (var p in Peers) p.Dispose();
    }
}
