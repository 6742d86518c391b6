using System.Globalization;
using Hypervisor.HostMm;
using Hypervisor.Notifier;
using Hypervisor.Notifier.Tracing;
using Hypervisor.Notifier.UserEvents;
using Hypervisor.Vmm.Cli.Output;

namespace Hypervisor.Vmm.Demo;

/// <summary>
/// Writes a <see cref="HostDemoResult"/>: header, timeline, user channel events, the chain's, channel's,
/// process's and host's counters, and the host MM auditor's verdict.
/// </summary>
internal static class HostDemoReport
{
    /// <summary>Label of the script's own thread in the thread column (stable from run to run).</summary>
    public const string MainThread = "main";

    /// <summary>Heading of the timeline section.</summary>
    public const string TimelineSection = "Timeline";

    /// <summary>Heading of the auditor section.</summary>
    public const string AuditorSection = "Host MM auditor (HostMmAuditor.Check)";

    /// <summary>Writes the whole report.</summary>
    public static void Write(HostDemoResult result, ReportWriter writer)
    {
        ArgumentNullException.ThrowIfNull(result);
        ArgumentNullException.ThrowIfNull(writer);
        WriteHeader(result, writer);
        WriteTimeline(result, writer);
        WriteUserEvents(result, writer);
        WriteChainCounters(result, writer);
        WriteHostCounters(result, writer);
        WriteAudit(result, writer);
    }

    /// <summary>A range as the timeline shows it: <c>[start, end)</c>, an address, "whole mm" or nothing.</summary>
    public static string FormatRange(Hva start, Hva end)
    {
        if (start == Hva.Zero && end == Hva.Zero)
        {
            return string.Empty;
        }

        if (start == Hva.Zero && (end == Hva.AddressSpaceEnd || end == Mm.UserSpaceEnd))
        {
            return "whole mm";
        }

        return end == start + 1 ? start.ToString() : $"[{start}, {end})";
    }

    /// <summary>The auditor's one-line verdict.</summary>
    public static string Verdict(HostDemoResult result)
    {
        ArgumentNullException.ThrowIfNull(result);
        var checkedAfter = Invariant($"HostMmAuditor.Check after each of the {result.AuditedSteps} steps");
        return result.IsConsistent
            ? $"{checkedAfter}: consistent"
            : Invariant($"{checkedAfter}: INCONSISTENT, {result.ViolationCount} violation{Plural(result.ViolationCount)} after {result.AuditFindings.Count} step{Plural(result.AuditFindings.Count)}");
    }

    private static void WriteHeader(HostDemoResult result, ReportWriter writer)
    {
        var layout = result.Layout;
        writer.Title("hv demo: the host memory manager issuing MMU-notifier calls");
        writer.Paragraph(
            "This is the real primary MMU model (src/HostMm): a simulated host with",
            Invariant($"{HostDemo.HostBytes >> 20} MiB of RAM runs a process (and, from fork on, its child), and"),
            "every notifier call below is issued by the host's own page faults,",
            "mprotect, munmap, madvise, mremap, fork and exit, in the order Linux",
            "issues them (reference/mmu-notifier.md section 3): start, PTE changes,",
            "end, TLB flush, frame frees. HostPteChange, HostTlbFlush and FrameFree",
            "rows come from the host's trace; Mark rows are the script's steps; every",
            "other row is a callback that a subscriber received. A run of more than",
            Invariant($"{TimelineFolder.FoldAbove} PTE changes or frame frees is folded into one row; a fold never"),
            "crosses any other row, so the order stays visible.");
        writer.Paragraph(
            "Two steps are played by the script: the aging of one chosen page, where the",
            "script calls the young ops as rmap's folio_referenced_one does (the host's",
            "reclaimer ages whole LRU lists: hv demo swap shows it), and the OOM reaper's",
            "non-blockable start, which a sleeping subscriber refuses (no reaper yet).");
        var regions = layout.UserRegions.Select(r => Invariant($"{r.Cookie} = {layout.DescribePages(r.Start, r.End)}")).ToArray();
        writer.Paragraph(
            Invariant($"mm {result.MmId} maps {HostDemoLayout.Pages} pages at {FormatRange(layout.MappingStart, layout.MappingEnd)};"),
            Invariant($"ranges below are pages of it: page n is at {layout.MappingStart} + n * {Paging.PageSize}."),
            Invariant($"Seed {result.Seed}, {result.RandomOperations} random operation{Plural(result.RandomOperations)}."),
            "Subscribers, in the order the chain calls them:",
            "  recorder  records every callback; also an interval subscriber over",
            $"            {layout.DescribePages(layout.IntervalStart, layout.IntervalEnd)}",
            "  channel   user event channel (ummunotify model) with regions",
            $"            {string.Join(", ", regions)}",
            "  sleeper   a driver whose start must sleep: it refuses non-blockable",
            "            starts, and has no end");
    }

