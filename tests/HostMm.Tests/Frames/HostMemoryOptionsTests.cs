using Hypervisor.HostMm.Frames;

namespace Hypervisor.HostMm.Tests.Frames;

public sealed class HostMemoryOptionsTests
{
    [Test]
    public void SizeNotMultipleOfTwoMiBPerNode_IsRejectedNamingTheValue()
    {
        // 66 MiB is a multiple of 2 MiB but gives each of 2 nodes 33 MiB.
        var bytes = 66UL << 20;
        var ex = Assert.Throws<InvalidHostMemoryOptionsException>(() => TestMemory.Create(totalBytes: bytes));
        Assert.That(ex!.Message, Does.Contain(bytes.ToString()).And.Contain("2 MiB per node"));
        Assert.That(ex.ParamName, Is.EqualTo(nameof(HostMemoryOptions.TotalBytes)));
    }

    [Test]
    public void SizeNotPageMultiple_IsRejected()
    {
        var bytes = (64UL << 20) + 4096;
        Assert.That(
            () => TestMemory.Create(totalBytes: bytes, nodes: 1),
            Throws.TypeOf<InvalidHostMemoryOptionsException>().With.Message.Contains(bytes.ToString()));
    }

    [Test]
    public void ZeroNodes_IsRejectedNamingTheValue()
    {
        Assert.That(
            () => TestMemory.Create(nodes: 0),
            Throws.TypeOf<InvalidHostMemoryOptionsException>()
                .With.Message.Contains("NodeCount 0")
                .And.Property(nameof(ArgumentException.ParamName)).EqualTo(nameof(HostMemoryOptions.NodeCount)));
    }

    [Test]
    public void TooManyNodes_IsRejected()
    {
        Assert.That(
            () => TestMemory.Create(nodes: HostMemoryOptions.MaxNodeCount + 1),
            Throws.TypeOf<InvalidHostMemoryOptionsException>().With.Message.Contains($"NodeCount {HostMemoryOptions.MaxNodeCount + 1}"));
    }

    [Test]
    public void TooSmall_IsRejectedNamingTheValue()
    {
        var bytes = 32UL << 20;
        Assert.That(
            () => TestMemory.Create(totalBytes: bytes),
            Throws.TypeOf<InvalidHostMemoryOptionsException>().With.Message.Contains(bytes.ToString()).And.Message.Contains("64 MiB"));
    }

    [Test]
    public void TooLarge_IsRejectedBeforeAnyAllocation()
    {
        var bytes = HostMemoryOptions.MaxTotalBytes + (4UL << 20);
        Assert.That(
            () => TestMemory.Create(totalBytes: bytes),
            Throws.TypeOf<InvalidHostMemoryOptionsException>().With.Message.Contains(bytes.ToString()));
    }

    [Test]
    public void NullOptions_IsRejected()
    {
        Assert.That(() => new HostMemory(null!), Throws.ArgumentNullException);
    }

    [Test]
    public void ThreeNodes_SplitEvenly()
    {
        using var memory = TestMemory.Create(totalBytes: 72UL << 20, nodes: 3);
        Assert.That(memory.NodeCount, Is.EqualTo(3));
        for (var node = 0; node < 3; node++)
        {
            var info = memory.GetNode(node);
            Assert.That(info.FrameCount, Is.EqualTo(6144));
            Assert.That(info.FirstPfn.Value, Is.EqualTo((ulong)(node * 6144)));
            Assert.That(info.FreeFrames, Is.EqualTo(6144));
        }
    }

    [Test]
    public void DefaultNodeCount_IsTwo()
    {
        var options = new HostMemoryOptions { TotalBytes = TestMemory.SixtyFourMiB };
        using var memory = new HostMemory(options);
        Assert.That(memory.NodeCount, Is.EqualTo(2));
        Assert.That(memory.AuditFreedFrames, Is.False);
    }
}
