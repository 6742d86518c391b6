using Hypervisor.HostMm.Frames;
using Hypervisor.Notifier;

namespace Hypervisor.HostMm.Tests.Frames;

public sealed class FrameContentsTests
{
    [Test]
    public void FrameEquals_ComparesAllFourKiB()
    {
        using var memory = TestMemory.Create();
        var a = memory.Allocate(0, AllocationFlags.Zero);
        var b = memory.Allocate(1, AllocationFlags.Zero);
        Assert.That(memory.FrameEquals(a, b), Is.True);
        Assert.That(memory.FrameEquals(a, a), Is.True);

        memory.FrameBytes(b)[4095] = 1;
        Assert.That(memory.FrameEquals(a, b), Is.False, "last byte differs");
        memory.FrameBytes(b)[4095] = 0;
        memory.FrameBytes(b)[0] = 1;
        Assert.That(memory.FrameEquals(a, b), Is.False, "first byte differs");
        memory.FrameBytes(b)[0] = 0;
        memory.FrameBytes(a)[1000] = 0x80;
        Assert.That(memory.FrameEquals(b, a), Is.False, "a middle byte differs");
    }

    [Test]
    public void CopyFrame_CopiesEveryByte()
    {
        using var memory = TestMemory.Create();
        var from = memory.Allocate(0);
        var to = memory.Allocate(1, AllocationFlags.Zero);
        new Random(3).NextBytes(memory.FrameBytes(from));
        memory.CopyFrame(from, to);
        Assert.That(memory.FrameBytes(to).SequenceEqual(memory.FrameBytes(from)), Is.True);
        Assert.That(memory.FrameEquals(from, to), Is.True);
        Assert.That(memory.Checksum(to), Is.EqualTo(memory.Checksum(from)));
    }

    [Test]
    public unsafe void FrameAddress_IsTheSameMemoryAsFrameBytesInATwoMiBAlignedArena()
    {
        using var memory = TestMemory.Create();
        var first = memory.FrameAddress(new Pfn(0));
        Assert.That((ulong)first % (2UL << 20), Is.Zero);
        Assert.That((ulong)memory.FrameAddress(new Pfn(5)) - (ulong)first, Is.EqualTo(5UL * 4096));

        var pfn = memory.Allocate(1);
        memory.FrameAddress(pfn)[17] = 0x5A;
        Assert.That(memory.FrameBytes(pfn)[17], Is.EqualTo(0x5A));
        Assert.That(memory.FrameBytes(pfn).Length, Is.EqualTo(4096));
    }
}
