using Hypervisor.HostMm.Vmas;
using Hypervisor.Notifier;
using static Hypervisor.HostMm.Tests.Processes.TestHosts;

namespace Hypervisor.HostMm.Tests.Processes;

public class DataTests
{
    [Test]
    public void FreshMemoryReadsAsZeroesThroughTheZeroPage()
    {
        using var host = Create();
        var mm = host.CreateMm();
        var start = mm.Mmap(2 * Page, Protection.Read | Protection.Write);
        var buffer = new byte[2 * Page];
        Array.Fill(buffer, (byte)0xAA);

        mm.Read(start, buffer);

        Assert.That(buffer, Is.All.Zero);
        Assert.That(mm.PageTable.Read(start).Pfn, Is.EqualTo(host.ZeroPfn));
        Assert.That(mm.Stats.RssPages, Is.Zero, "the zero page is not resident memory of the process");
        AssertConsistent(host);
    }

    [Test]
    public void WriteThenMremapThenReadBack()
    {
        using var host = Create();
        var mm = host.CreateMm();
        var start = mm.Mmap(16 * Page, Protection.Read | Protection.Write);
        mm.Mmap(Page, Protection.Read, MmapFlags.Fixed, start + (16 * Page)); // forces a move
        var data = Pattern((int)(16 * Page) - 100, seed: 5);
        mm.Write(start + 50, data);

        var moved = mm.Mremap(start, 16 * Page, 64 * Page, MremapFlags.MayMove);
        var back = new byte[data.Length];
        mm.Read(moved + 50, back);

        Assert.That(back, Is.EqualTo(data));
        Assert.That(mm.HandleFault(start, FaultAccess.Read), Is.EqualTo(FaultResult.SegmentationFault), "the old range is gone");
        var grown = new byte[48 * Page];
        mm.Read(moved + (16 * Page), grown);
        Assert.That(grown, Is.All.Zero, "the grown part is fresh memory");
        AssertConsistent(host);
    }

    [Test]
    public void MremapGrowsInPlaceAndShrinks()
    {
        using var host = Create();
        var mm = host.CreateMm();
        var start = mm.Mmap(4 * Page, Protection.Read | Protection.Write, MmapFlags.Populate);

        Assert.That(mm.Mremap(start, 4 * Page, 8 * Page), Is.EqualTo(start));
        Assert.That(mm.Vmas.Single().End, Is.EqualTo(start + (8 * Page)));
        Assert.That(mm.Mremap(start, 8 * Page, 2 * Page), Is.EqualTo(start));
        Assert.That(mm.Stats.RssPages, Is.EqualTo(2));
        Assert.That(() => mm.Mremap(start + (8 * Page), Page, 2 * Page), Throws.TypeOf<UnmappedRangeException>());
        AssertConsistent(host);
    }

    [Test]
    public void ForkIsolatesParentAndChildBothWays()
    {
        using var host = Create();
        var parent = host.CreateMm();
        var start = parent.Mmap(4 * Page, Protection.Read | Protection.Write);
        var original = Pattern((int)(4 * Page), seed: 1);
        parent.Write(start, original);

        using var child = parent.Fork();
        var childData = Pattern((int)Page, seed: 2);
        child.Write(start, childData);
        var parentData = Pattern((int)Page, seed: 3);
        parent.Write(start + Page, parentData);

        var parentView = new byte[4 * Page];
        var childView = new byte[4 * Page];
        parent.Read(start, parentView);
        child.Read(start, childView);

        Assert.That(parentView.AsSpan(0, (int)Page).ToArray(), Is.EqualTo(original.AsSpan(0, (int)Page).ToArray()), "the child's write is invisible to the parent");
        Assert.That(childView.AsSpan(0, (int)Page).ToArray(), Is.EqualTo(childData));
        Assert.That(childView.AsSpan((int)Page, (int)Page).ToArray(), Is.EqualTo(original.AsSpan((int)Page, (int)Page).ToArray()), "the parent's write is invisible to the child");
        Assert.That(parentView.AsSpan((int)Page, (int)Page).ToArray(), Is.EqualTo(parentData));
        Assert.That(parentView.AsSpan(2 * (int)Page).ToArray(), Is.EqualTo(childView.AsSpan(2 * (int)Page).ToArray()), "untouched pages stay shared");
        Assert.That(parent.PageTable.Read(start + (2 * Page)).Pfn, Is.EqualTo(child.PageTable.Read(start + (2 * Page)).Pfn));
        AssertConsistent(host);
    }

