using Hypervisor.HostMm.Frames;
using Hypervisor.Notifier;

namespace Hypervisor.HostMm.Tests.Frames;

public class BatchAndZeroingTests
{
    [Test]
    public void PutManyFreesOnlyFramesWhoseLastReferenceGoes()
    {
        using var memory = new HostMemory(new HostMemoryOptions { TotalBytes = 64UL << 20, AuditFreedFrames = true });
        var observer = new RecordingObserver(memory);
        memory.Observer = observer;
        var initialFree = memory.FreeFrames;
        var single = Enumerable.Range(0, 40).Select(i => memory.Allocate(i % 2)).ToArray();
        var shared = memory.Allocate(0);
        memory.Get(shared);

        var freed = memory.PutMany([.. single, shared]);

        Assert.That(freed, Is.EqualTo(40));
        Assert.That(memory.IsFree(shared), Is.False, "one reference is left");
        Assert.That(single.All(memory.IsFree), Is.True);
        Assert.That(memory.FreeFrames, Is.EqualTo(initialFree - 1));
        Assert.That(observer.Freed.Select(f => f.Pfn), Is.EquivalentTo(single));
        Assert.That(observer.Freed.All(f => f.WasFree), Is.True, "the observer hears of a frame once it is on the free list");

        memory.Put(shared);
        Assert.That(memory.FreeFrames, Is.EqualTo(initialFree));
        var again = Enumerable.Range(0, 41).Select(_ => memory.Allocate(0, AllocationFlags.ExactNode)).ToArray();
        Assert.That(again.Distinct().Count(), Is.EqualTo(41), "the chained free list hands every frame out once");
    }

    [Test]
    public void PutManyRejectsADoublePutAfterFreeingTheFramesBeforeIt()
    {
        using var memory = new HostMemory(new HostMemoryOptions { TotalBytes = 64UL << 20 });
        var initialFree = memory.FreeFrames;
        var a = memory.Allocate(0);
        var b = memory.Allocate(0);

        Assert.That(() => memory.PutMany([a, b, a]), Throws.TypeOf<FrameStateException>().With.Message.Contains("double put"));
        Assert.That(memory.FreeFrames, Is.EqualTo(initialFree), "frames unlinked before the failure still reached the free list");
    }

    [TestCase(FrameZeroing.Path.Scalar)]
    [TestCase(FrameZeroing.Path.NonTemporal256)]
    [TestCase(FrameZeroing.Path.NonTemporal512)]
    public void EveryZeroingPathZeroesTheWholeFrame(FrameZeroing.Path path)
    {
        if (path == FrameZeroing.Path.NonTemporal512 && !System.Runtime.Intrinsics.X86.Avx512F.IsSupported
            || path == FrameZeroing.Path.NonTemporal256 && !System.Runtime.Intrinsics.X86.Avx.IsSupported)
        {
            Assert.Ignore($"{path} needs an instruction set this CPU lacks");
        }

        var before = FrameZeroing.Current;
        FrameZeroing.Current = path;
        try
        {
            using var memory = new HostMemory(new HostMemoryOptions { TotalBytes = 64UL << 20 });
            var pfn = memory.Allocate(0);
            memory.FrameBytes(pfn).Fill(0xA5);
            memory.Put(pfn);

            var again = memory.Allocate(0, AllocationFlags.Zero);

            Assert.That(again, Is.EqualTo(pfn), "LIFO: the dirty frame comes back");
            Assert.That(memory.FrameBytes(again).ToArray(), Is.All.Zero);
        }
        finally
        {
            FrameZeroing.Current = before;
        }
    }

    [TestCase(FrameZeroing.Path.Scalar)]
    [TestCase(FrameZeroing.Path.NonTemporal256)]
    [TestCase(FrameZeroing.Path.NonTemporal512)]
    public unsafe void EveryZeroingPathClearsExactlyTheRunItIsGiven(FrameZeroing.Path path) // unsafe: ClearRun takes a raw pointer.
    {
        if (path == FrameZeroing.Path.NonTemporal512 && !System.Runtime.Intrinsics.X86.Avx512F.IsSupported
            || path == FrameZeroing.Path.NonTemporal256 && !System.Runtime.Intrinsics.X86.Avx.IsSupported)
        {
            Assert.Ignore($"{path} needs an instruction set this CPU lacks");
        }

        const int frames = 3;
        var bytes = (frames + 2) * (int)Paging.PageSize;
        var buffer = (byte*)System.Runtime.InteropServices.NativeMemory.AlignedAlloc((nuint)bytes, 64);
        var before = FrameZeroing.Current;
        FrameZeroing.Current = path;
        try
        {
            var all = new Span<byte>(buffer, bytes);
            all.Fill(0xA5);

            FrameZeroing.ClearRun(buffer + Paging.PageSize, frames);

            var page = (int)Paging.PageSize;
            Assert.That(all[..page].ToArray(), Is.All.EqualTo(0xA5), "the frame before the run is untouched");
            Assert.That(all.Slice(page, frames * page).ToArray(), Is.All.Zero);
            Assert.That(all[((frames + 1) * page)..].ToArray(), Is.All.EqualTo(0xA5), "the frame after the run is untouched");
        }
        finally
        {
            FrameZeroing.Current = before;
            System.Runtime.InteropServices.NativeMemory.AlignedFree(buffer);
        }
    }

    [Test]
    public void ANegativeRunLengthIsRejected()
    {
        unsafe
        {
            Assert.That(() => FrameZeroing.ClearRun(null, -1), Throws.TypeOf<ArgumentOutOfRangeException>().With.Message.Contains("frames"));
        }
    }
}
