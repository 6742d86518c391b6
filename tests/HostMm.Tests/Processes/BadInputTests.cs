using Hypervisor.HostMm.Vmas;
using Hypervisor.Notifier;
using static Hypervisor.HostMm.Tests.Processes.TestHosts;

namespace Hypervisor.HostMm.Tests.Processes;

public class BadInputTests
{
    [Test]
    public void RangesMustBeAlignedNonEmptyAndInsideUserSpace()
    {
        using var host = Create();
        var mm = host.CreateMm();
        var start = mm.Mmap(4 * Page, Protection.Read | Protection.Write);

        Assert.That(() => mm.Munmap(start + 1, Page), Throws.TypeOf<InvalidRangeException>().With.Message.Contains("multiple of 4096"));
        Assert.That(() => mm.Munmap(start, 0), Throws.TypeOf<InvalidRangeException>().With.Message.Contains("length 0"));
        Assert.That(() => mm.Mmap(0, Protection.Read), Throws.TypeOf<InvalidRangeException>());
        Assert.That(() => mm.Mprotect(Mm.UserSpaceEnd - Page, 2 * Page, Protection.Read),
            Throws.TypeOf<InvalidRangeException>().With.Message.Contains("leaves the user address space"));
    }

    [Test]
    public void HolesAreRefusedClearly()
    {
        using var host = Create();
        var mm = host.CreateMm();
        var start = mm.Mmap(2 * Page, Protection.Read | Protection.Write);
        mm.Munmap(start + Page, Page);

        Assert.That(() => mm.Mprotect(start, 2 * Page, Protection.Read), Throws.TypeOf<UnmappedRangeException>().With.Message.Contains("not fully mapped"));
        Assert.That(() => mm.Madvise(start, 2 * Page, Advice.DontNeed), Throws.TypeOf<UnmappedRangeException>());
        Assert.That(() => mm.Madvise(start, 2 * Page, Advice.Mergeable), Throws.TypeOf<UnmappedRangeException>().With.Message.Contains("Mergeable"));
        Assert.That(() => mm.Madvise(start, 2 * Page, Advice.HugePage), Throws.TypeOf<UnmappedRangeException>().With.Message.Contains("HugePage"));
    }

    [Test]
    public void InvalidProtectionAndFlagsAreRejected()
    {
        using var host = Create();
        var mm = host.CreateMm();
        Assert.That(() => mm.Mmap(Page, Protection.Write), Throws.TypeOf<InvalidProtectionException>());
        Assert.That(() => mm.Mmap(Page, (Protection)64), Throws.TypeOf<InvalidProtectionException>());
        Assert.That(() => mm.Mmap(Page, Protection.Read, (MmapFlags)128), Throws.TypeOf<ArgumentOutOfRangeException>());
        var start = mm.Mmap(Page, Protection.Read);
        Assert.That(() => mm.Mremap(start, Page, 2 * Page, MremapFlags.Fixed, start + (8 * Page)),
            Throws.TypeOf<ArgumentException>().With.Message.Contains("requires MremapFlags.MayMove"));
    }

    [Test]
    public void RunningOutOfHostMemoryIsAClearException()
    {
        using var host = Create(megabytes: 64);
        var mm = host.CreateMm();
        var start = mm.Mmap(128UL << 20, Protection.Read | Protection.Write);
        var error = Assert.Throws<OutOfMemoryFaultException>(() => mm.Write(start, new byte[128 << 20]))!;
        Assert.That(error.Message, Does.Contain("out of memory at"));
        Assert.That(host.Reclaim.Stats.OomFailures, Is.EqualTo(1));
        Assert.That(mm.Stats.OutOfMemoryFaults, Is.EqualTo(1));
    }
}
