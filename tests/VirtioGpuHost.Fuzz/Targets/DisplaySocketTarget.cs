using System.Buffers.Binary;
using VirtioGpuHost.Backend;
using VirtioGpuHost.GuestMemory;
using VirtioGpuHost.Interop;
using VirtioGpuHost.VhostUser.Display;
using VirtioGpuHost.VhostUser.Transport;
using VirtioGpuHost.VhostUser.Wire;

namespace VirtioGpuHost.Fuzz.Targets;

/// <summary>
/// What the display (QEMU's side of GPU_SET_SOCKET) sends back: the real
/// <see cref="DisplaySocketClient"/> (reply framing, matching replies to requests, abandoned
/// requests and their late replies, EOF) under the real <see cref="DisplaySocketDisplay"/>, on a
/// real <see cref="EventLoop"/> over a socketpair.
/// </summary>
/// <remarks>
/// Input: <c>[u8 script]</c> then chunks <c>[u16 length][bytes]</c>, each written to the socket
/// as the display's output; the loop runs a few turns between chunks (so replies to one chunk
/// can trigger the next requests), then the display half-closes. script bit 0: every request
/// times out at once (replies arrive late, for abandoned requests); bit 1 GET_DISPLAY_INFO after
/// negotiating; bit 2 GET_EDID 0; bit 3 a second GET_EDID at the same time; bit 4 SCANOUT,
/// UPDATE (4x4), CURSOR_UPDATE and CURSOR_POS before negotiating; bit 5 the queries once more
/// after the first round. Expected exceptions: none (a bad reply closes the display socket;
/// the device keeps running). Checks: the client ends closed (it saw EOF) and the loop stops.
/// </remarks>
public sealed class DisplaySocketTarget : IFuzzTarget
{
    public string Name => "display-socket";
    public string Description => "display replies (GET_PROTOCOL_FEATURES, GET_DISPLAY_INFO, GET_EDID) into DisplaySocketClient/DisplaySocketDisplay";
    public int MaxInputLength => 16384;

    private const int TurnsBetweenChunks = 4;

    public void Run(ReadOnlySpan<byte> input)
    {
        if (input.Length < 1) return;
        byte script = input[0];
        var chunks = new List<byte[]>();
        for (int pos = 1; pos + 2 <= input.Length;)
        {
            int n = Math.Min(BinaryPrimitives.ReadUInt16LittleEndian(input[pos..]), input.Length - pos - 2);
            chunks.Add(input.Slice(pos + 2, n).ToArray());
            pos += 2 + n;
        }

        var (ours, theirs) = UnixSocket.CreatePair();
        using var peer = theirs;
        using var loop = new EventLoop();
        var client = new DisplaySocketClient(ours, loop, FormattingLogger.Instance, "fuzz",
            (script & 1) != 0 ? TimeSpan.Zero : TimeSpan.FromMinutes(1));
        var display = new DisplaySocketDisplay(client);
        var pixels = NativeBlock.Allocate(4 * 4 * 4);
        Exception? failure = null;
        client.Closed += () => loop.Post(loop.Stop);
        loop.Post(() =>
        {
            _ = Script(display, client, script, pixels).ContinueWith(t => failure ??= t.Exception, TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously);
            WriteChunks(loop, theirs, chunks, 0, TurnsBetweenChunks);
        });
        // Safety net for the in-process mode: EOF must close the client; if it does not, stop.
        using var deadline = loop.Schedule(TimeSpan.FromSeconds(10), () => { failure ??= new FuzzHangException("the display client did not close after EOF"); loop.Stop(); });
        try
        {
            loop.Run();
        }
        finally
        {
            display.Dispose();
            pixels.Release();
        }
        if (failure is not null) throw new FuzzInvariantException("the display script failed: " + failure);
        if (!client.IsClosed) throw new FuzzInvariantException("the loop stopped with the display client still open");
    }

    /// <summary>Writes chunk <paramref name="i"/> after <paramref name="turns"/> loop turns (timers of 0 run one per turn, after the poll).</summary>
    private static void WriteChunks(EventLoop loop, FdHandle socket, List<byte[]> chunks, int i, int turns)
    {
        if (turns > 0)
        {
            loop.Schedule(TimeSpan.Zero, () => WriteChunks(loop, socket, chunks, i, turns - 1));
            return;
        }
        if (i == chunks.Count)
        {
            UnixSocket.ShutdownWrite(socket);
            return;
        }
        var status = UnixSocket.Send(socket, chunks[i], default, out _);
        if (status != IoStatus.Ok && chunks[i].Length > 0)
        {
            UnixSocket.ShutdownWrite(socket); // the client closed or its buffer is full: end here
            return;
        }
        WriteChunks(loop, socket, chunks, i + 1, TurnsBetweenChunks);
    }

