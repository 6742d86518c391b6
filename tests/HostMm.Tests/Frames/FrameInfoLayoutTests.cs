using System.Runtime.CompilerServices;
using Hypervisor.HostMm.Frames;

namespace Hypervisor.HostMm.Tests.Frames;

public sealed class FrameInfoLayoutTests
{
    [Test]
    public void FrameInfo_IsAFortyByteStructWithNoManagedReferences()
    {
        Assert.That(RuntimeHelpers.IsReferenceOrContainsReferences<FrameInfo>(), Is.False, "no managed object per page");
        Assert.That(Unsafe.SizeOf<FrameInfo>(), Is.EqualTo(40));
    }

    [Test]
    public void AllocateParamName_IsPreferredNode()
    {
        using var memory = TestMemory.Create();
        Assert.That(
            () => memory.Allocate(9),
            Throws.TypeOf<ArgumentOutOfRangeException>().With.Property(nameof(ArgumentException.ParamName)).EqualTo("preferredNode"));
    }
}
