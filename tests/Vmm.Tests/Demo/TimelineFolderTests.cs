using Hypervisor.Notifier;
using Hypervisor.Notifier.Tracing;
using Hypervisor.Vmm.Demo;
using Microsoft.Extensions.Logging.Abstractions;

namespace Hypervisor.Vmm.Tests.Demo;

public sealed class TimelineFolderTests
{
    private static readonly Pfn s_zero = new(1);

    private static NotifierTraceEvent PteCleared(int mm, ulong page, ulong pfn = 0x100) => new()
    {
        Kind = NotifierTraceKind.HostPteChange,
        MmId = mm,
        Start = new Hva(page * Paging.PageSize),
        End = new Hva((page + 1) * Paging.PageSize),
        Pfn = new Pfn(pfn + page),
        Pte = HostPte.None,
    };

    private static NotifierTraceEvent PteSet(int mm, ulong page, ulong flags) => new()
    {
        Kind = NotifierTraceKind.HostPteChange,
        MmId = mm,
        Start = new Hva(page * Paging.PageSize),
        End = new Hva((page + 1) * Paging.PageSize),
        Pfn = new Pfn(0x200 + page),
        Pte = HostPte.Present(new Pfn(0x200 + page), flags),
    };

    private static NotifierTraceEvent Freed(ulong pfn) => new() { Kind = NotifierTraceKind.FrameFree, Start = Hva.Zero, End = new Hva(Paging.PageSize), Pfn = new Pfn(pfn) };

    private static NotifierTraceEvent Flush() => new() { Kind = NotifierTraceKind.HostTlbFlush, MmId = 1, Start = new Hva(0), End = new Hva(0x10000) };

    [Test]
    public void ALongRunBecomesOneRowButNeverSpansAnotherRow()
    {
        var timeline = Enumerable.Range(0, 6).Select(p => PteCleared(1, (ulong)p))
            .Append(Flush())
            .Concat(Enumerable.Range(0, 6).Select(p => Freed(0x100 + (ulong)p)))
            .ToList();

        var rows = TimelineFolder.Fold(timeline, s_zero);

        Assert.Multiple(() =>
        {
            Assert.That(rows.Select(r => r.Kind), Is.EqualTo(new[] { NotifierTraceKind.HostPteChange, NotifierTraceKind.HostTlbFlush, NotifierTraceKind.FrameFree }));
            Assert.That(rows.Select(r => r.Detail), Is.EqualTo(new[] { "6 PTEs cleared", "CPU TLB flush (secondary TLBs inside it)", "6 frames freed" }));
            Assert.That(rows[0].Range, Is.EqualTo("[0x0, 0x6000)"));
            Assert.That(rows.Sum(r => r.Events), Is.EqualTo(timeline.Count));
        });
    }

    [Test]
    public void ShortRunsStayRowByRow()
    {
        var timeline = Enumerable.Range(0, TimelineFolder.FoldAbove).Select(p => PteCleared(1, (ulong)p)).ToList();

        var rows = TimelineFolder.Fold(timeline, s_zero);

        Assert.That(rows.Select(r => r.Detail), Is.EqualTo(timeline.Select(e => $"PTE cleared, was {e.Pfn}")));
    }

    [Test]
    public void AFoldOverTwoMmsCountsEachMmAndEachKindOfChange()
    {
        var timeline = new List<NotifierTraceEvent>();
        for (ulong page = 0; page < 3; page++)
        {
            timeline.Add(PteSet(1, page, HostPte.UserBit));
            timeline.Add(PteSet(2, page, HostPte.UserBit));
        }

        timeline.Add(new NotifierTraceEvent
        {
            Kind = NotifierTraceKind.HostPteChange, MmId = 2, Start = new Hva(3 * Paging.PageSize), End = new Hva(4 * Paging.PageSize),
            Pfn = s_zero, Pte = HostPte.Present(s_zero, HostPte.UserBit),
        });

        var row = TimelineFolder.Fold(timeline, s_zero).Single();

        Assert.Multiple(() =>
        {
            Assert.That(row.Mm, Is.EqualTo("1, 2"));
            Assert.That(row.Detail, Is.EqualTo("mm 1: 3 PTEs → read-only; mm 2: 3 PTEs → read-only; mm 2: 1 PTE → zero page"));
            Assert.That(row.Events, Is.EqualTo(7));
        });
    }

    [Test]
    public void AMoveSaysWhereEachHalfIs()
    {
        var timeline = new List<NotifierTraceEvent>();
        for (ulong page = 0; page < 3; page++)
        {
            timeline.Add(PteCleared(1, page));
            timeline.Add(PteSet(1, page + 16, HostPte.UserBit | HostPte.WritableBit));
        }

        var row = TimelineFolder.Fold(timeline, s_zero, (start, end) => $"<{start.Value >> Paging.PageShift}..{end.Value >> Paging.PageShift}>").Single();

        Assert.That(row.Detail, Is.EqualTo("3 PTEs cleared in <0..3>; 3 PTEs → writable in <16..19>"));
    }

    [Test]
    public void FoldingARealRunKeepsEveryEventInOrder()
    {
        var result = HostDemo.Run(4, 16, NullLoggerFactory.Instance);

        var rows = TimelineFolder.Fold(result.Timeline, result.ZeroPfn);
        var expanded = rows.SelectMany(r => Enumerable.Repeat(r.Kind, r.Events));

        Assert.Multiple(() =>
        {
            Assert.That(expanded, Is.EqualTo(result.Timeline.Select(e => e.Kind)));
            Assert.That(rows, Has.Count.LessThan(result.Timeline.Count / 2), "folding makes the timeline readable");
        });
    }
}
