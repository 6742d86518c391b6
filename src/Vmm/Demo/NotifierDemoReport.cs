using System.Globalization;
using Hypervisor.Notifier;
using Hypervisor.Notifier.Tracing;
using Hypervisor.Notifier.UserEvents;
using Hypervisor.Vmm.Cli.Output;

namespace Hypervisor.Vmm.Demo;

/// <summary>Writes a <see cref="NotifierDemoResult"/>: header, timeline, user channel events, counters.</summary>
internal static class NotifierDemoReport
{
    /// <summary>Label of the script's own thread in the thread column (stable from run to run).</summary>
    public const string MainThread = "main";

    /// <summary>Writes the whole report.</summary>
    public static void Write(NotifierDemoResult result, ReportWriter writer)
    {
        ArgumentNullException.ThrowIfNull(result);
        ArgumentNullException.ThrowIfNull(writer);
        WriteHeader(result, writer);
        WriteTimeline(result, writer);
        WriteUserEvents(result, writer);
        WriteCounters(result, writer);
    }

    /// <summary>A range as the timeline shows it: <c>[start, end)</c>, an address, "whole mm" or nothing.</summary>
    public static string FormatRange(Hva start, Hva end)
    {
        if (start == Hva.Zero && end == Hva.Zero)
        {
            return string.Empty;
        }

        if (start == Hva.Zero && end == Hva.AddressSpaceEnd)
        {
            return "whole mm";
        }

        return end == start + 1 ? start.ToString() : $"[{start}, {end})";
    }

    private static void WriteHeader(NotifierDemoResult result, ReportWriter writer)
    {
        writer.Title("hv demo notifier: the MMU-notifier contract on a simulated mm");
        writer.Paragraph(
            "There is no host memory manager yet, so this script plays the host: it",
            "issues the notifier chain's calls directly, in the order Linux's mprotect,",
            "munmap, page aging, the OOM reaper and exit_mmap issue them",
            "(reference/mmu-notifier.md section 3): start, PTE changes, end, TLB flush,",
            "frame frees. Marks and host steps in the timeline are the script's; every",
            "other row is a callback that a subscriber received.");
        var regions = NotifierDemo.UserRegions.Select(r => Invariant($"{r.Cookie} {FormatRange(r.Start, r.End)}")).ToArray();
        writer.Paragraph(
            Invariant($"mm {NotifierDemo.MmId} maps {NotifierDemo.Pages} pages at {FormatRange(NotifierDemo.MappingStart, NotifierDemo.MappingEnd)}; seed {result.Seed}, {result.RandomRanges} random range{(result.RandomRanges == 1 ? string.Empty : "s")}."),
            "Subscribers, in the order the chain calls them:",
            "  recorder  records every callback; also an interval subscriber",
            $"            over {FormatRange(NotifierDemo.IntervalStart, NotifierDemo.IntervalEnd)}",
            "  channel   user event channel (ummunotify model) with regions",
            $"            {string.Join(", ", regions)}",
            "  sleeper   a driver whose start must sleep: it refuses non-blockable",
            "            starts, and has no end");
    }

    private static void WriteTimeline(NotifierDemoResult result, ReportWriter writer)
    {
        writer.Section("Timeline");
        var table = new ReportTable(
            new ReportColumn("#", AlignRight: true),
            new ReportColumn("kind"),
            new ReportColumn("range", Wrap: true),
            new ReportColumn("event"),
            new ReportColumn("detail", Wrap: true),
            new ReportColumn("thread"));
        var number = 0;
        foreach (var e in result.Timeline)
        {
            // The recorder's sequence is process-wide; the run's own order is what a reader needs.
            string[] cells =
            [
                (++number).ToString(CultureInfo.InvariantCulture),
                e.Kind.ToString(),
                FormatRange(e.Start, e.End),
                e.Event is { } notifierEvent ? notifierEvent + (e.Blockable ? string.Empty : " nonblock") : string.Empty,
                Detail(e),
                e.ThreadId == result.ScriptThreadId ? MainThread : Invariant($"thread {e.ThreadId}"),
            ];
            if (e.Kind == NotifierTraceKind.Mark)
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

    private static string Detail(NotifierTraceEvent e) => e.Label ?? e.Kind switch
    {
        NotifierTraceKind.FrameFree => e.Pfn.ToString(),
        NotifierTraceKind.HostPteChange or NotifierTraceKind.ChangePte => e.Pte.ToString(),
        _ => string.Empty,
    };

    private static void WriteUserEvents(NotifierDemoResult result, ReportWriter writer)
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
                    FormatRange(e.HintStart, e.HintEnd),
                    Invariant($"cookie {e.CookieOrCounter}"),
                    hint ? "hint: hit once, only this part changed" : "no hint: hit more than once, whole region");
            }
        }

        writer.Table(table);
    }

    private static void WriteCounters(NotifierDemoResult result, ReportWriter writer)
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
            ("ChangePtes", chain.ChangePtes, "legacy change_pte calls"),
            ("SecondaryTlbInvalidations", chain.SecondaryTlbInvalidations, "secondary TLB flushes"),
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

    private static ReportTable Counters(params (string Name, long Value, string Meaning)[] counters)
    {
        var table = new ReportTable(new ReportColumn("counter"), new ReportColumn("value", AlignRight: true), new ReportColumn("meaning", Wrap: true));
        foreach (var (name, value, meaning) in counters)
        {
            table.AddRow(name, value.ToString(CultureInfo.InvariantCulture), meaning);
        }

        return table;
    }

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