    [Test]
    public void AfterTheChildExitsTheParentWritesInPlace()
    {
        using var host = Create();
        var parent = host.CreateMm();
        var start = parent.Mmap(Page, Protection.Read | Protection.Write, MmapFlags.Populate);
        var child = parent.Fork();
        child.Exit();

        Assert.That(parent.HandleFault(start, FaultAccess.Write), Is.EqualTo(FaultResult.WriteReuse));
        AssertConsistent(host);
    }

    [Test]
    public void AccessAfterMunmapFaults()
    {
        using var host = Create();
        var mm = host.CreateMm();
        var start = mm.Mmap(2 * Page, Protection.Read | Protection.Write, MmapFlags.Populate);
        mm.Munmap(start, 2 * Page);

        Assert.That(mm.HandleFault(start, FaultAccess.Read), Is.EqualTo(FaultResult.SegmentationFault));
        Assert.That(mm.GetUserPages(start, write: true).Succeeded, Is.False);
        Assert.That(() => mm.Read(start, new byte[1]),
            Throws.TypeOf<HostFaultException>().With.Message.Contains("no mapping covers the address"));
        AssertConsistent(host);
    }

    [Test]
    public void ProtectionIsEnforcedAndProtNoneKeepsTheData()
    {
        using var host = Create();
        var mm = host.CreateMm();
        var start = mm.Mmap(Page, Protection.Read | Protection.Write);
        var data = Pattern(64, seed: 9);
        mm.Write(start, data);

        mm.Mprotect(start, Page, Protection.Read);
        Assert.That(() => mm.Write(start, data), Throws.TypeOf<HostFaultException>().With.Message.Contains("does not allow"));
        mm.Mprotect(start, Page, Protection.None);
        Assert.That(mm.HandleFault(start, FaultAccess.Read), Is.EqualTo(FaultResult.ProtectionViolation));
        Assert.That(mm.Stats.RssPages, Is.EqualTo(1), "PROT_NONE keeps the frame");
        mm.Mprotect(start, Page, Protection.Read | Protection.Write);

        var back = new byte[64];
        mm.Read(start, back);
        Assert.That(back, Is.EqualTo(data));
        mm.Write(start, data);
        AssertConsistent(host);
    }

    [Test]
    public void ExitFreesEveryFrame()
    {
        using var host = Create();
        var initialFree = host.Memory.FreeFrames;
        var mm = host.CreateMm();
        var start = mm.Mmap(300 * Page, Protection.Read | Protection.Write, MmapFlags.Populate);
        var far = mm.Mmap(8 * Page, Protection.Read | Protection.Write, MmapFlags.Fixed | MmapFlags.Populate, start + (1UL << 32));
        mm.Read(far, new byte[16]);
        var child = mm.Fork();
        child.Write(start, new byte[] { 1, 2, 3 });
        Assert.That(host.Memory.FreeFrames, Is.LessThan(initialFree - 300));

        child.Exit();
        mm.Exit();

        Assert.That(host.Memory.FreeFrames, Is.EqualTo(initialFree));
        Assert.That(host.Mms, Is.Empty);
        Assert.That(() => mm.Mmap(Page, Protection.Read), Throws.TypeOf<MmExitedException>());
        Assert.That(() => mm.Exit(), Throws.TypeOf<MmExitedException>());
        AssertConsistent(host);
    }

    [Test]
    public void MunmapOfPartOfAMappingSplitsIt()
    {
        using var host = Create();
        var mm = host.CreateMm();
        var start = mm.Mmap(8 * Page, Protection.Read | Protection.Write, MmapFlags.Populate);

        mm.Munmap(start + (2 * Page), 3 * Page);

        Assert.That(mm.Vmas.Select(v => (v.Start, v.End)), Is.EqualTo(new[] { (start, start + (2 * Page)), (start + (5 * Page), start + (8 * Page)) }));
        Assert.That(mm.Stats.RssPages, Is.EqualTo(5));
        AssertConsistent(host);
    }

    [Test]
    public void MadviseDontNeedReadsBackAsZeroes()
    {
        using var host = Create();
        var mm = host.CreateMm();
        var start = mm.Mmap(2 * Page, Protection.Read | Protection.Write);
        mm.Write(start, Pattern((int)(2 * Page), seed: 4));

        mm.Madvise(start, 2 * Page, Advice.DontNeed);

        var back = new byte[2 * Page];
        mm.Read(start, back);
        Assert.That(back, Is.All.Zero);
        AssertConsistent(host);
    }
}
