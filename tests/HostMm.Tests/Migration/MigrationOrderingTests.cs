using Hypervisor.HostMm.PageTables;
using Hypervisor.Notifier;
using Hypervisor.Notifier.Tracing;
using static Hypervisor.HostMm.Tests.Migration.MigrationHosts;

namespace Hypervisor.HostMm.Tests.Migration;

/// <summary>
/// Migration against reference/mmu-notifier.md §3: start (Clear) → under the page-table lock the PTE cleared and
/// flushed, the migration entry set, the mapping dropped → end → data copied → <c>remove_migration_ptes</c> installs the
/// new frame with no notifier → the old frame freed.
/// </summary>
public class MigrationOrderingTests
{
    [Test]
    public void One_page_is_unmapped_to_a_migration_entry_inside_start_end_restored_after_end_without_a_notifier_then_freed()
    {
        using var host = MigrationHosts.Create();
        var (mm, start) = Populated(host, 1, seed: 1);
        var oldPfn = mm.PageTable.Read(start).Pfn;
        var recorder = Record(mm);

        var status = host.Migration.MovePages(mm, [start], [1]);

        Assert.That(status[0].Succeeded, Is.True);
        Assert.That(Timeline(recorder, mm), Is.EqualTo("start:Clear pte flush pte end pte free"));
        var ptes = recorder.Events.Where(e => e.Kind == NotifierTraceKind.HostPteChange && e.MmId == mm.Id).ToList();
        Assert.That(ptes, Has.Count.EqualTo(3));
        Assert.That(HostPteEncoding.Classify(ptes[1].Pte), Is.EqualTo(HostPteKind.Migration), "inside start/end the PTE becomes a migration entry");
        Assert.That(HostPteEncoding.MigrationPfn(ptes[1].Pte), Is.EqualTo(oldPfn));
        Assert.That(ptes[2].Pte.IsPresent && ptes[2].Pte.Pfn != oldPfn, Is.True, "the restore maps the new frame");
        var end = recorder.Events.Single(e => e.Kind == NotifierTraceKind.InvalidateRangeEnd && e.MmId == mm.Id).Sequence;
        Assert.That(ptes[2].Sequence, Is.GreaterThan(end), "remove_migration_ptes runs after the end, with no notifier of its own");
        var free = recorder.Events.Single(e => e.Kind == NotifierTraceKind.FrameFree);
        Assert.That(free.Pfn, Is.EqualTo(oldPfn));
        Assert.That(free.Sequence, Is.GreaterThan(ptes[2].Sequence), "the old frame is freed last");
        var range = recorder.Events.Single(e => e.Kind == NotifierTraceKind.InvalidateRangeStart && e.MmId == mm.Id);
        Assert.That((range.Start, range.End, range.Event), Is.EqualTo((start, start + Page, NotifierEvent.Clear)));
        AssertConsistent(host);
    }

    [Test]
    public void A_page_shared_with_a_child_gets_one_range_per_mapping_and_the_free_follows_both_restores()
    {
        using var host = MigrationHosts.Create();
        var (parent, start) = Populated(host, 1, seed: 2);
        var child = parent.Fork();
        var recorder = new NotifierEventRecorder();
        parent.Notifiers.Register(recorder);
        child.Notifiers.Register(recorder);
        host.Trace = new RecorderHostTrace(recorder);

        host.Migration.MovePages(parent, [start], [1], moveShared: true);

        Assert.That(Timeline(recorder, parent), Is.EqualTo("start:Clear pte flush pte end pte free"));
        Assert.That(Timeline(recorder, child), Is.EqualTo("start:Clear pte flush pte end pte free"));
        var lastEnd = recorder.Events.Last(e => e.Kind == NotifierTraceKind.InvalidateRangeEnd).Sequence;
        var restores = recorder.Events.Where(e => e.Kind == NotifierTraceKind.HostPteChange && e.Pte.IsPresent).ToList();
        Assert.That(restores, Has.Count.EqualTo(2));
        Assert.That(restores.All(e => e.Sequence > lastEnd), Is.True, "both mappings are unmapped before either is restored");
        Assert.That(recorder.Events.Single(e => e.Kind == NotifierTraceKind.FrameFree).Sequence, Is.GreaterThan(restores.Max(e => e.Sequence)));
        AssertConsistent(host);
    }

    [Test]
    public void An_abandoned_attempt_restores_the_old_frame_without_a_notifier_and_frees_nothing_mapped()
    {
        using var host = MigrationHosts.Create();
        var (mm, start) = Populated(host, 1, seed: 3);
        var oldPfn = mm.PageTable.Read(start).Pfn;
        var gup = mm.GetUserPages(start, write: false); // an extra reference: every attempt's freeze fails
        var recorder = Record(mm);

        var status = host.Migration.MovePages(mm, [start], [1]);

        Assert.That(status[0].Failure, Is.EqualTo(HostMm.Migration.MigrationFailure.Referenced));
        Assert.That(mm.PageTable.Read(start).Pfn, Is.EqualTo(oldPfn));
        var passes = HostMm.Migration.Migrator.MaxPasses;
        Assert.That(recorder.Count(NotifierTraceKind.InvalidateRangeStart), Is.EqualTo(passes), "each pass unmaps once");
        Assert.That(recorder.Events.Where(e => e.Kind == NotifierTraceKind.FrameFree).Select(e => e.Pfn), Does.Not.Contain(oldPfn), "the mapped frame is never freed");
        Assert.That(host.Migration.Stats.Retries, Is.EqualTo(passes - 1));
        mm.ReleasePage(gup.Pfn);
        AssertConsistent(host);
    }
}