    private static void WriteTimeline(HostDemoResult result, ReportWriter writer)
    {
        writer.Section(TimelineSection);
        var table = new ReportTable(
            new ReportColumn("#", AlignRight: true),
            new ReportColumn("kind"),
            new ReportColumn("mm"),
            new ReportColumn("range", Wrap: true),
            new ReportColumn("event"),
            new ReportColumn("detail", Wrap: true),
            new ReportColumn("thread"));
        var number = 0;
        foreach (var row in TimelineFolder.Fold(result.Timeline, result.ZeroPfn, result.Layout.DescribeRange))
        {
            // The recorder's sequence is process-wide; the run's own order is what a reader needs.
            string[] cells =
            [
                (++number).ToString(CultureInfo.InvariantCulture),
                row.Kind.ToString(),
                row.Mm,
                row.Range,
                row.Event,
                row.Detail,
                row.ThreadId == result.ScriptThreadId ? MainThread : Invariant($"thread {row.ThreadId}"),
            ];
            if (row.Kind == NotifierTraceKind.Mark)
            {
                table.AddEmphasisedRow(cells);
            }
            else
            {
                table.AddRow(cells);
            }
        }

        writer.Table(table);
    }

    private static void WriteUserEvents(HostDemoResult result, ReportWriter writer)
    {
        writer.Section("User event channel reads");
        var table = new ReportTable(
            new ReportColumn("read"),
            new ReportColumn("type"),
            new ReportColumn("range"),
            new ReportColumn("cookie / counter", AlignRight: true),
            new ReportColumn("flags", Wrap: true));
        foreach (var read in result.UserEventReads)
        {
            foreach (var e in read.Events)
            {
                if (e.Type == UserEventType.Last)
                {
                    table.AddRow(read.When, "Last", string.Empty, Invariant($"counter {e.CookieOrCounter}"), string.Empty);
                    continue;
                }

                var hint = (e.Flags & UserEventFlags.Hint) != 0;
                table.AddRow(
                    read.When,
                    "Invalidate",
                    result.Layout.DescribeRange(e.HintStart, e.HintEnd),
                    Invariant($"cookie {e.CookieOrCounter}"),
                    hint ? "hint: hit once, only this part changed" : "no hint: hit more than once, whole region");
            }
        }

        writer.Table(table);
    }

    private static void WriteChainCounters(HostDemoResult result, ReportWriter writer)
    {
        var chain = result.ChainStats;
        writer.Section("Chain counters (MmuNotifierChainStats)");
        writer.Table(Counters(
            ("Subscribers", chain.Subscribers, "listed now (exit unlists all)"),
            ("Intervals", chain.Intervals, "interval subscriptions in the tree"),
            ("Starts", chain.Starts, "range starts, refused ones included"),
            ("Ends", chain.Ends, "range ends"),
            ("FailedStarts", chain.FailedStarts, "non-blockable starts refused"),
            ("IntervalInvalidations", chain.IntervalInvalidations, "interval callbacks"),
            ("YoungCalls", chain.YoungCalls, "clear_flush_young + clear_young + test_young"),
            ("YoungHits", chain.YoungHits, "aging calls answered young"),
            ("ChangePtes", chain.ChangePtes, "legacy change_pte calls (off, as in Linux 6.10+)"),
            ("SecondaryTlbInvalidations", chain.SecondaryTlbInvalidations, "host TLB flushes passed on to secondary TLBs"),
            ("Releases", chain.Releases, "subscriptions released, release op or not"),
            ("GracePeriods", chain.GracePeriods, "completed read-side grace periods"),
            ("IntervalSequence", (long)chain.IntervalSequence, "even when idle, odd while invalidating"),
            ("Exiting", chain.Exiting ? 1 : 0, "1 once exit began")));

        var channel = result.ChannelStats;
        writer.Section("User channel counters (UserEventChannelStats)");
        writer.Table(Counters(
            ("Regions", channel.Regions, "regions registered"),
            ("RangeStarts", channel.RangeStarts, "starts the channel received"),
            ("RegionHits", channel.RegionHits, "(start, region) overlaps"),
            ("HitsCoalesced", channel.HitsCoalesced, "hits folded into an unread event"),
            ("Generation", (long)channel.Generation, "starts that hit a region"),
            ("EventsDelivered", channel.EventsDelivered, "invalidate events read"),
            ("LastEventsDelivered", channel.LastEventsDelivered, "last events read"),
            ("PendingEvents", channel.PendingEvents, "unread")));
    }

