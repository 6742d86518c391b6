using Hypervisor.HostMm.Vmas;
using Hypervisor.Notifier.Tracing;
using static Hypervisor.HostMm.Tests.Processes.TestHosts;

namespace Hypervisor.HostMm.Tests.Processes;

/// <summary>
/// Each host operation's callback sequence against reference/mmu-notifier.md §3 (current Linux, 6.15-era:
/// secondary TLB invalidation inside the CPU flush, no change_pte unless the legacy option is on).
/// Tokens: start/end = notifier range start/end with event, pte = host PTE change(s), flush = CPU TLB flush
/// (with the secondary-TLB invalidation inside it), free = a frame returned to the free list.
/// </summary>
public class OrderingTests
{
    [Test]
    public void MunmapStartsThenClearsThenEndsThenFlushesThenFrees()
    {
        using var host = Create();
        var mm = host.CreateMm();
        var start = mm.Mmap(4 * Page, Protection.Read | Protection.Write, MmapFlags.Populate);
        var recorder = Record(mm);

        mm.Munmap(start, 4 * Page);

        Assert.That(Timeline(recorder, mm), Is.EqualTo("start:Unmap pte end flush free"));
        Assert.That(recorder.Count(NotifierTraceKind.FrameFree), Is.EqualTo(4));
        AssertConsistent(host);
    }

    [Test]
    public void MadviseDontNeedUsesClearAndFreesAfterEndAndFlush()
    {
        using var host = Create();
        var mm = host.CreateMm();
        var start = mm.Mmap(3 * Page, Protection.Read | Protection.Write, MmapFlags.Populate);
        var recorder = Record(mm);

        mm.Madvise(start, 3 * Page, Advice.DontNeed);

        Assert.That(Timeline(recorder, mm), Is.EqualTo("start:Clear pte end flush free"));
        Assert.That(mm.Vmas, Has.Count.EqualTo(1), "the VMA stays");
        AssertConsistent(host);
    }

    [Test]
    public void MadviseFreeCleansPtesInsideStartEndAndFreesNothing()
    {
        using var host = Create();
        var mm = host.CreateMm();
        var start = mm.Mmap(2 * Page, Protection.Read | Protection.Write, MmapFlags.Populate);
        var recorder = Record(mm);

        mm.Madvise(start, 2 * Page, Advice.Free);

        Assert.That(Timeline(recorder, mm), Is.EqualTo("start:Clear pte end flush"));
        Assert.That(mm.PageTable.Read(start).IsDirty, Is.False);
        AssertConsistent(host);
    }

    [Test]
    public void MprotectStartsLazilyChangesPtesEndsThenFlushes()
    {
        using var host = Create();
        var mm = host.CreateMm();
        var populated = mm.Mmap(4 * Page, Protection.Read | Protection.Write, MmapFlags.Populate);
        // In another 2 MiB region: Linux starts the notifier at the first PTE table it finds, even if the
        // entries in range are empty, so the "nothing populated" case needs a range with no table at all.
        var empty = mm.Mmap(4 * Page, Protection.Read | Protection.Write, MmapFlags.Fixed, populated + (1UL << 30));
        var recorder = Record(mm);

        mm.Mprotect(populated, 4 * Page, Protection.Read);
        Assert.That(Timeline(recorder, mm), Is.EqualTo("start:ProtectionVma pte end flush"));
        Assert.That(mm.PageTable.Read(populated).IsWritable, Is.False);

        recorder.Clear();
        mm.Mprotect(empty, 4 * Page, Protection.Read);
        Assert.That(Timeline(recorder, mm), Is.EqualTo("flush"), "no page table, no notifier");
        AssertConsistent(host);
    }

    [Test]
    public void MremapMoveFlushesTheOldRangeBeforeItsEnd()
    {
        using var host = Create();
        var mm = host.CreateMm();
        var start = mm.Mmap(4 * Page, Protection.Read | Protection.Write, MmapFlags.Populate);
        mm.Mmap(Page, Protection.Read, MmapFlags.Fixed, start + (4 * Page)); // block growth in place
        var recorder = Record(mm);

        var moved = mm.Mremap(start, 4 * Page, 8 * Page, MremapFlags.MayMove);

        Assert.That(moved, Is.Not.EqualTo(start));
        Assert.That(Timeline(recorder, mm), Is.EqualTo("start:Unmap pte flush end"));
        var startEvent = recorder.Events.First(e => e.Kind == NotifierTraceKind.InvalidateRangeStart);
        Assert.That((startEvent.Start, startEvent.End), Is.EqualTo((start, start + (4 * Page))), "the event covers the old range only");
        AssertConsistent(host);
    }

