using VirtioGpuHost.Interop;

namespace VirtioGpuHost.UnitTests.Interop;

/// <summary>Per-thread nice values: setpriority on a thread id changes that thread only, as the kernel reports it.</summary>
public class ThreadSchedulingTests
{
    [Fact]
    public void TrySetNice_OnOwnThread_KernelReportsItForThatThreadOnly()
    {
        int mainTid = ThreadScheduling.CurrentThreadId;
        int mainNice = ThreadScheduling.ReadNiceFromProc(mainTid);
        int tid = 0, errno = -1, fromProc = int.MinValue, fromGet = int.MinValue;
        var t = new Thread(() =>
        {
            tid = ThreadScheduling.CurrentThreadId;
            // Raising the nice value needs no privilege; start from whatever the thread inherited.
            int target = Math.Min(ThreadScheduling.GetNice(tid) + 7, ThreadScheduling.MaxNice);
            errno = ThreadScheduling.TrySetNice(tid, target);
            fromProc = ThreadScheduling.ReadNiceFromProc(tid) - target;
            fromGet = ThreadScheduling.GetNice(tid) - target;
        });
        t.Start();
        t.Join();
        Assert.Equal(0, errno);
        Assert.NotEqual(mainTid, tid);
        Assert.Equal(0, fromProc);
        Assert.Equal(0, fromGet);
        Assert.Equal(mainNice, ThreadScheduling.ReadNiceFromProc(mainTid)); // the caller's own thread is untouched
    }

    [Fact]
    public void TrySetNice_NoSuchThread_ReturnsErrno()
    {
        Assert.NotEqual(0, ThreadScheduling.TrySetNice(int.MaxValue - 1, 5));
    }
}