    private static void WriteHostCounters(HostDemoResult result, ReportWriter writer)
    {
        var mm = result.MmStatsBeforeExit;
        writer.Section(Invariant($"Process counters (MmStats of mm {result.MmId} before exit)"));
        writer.Table(Counters(
            ("RssPages", mm.RssPages, "resident pages (zero page excluded)"),
            ("Vmas", mm.Vmas, "VMAs"),
            ("MappedPages", (long)mm.MappedPages, "pages covered by VMAs"),
            ("PageTablePages", mm.PageTablePages, "page-table pages, all levels"),
            ("DemandZeroFaults", mm.DemandZeroFaults, "write faults that mapped a new zeroed frame"),
            ("ZeroPageFaults", mm.ZeroPageFaults, "read faults that mapped the zero page"),
            ("CopyOnWriteFaults", mm.CopyOnWriteFaults, "copy-on-write breaks"),
            ("WriteReuseFaults", mm.WriteReuseFaults, "write faults that reused an exclusive page"),
            ("SpuriousFaults", mm.SpuriousFaults, "faults the PTE already allowed"),
            ("FailedFaults", mm.FailedFaults, "faults on unmapped or forbidden addresses"),
            ("GetUserPagesCalls", mm.GetUserPagesCalls, "get-user-pages calls (reads and writes use it)"),
            ("PagesZapped", mm.PagesZapped, "PTEs cleared by munmap and MADV_DONTNEED"),
            ("PagesProtected", mm.PagesProtected, "PTEs changed by mprotect"),
            ("PagesMoved", mm.PagesMoved, "PTEs moved by mremap"),
            ("Calls.Mmap", mm.Calls.Mmap, "mmap calls"),
            ("Calls.Munmap", mm.Calls.Munmap, "munmap calls"),
            ("Calls.Mprotect", mm.Calls.Mprotect, "mprotect calls"),
            ("Calls.Mremap", mm.Calls.Mremap, "mremap calls"),
            ("Calls.Madvise", mm.Calls.Madvise, "madvise calls"),
            ("Calls.Fork", mm.Calls.Fork, "fork calls")));

        var before = result.HostStatsBeforeExit;
        var after = result.HostStatsAfterExit;
        writer.Section("Host counters (HostStats)");
        var table = new ReportTable(
            new ReportColumn("counter"),
            new ReportColumn(Invariant($"before mm {result.MmId} exit"), AlignRight: true),
            new ReportColumn("after exit", AlignRight: true),
            new ReportColumn("meaning", Wrap: true));
        foreach (var (name, b, a, meaning) in new (string, long, long, string)[]
        {
            ("Processes", before.Processes, after.Processes, "live processes"),
            ("RssPages", before.RssPages, after.RssPages, "resident pages over all processes"),
            ("Memory.TotalFrames", before.Memory.TotalFrames, after.Memory.TotalFrames, "frames of host RAM"),
            ("Memory.FreeFrames", before.Memory.FreeFrames, after.Memory.FreeFrames, "free frames, all nodes"),
            ("Memory.AllocatedFrames", before.Memory.AllocatedFrames, after.Memory.AllocatedFrames, "in use (the zero page stays)"),
            ("Memory.Allocations", before.Memory.Allocations, after.Memory.Allocations, "frames handed out since start"),
            ("Memory.Frees", before.Memory.Frees, after.Memory.Frees, "frames returned since start"),
            ("Memory.ZeroedFrames", before.Memory.ZeroedFrames, after.Memory.ZeroedFrames, "frames cleared on allocation"),
            ("Memory.FallbackAllocations", before.Memory.FallbackAllocations, after.Memory.FallbackAllocations, "allocations off the preferred node"),
            ("Memory.UseAfterFreeDetections", before.Memory.UseAfterFreeDetections, after.Memory.UseAfterFreeDetections, "freed frames found written to"),
        })
        {
            table.AddRow(name, b.ToString(CultureInfo.InvariantCulture), a.ToString(CultureInfo.InvariantCulture), meaning);
        }

        writer.Table(table);
    }

    private static void WriteAudit(HostDemoResult result, ReportWriter writer)
    {
        writer.Section(AuditorSection);
        writer.Paragraph(Verdict(result));
        if (result.IsConsistent)
        {
            return;
        }

        var table = new ReportTable(new ReportColumn("after step", Wrap: true), new ReportColumn("violation", Wrap: true));
        foreach (var finding in result.AuditFindings)
        {
            foreach (var violation in finding.Violations)
            {
                table.AddRow(finding.Step, violation);
            }
        }

        writer.Table(table);
    }

    private static ReportTable Counters(params (string Name, long Value, string Meaning)[] counters)
    {
        var table = new ReportTable(new ReportColumn("counter"), new ReportColumn("value", AlignRight: true), new ReportColumn("meaning", Wrap: true));
        foreach (var (name, value, meaning) in counters)
        {
            table.AddRow(name, value.ToString(CultureInfo.InvariantCulture), meaning);
        }

        return table;
    }

    private static string Plural(long count) => count == 1 ? string.Empty : "s";

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