    [Test]
    public void CowFaultCopiesOutsideTheRangeThenClearsFlushesInstallsInsideIt()
    {
        using var host = Create();
        var parent = host.CreateMm();
        var start = parent.Mmap(Page, Protection.Read | Protection.Write, MmapFlags.Populate);
        using var child = parent.Fork();
        var recorder = Record(parent);

        Assert.That(parent.HandleFault(start, FaultAccess.Write), Is.EqualTo(FaultResult.CopyOnWrite));

        Assert.That(Timeline(recorder, parent), Is.EqualTo("start:Clear pte flush pte end"));
        AssertConsistent(host);
    }

    [Test]
    public void CowFaultWithLegacyChangePteCallsItBeforeTheNewPteInsideTheRange()
    {
        using var host = Create(legacyChangePte: true);
        var mm = host.CreateMm();
        var start = mm.Mmap(Page, Protection.Read | Protection.Write);
        Assert.That(mm.HandleFault(start, FaultAccess.Read), Is.EqualTo(FaultResult.ZeroPage));
        var recorder = Record(mm);

        Assert.That(mm.HandleFault(start, FaultAccess.Write), Is.EqualTo(FaultResult.CopyOnWrite));

        Assert.That(Timeline(recorder, mm), Is.EqualTo("start:Clear pte flush change_pte pte end"));
        AssertConsistent(host);
    }

    [Test]
    public void CowFreesTheOldFrameOnlyAfterTheEnd()
    {
        using var host = Create();
        var mm = host.CreateMm();
        var start = mm.Mmap(Page, Protection.Read | Protection.Write, MmapFlags.Populate);
        mm.Mprotect(start, Page, Protection.Read);
        mm.Mprotect(start, Page, Protection.Read | Protection.Write); // the PTE stays read-only until a write fault
        // A short-term reference (as a secondary MMU's get-user-pages takes) makes the page look shared,
        // so the write copies; dropping that reference after the fault frees the old frame.
        var held = mm.GetUserPages(start, write: false);
        var recorder = Record(mm);

        Assert.That(mm.HandleFault(start, FaultAccess.Write), Is.EqualTo(FaultResult.CopyOnWrite));
        mm.ReleasePage(held.Pfn);

        Assert.That(Timeline(recorder, mm), Is.EqualTo("start:Clear pte flush pte end free"));
        AssertConsistent(host);
    }

    [Test]
    public void ForkWriteProtectsTheParentInsideProtectionPageRangesThenFlushesEverything()
    {
        using var host = Create();
        var parent = host.CreateMm();
        var start = parent.Mmap(4 * Page, Protection.Read | Protection.Write, MmapFlags.Populate);
        var recorder = Record(parent);

        using var child = parent.Fork();

        Assert.That(Timeline(recorder, parent), Is.EqualTo("start:ProtectionPage pte end flush"));
        var flush = recorder.Events.Single(e => e.Kind == NotifierTraceKind.HostTlbFlush);
        Assert.That((flush.Start, flush.End), Is.EqualTo((Hypervisor.Notifier.Hva.Zero, Mm.UserSpaceEnd)));
        Assert.That(parent.PageTable.Read(start).IsWritable, Is.False);
        Assert.That(child.PageTable.Read(start).Pfn, Is.EqualTo(parent.PageTable.Read(start).Pfn));
        Assert.That(child.Notifiers.SubscriberCount, Is.Zero);
        AssertConsistent(host);
    }

    [Test]
    public void ExitReleasesFirstThenUnmapsThenFlushesThenFrees()
    {
        using var host = Create();
        var mm = host.CreateMm();
        mm.Mmap(4 * Page, Protection.Read | Protection.Write, MmapFlags.Populate);
        var recorder = Record(mm);
        mm.Notifiers.InsertInterval(Mm.MmapBase, 1UL << 30, recorder); // interval subscribers still see the final unmap
        var freeBefore = host.Memory.FreeFrames;

        mm.Exit();

        Assert.That(Timeline(recorder, mm), Is.EqualTo("interval:Release release interval:Unmap pte flush free"));
        Assert.That(host.Memory.FreeFrames, Is.GreaterThan(freeBefore));
        AssertConsistent(host);
    }
}
