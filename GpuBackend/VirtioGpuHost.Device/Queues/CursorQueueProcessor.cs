using Microsoft.Extensions.Logging;
using VirtioGpuHost.Virtio;

namespace VirtioGpuHost.Device.Queues;

/// <summary>
/// Drives the cursor queue: every chain is executed and returned with used length 0. Returns
/// after <see cref="ControlQueueProcessor.CommandsPerTurn"/> chains with <see cref="HasMore"/>
/// set, so the caller can yield to the event loop.
/// </summary>
public sealed class CursorQueueProcessor(GpuDevice device, IGpuQueue queue, ILogger logger)
{
    public long Completed { get; private set; }

    /// <summary>True when the last <see cref="Process"/> stopped at its budget with work left.</summary>
    public bool HasMore { get; private set; }

    public void Process()
    {
        HasMore = false;
        int budget = ControlQueueProcessor.CommandsPerTurn;
        while (queue.IsReady)
        {
            if (budget-- == 0)
            {
                HasMore = true;
                return;
            }
            if (!queue.TryPop(out var chain, out var error))
            {
                if (error != QueueError.None)
                {
                    logger.LogError("{Conn}: cursor queue failed: {Error}", device.Name, error);
                    queue.Failed(error);
                    return;
                }
                if (queue.RecheckAfterEmpty()) continue;
                return;
            }
            int length = (int)Math.Min(chain!.ReadableLength, 4096UL);
            var bytes = new byte[length];
            if (chain.Read(queue.Memory, 0, bytes) == length) device.ExecuteCursor(new GpuRequest(bytes, chain.ReadableLength));
            else device.Errors.Report("cursor", $"chain {chain.Head}: readable buffers are not in guest memory");
            queue.Complete(chain.Head, 0);
            Completed++;
        }
    }
}
