using System.Globalization;
using Hypervisor.Notifier;
using Hypervisor.Notifier.Tracing;

namespace Hypervisor.Vmm.Demo;

/// <summary>
/// Turns a recorded timeline into printed rows, folding each long run of consecutive host PTE changes (or of
/// consecutive frame frees) into one row. A run ends at any other row — a start, an end, a callback, a TLB
/// flush, a free, a mark — so folding never hides the order of the steps the ordering table is about.
/// </summary>
internal static class TimelineFolder
{
    /// <summary>Runs of more rows than this are folded; shorter runs are shown row by row.</summary>
    public const int FoldAbove = 4;

    /// <summary>Folds <paramref name="timeline"/>.</summary>
    /// <param name="timeline">The recorded events, in order.</param>
    /// <param name="zeroPfn">The host's zero page, named as such in PTE details.</param>
    /// <param name="describe">Writes a range (e.g. "pages 48-55"); <see cref="HostDemoReport.FormatRange"/> when null.</param>
    public static IReadOnlyList<TimelineRow> Fold(IReadOnlyList<NotifierTraceEvent> timeline, Pfn zeroPfn, Func<Hva, Hva, string>? describe = null)
    {
        ArgumentNullException.ThrowIfNull(timeline);
        describe ??= HostDemoReport.FormatRange;
        var rows = new List<TimelineRow>(timeline.Count);
        for (var i = 0; i < timeline.Count;)
        {
            var first = timeline[i];
            var end = i + 1;
            if (first.Kind is NotifierTraceKind.HostPteChange or NotifierTraceKind.FrameFree)
            {
                while (end < timeline.Count && timeline[end].Kind == first.Kind && timeline[end].ThreadId == first.ThreadId)
                {
                    end++;
                }
            }

            var count = end - i;
            if (count > FoldAbove)
            {
                var run = timeline.Skip(i).Take(count).ToList();
                rows.Add(first.Kind == NotifierTraceKind.HostPteChange ? FoldPteChanges(run, zeroPfn, describe) : FoldFrees(run));
            }
            else
            {
                for (var j = i; j < end; j++)
                {
                    rows.Add(Single(timeline[j], zeroPfn, describe));
                }
            }

            i = end;
        }

        return rows;
    }

    private static TimelineRow Single(NotifierTraceEvent e, Pfn zeroPfn, Func<Hva, Hva, string> describe) => e.Kind switch
    {
        NotifierTraceKind.Mark => new TimelineRow(e.Kind, string.Empty, describe(e.Start, e.End), string.Empty, e.Label ?? string.Empty, e.ThreadId, 1),
        NotifierTraceKind.FrameFree => new TimelineRow(e.Kind, string.Empty, string.Empty, string.Empty, $"{e.Pfn} freed", e.ThreadId, 1),
        _ => new TimelineRow(e.Kind, MmId(e.MmId), describe(e.Start, e.End), EventText(e), Detail(e, zeroPfn), e.ThreadId, 1),
    };

    private static string EventText(NotifierTraceEvent e) =>
        e.Event is { } notifierEvent ? notifierEvent + (e.Blockable ? string.Empty : " nonblock") : string.Empty;

    private static string Detail(NotifierTraceEvent e, Pfn zeroPfn) => e.Label ?? e.Kind switch
    {
        NotifierTraceKind.HostPteChange => PteDetail(e, zeroPfn),
        NotifierTraceKind.HostTlbFlush => "CPU TLB flush (secondary TLBs inside it)",
        NotifierTraceKind.ChangePte => e.Pte.ToString(),
        _ => string.Empty,
    };

    private static string PteDetail(NotifierTraceEvent e, Pfn zeroPfn)
    {
        var pte = e.Pte;
        if (pte.IsNone)
        {
            return $"PTE cleared, was {e.Pfn}";
        }

        if (!pte.IsPresent)
        {
            return $"PTE → 0x{pte.Value.ToString("x", CultureInfo.InvariantCulture)} (not present, {e.Pfn} kept)";
        }

        return pte.Pfn == zeroPfn ? $"PTE → zero page [{Flags(pte)}]" : $"PTE → [{Flags(pte)}] {pte.Pfn}";
    }

    /// <summary>What a PTE change did, coarsely: the key that PTE changes are grouped by in a fold.</summary>
    private static string PteClass(HostPte pte, Pfn zeroPfn)
    {
        if (pte.IsNone)
        {
            return "cleared";
        }

        if (!pte.IsPresent)
        {
            return "→ not present";
        }

        if (pte.Pfn == zeroPfn)
        {
            return "→ zero page";
        }

        return pte.IsWritable ? "→ writable" : "→ read-only";
    }

    private static string Flags(HostPte pte)
    {
        var flags = new List<string> { "P" };
        if (pte.IsWritable)
        {
            flags.Add("W");
        }

        if ((pte.Value & HostPte.UserBit) != 0)
        {
            flags.Add("U");
        }

        if (pte.IsAccessed)
        {
            flags.Add("A");
        }

        if (pte.IsDirty)
        {
            flags.Add("D");
        }

        if (pte.IsNoExecute)
        {
            flags.Add("NX");
        }

        return string.Join(' ', flags);
    }

    private static TimelineRow FoldPteChanges(List<NotifierTraceEvent> run, Pfn zeroPfn, Func<Hva, Hva, string> describe)
    {
        var mms = run.Select(e => e.MmId).Distinct().ToList();
        var (start, end) = Span(run);

        // Groups in order of first appearance: (mm, what the change did). Only a run of one group names the
        // flags; only a run of one mm says where each group is (mremap's move: cleared here, set there).
        var groups = run.GroupBy(e => (e.MmId, Class: PteClass(e.Pte, zeroPfn))).ToList();
        var parts = groups.Select(g =>
        {
            var (groupStart, groupEnd) = Span(g);
            var flags = g.Select(e => Flags(e.Pte)).Distinct().ToList();
            var count = g.Count();
            return (mms.Count > 1 ? $"mm {g.Key.MmId}: " : string.Empty)
                + $"{count} PTE{(count == 1 ? string.Empty : "s")} {g.Key.Class}"
                + (groups.Count == 1 && g.Key.Class != "cleared" && flags.Count == 1 ? $" [{flags[0]}]" : string.Empty)
                + (mms.Count == 1 && (groupStart != start || groupEnd != end) ? $" in {describe(groupStart, groupEnd)}" : string.Empty);
        });
        return new TimelineRow(
            NotifierTraceKind.HostPteChange,
            string.Join(", ", mms.Select(MmId)),
            describe(start, end),
            string.Empty,
            string.Join("; ", parts),
            run[0].ThreadId,
            run.Count);
    }

    private static TimelineRow FoldFrees(List<NotifierTraceEvent> run) =>
        new(NotifierTraceKind.FrameFree, string.Empty, string.Empty, string.Empty, $"{run.Count} frames freed", run[0].ThreadId, run.Count);

    private static (Hva Start, Hva End) Span(IEnumerable<NotifierTraceEvent> events) =>
        (events.Min(e => e.Start), events.Max(e => e.End));

    private static string MmId(int id) => id == 0 ? string.Empty : id.ToString(CultureInfo.InvariantCulture);
}