    /// <summary>What the device does with its display: negotiate, query, draw.</summary>
    private static async Task Script(DisplaySocketDisplay display, DisplaySocketClient client, byte script, MemoryBlock pixels)
    {
        if ((script & 16) != 0)
        {
            client.SendScanout(0, 4, 4);
            client.SendUpdate(0, 0, 0, 4, 4, [new IoSegment(pixels.Address, 64)], pixels);
            client.SendCursorUpdate(0, 1, 2, 0, 0, new byte[GpuDisplayWire.CursorSize * GpuDisplayWire.CursorSize * 4]);
            client.SendCursorPos(0, 3, 4, hide: false);
        }
        await display.NegotiateAsync(() => { });
        for (int round = 0; round < ((script & 32) != 0 ? 2 : 1); round++)
        {
            var queries = new List<Task<byte[]?>>();
            if ((script & 2) != 0 && display.QueryDisplayInfo() is { } info) queries.Add(info);
            if ((script & 4) != 0 && display.QueryEdid(0) is { } edid) queries.Add(edid);
            if ((script & 8) != 0 && display.QueryEdid(1) is { } edid1) queries.Add(edid1);
            foreach (var q in queries)
            {
                var reply = await q;
                if (reply is not null && reply.Length is not (8 or GpuDisplayWire.DisplayInfoReplySize or GpuDisplayWire.EdidReplySize))
                    throw new FuzzInvariantException($"a reply of {reply.Length} bytes was accepted");
            }
        }
    }

    // ---- seeds ----

    public IEnumerable<(string Name, byte[] Data)> Seeds()
    {
        var features = Reply(GpuDisplayRequest.GetProtocolFeatures, BitConverter.GetBytes((ulong)GpuDisplayProtocolFeatures.Edid));
        var info = new byte[GpuDisplayWire.DisplayInfoReplySize];
        BinaryPrimitives.WriteUInt32LittleEndian(info, 0x1101); // OK_DISPLAY_INFO
        BinaryPrimitives.WriteUInt32LittleEndian(info.AsSpan(24 + 8), 1024); // pmodes[0].r.width
        BinaryPrimitives.WriteUInt32LittleEndian(info.AsSpan(24 + 12), 768);
        BinaryPrimitives.WriteUInt32LittleEndian(info.AsSpan(24 + 16), 1); // enabled
        var edid = new byte[GpuDisplayWire.EdidReplySize];
        BinaryPrimitives.WriteUInt32LittleEndian(edid, 0x1104); // OK_EDID
        BinaryPrimitives.WriteUInt32LittleEndian(edid.AsSpan(24), 128);
        yield return ("negotiate", Seed(0, features));
        yield return ("display-info", Seed(2, features, Reply(GpuDisplayRequest.GetDisplayInfo, info)));
        yield return ("edid-twice", Seed(4 | 8 | 16, features, Reply(GpuDisplayRequest.GetEdid, edid), Reply(GpuDisplayRequest.GetEdid, edid)));
        yield return ("late-replies", Seed(1 | 2 | 4, features, Reply(GpuDisplayRequest.GetDisplayInfo, info), Reply(GpuDisplayRequest.GetEdid, edid)));
        yield return ("two-rounds", Seed(2 | 32, features, Reply(GpuDisplayRequest.GetDisplayInfo, info), Reply(GpuDisplayRequest.GetDisplayInfo, info)));
    }

    private static byte[] Reply(GpuDisplayRequest request, byte[] payload)
    {
        var m = new byte[VhostUserHeader.Length + payload.Length];
        new VhostUserHeader((uint)request, VhostUserHeader.FlagReply, (uint)payload.Length).Write(m);
        payload.CopyTo(m, VhostUserHeader.Length);
        return m;
    }

    private static byte[] Seed(byte script, params byte[][] chunks)
    {
        var b = new List<byte> { script };
        foreach (var c in chunks)
        {
            b.Add((byte)c.Length);
            b.Add((byte)(c.Length >> 8));
            b.AddRange(c);
        }
        return b.ToArray();
    }
}
