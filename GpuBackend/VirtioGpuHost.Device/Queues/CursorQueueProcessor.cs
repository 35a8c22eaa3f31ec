using Microsoft.Extensions.Logging;
using VirtioGpuHost.Virtio;

namespace VirtioGpuHost.Device.Queues;

/// <summary>Drives the cursor queue: every chain is executed and returned with used length 0.</summary>
public sealed class CursorQueueProcessor(GpuDevice device, IGpuQueue queue, ILogger logger)
{
    public long Completed { get; private set; }

    public void Process()
    {
        while (queue.IsReady)
        {
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
