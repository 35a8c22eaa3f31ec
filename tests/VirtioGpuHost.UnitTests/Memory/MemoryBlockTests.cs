namespace VirtioGpuHost.UnitTests.Memory;

/// <summary>The reference count every MemoryBlock shares (NativeBlock and MappedBlock have their own tests).</summary>
public class MemoryBlockTests
{
    [Fact]
    public void Release_LastReference_FreesOnce()
    {
        var block = TrackedBlock.Allocate(64);
        block.AddRef();
        block.AddRef();

        block.Release();
        block.Release();
        Assert.Equal(0, block.Frees);
        block.Release();

        Assert.Equal(1, block.Frees);
    }

    [Fact]
    public void AddRef_ReturnsTheSameBlock()
    {
        var block = TrackedBlock.Allocate(64);
        Assert.Same(block, block.AddRef());
        block.Release();
        block.Release();
    }

    [Fact]
    public void AddRef_AfterFree_ThrowsAndDoesNotRevive()
    {
        var block = TrackedBlock.Allocate(64);
        block.Release();

        Assert.Throws<ObjectDisposedException>(() => block.AddRef());
        // A revived count would make this Release free the block a second time.
        Assert.Throws<InvalidOperationException>(() => block.Release());

        Assert.Equal(1, block.Frees);
    }

    [Fact]
    public void Release_TooOften_ThrowsWithoutFreeingAgain()
    {
        var block = TrackedBlock.Allocate(64);
        block.Release();

        Assert.Throws<InvalidOperationException>(() => block.Release());

        Assert.Equal(1, block.Frees);
    }

    [Fact]
    public void AddRefAndRelease_ConcurrentLeases_FreeExactlyOnceAtTheEnd()
    {
        var block = TrackedBlock.Allocate(64);
        Parallel.For(0, 8, _ =>
        {
            for (int i = 0; i < 10_000; i++)
            {
                block.AddRef();
                block.Release();
            }
        });
        Assert.Equal(0, block.Frees);

        block.Release();

        Assert.Equal(1, block.Frees);
    }
}
