using System.Globalization;
using Hypervisor.Vmm.Cli;
using Hypervisor.Vmm.Demo;
using Hypervisor.Vmm.Tests.Support;
using Microsoft.Extensions.Logging.Abstractions;

namespace Hypervisor.Vmm.Tests.Demo;

/// <summary><c>hv demo --plain</c>, read back as text the way a user (or a script) reads it.</summary>
public sealed class HostDemoCommandTests
{
    private const string Start = "InvalidateRangeStart";
    private const string End = "InvalidateRangeEnd";
    private const string Pte = "HostPteChange";
    private const string Flush = "HostTlbFlush";
    private const string Free = "FrameFree";
    private const string Interval = "IntervalInvalidate";
    private const string Mark = "Mark";

    private static readonly Lazy<CliResult> s_seedOne = new(() => RunDemo("--seed", "1"));

    private static CliResult RunDemo(params string[] extra) => Hv.Run(["demo", "--plain", .. extra]);

    private static PlainTable Timeline(CliResult result) => PlainTable.After(result.StdoutLines, HostDemoReport.TimelineSection);

    private static PlainTable SeedOneTimeline() => Timeline(s_seedOne.Value);

    /// <summary>The rows after the step mark whose detail starts with <paramref name="step"/>, up to the next mark.</summary>
    private static List<IReadOnlyList<string>> StepRows(PlainTable table, string step)
    {
        var rows = table.Rows.ToList();
        var at = rows.FindIndex(r => table.Cell(r, "kind") == Mark && table.Cell(r, "detail").StartsWith(step, StringComparison.Ordinal));
        Assert.That(at, Is.GreaterThanOrEqualTo(0), $"no mark for '{step}'");
        return rows.Skip(at + 1).TakeWhile(r => table.Cell(r, "kind") != Mark).ToList();
    }

    /// <summary>The kinds of <paramref name="rows"/>, interval callbacks left out, consecutive repeats merged.</summary>
    private static List<string> Order(PlainTable table, IEnumerable<IReadOnlyList<string>> rows)
    {
        var order = new List<string>();
        foreach (var kind in rows.Select(r => table.Cell(r, "kind")).Where(k => k != Interval))
        {
            if (order.Count == 0 || order[^1] != kind)
            {
                order.Add(kind);
            }
        }

        return order;
    }

    [Test]
    public void RunsToCompletionWithExitCodeZeroAndNothingOnStderr()
    {
        var result = s_seedOne.Value;

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.Zero);
            Assert.That(result.Stderr, Is.Empty);
            Assert.That(result.Stdout, Does.Contain("This is the real primary MMU model"));
            Assert.That(result.Stdout, Does.Contain("issues them (reference/mmu-notifier.md section 3)"));
            Assert.That(result.Stdout, Does.Not.Contain("There is no host memory manager yet"));
            Assert.That(result.Stdout, Does.Not.Contain("\u001b"), "no terminal escapes in plain output");
        });
    }

    // Each host operation's rows, in Linux's order (reference/mmu-notifier.md §3).
    [TestCase("mprotect(pages 8-15", "ProtectionVma", new[] { Start, Pte, End, Flush }, TestName = "mprotect: start, PTEs, end, flush")]
    [TestCase("munmap(pages 20-23)", "Unmap", new[] { Start, Pte, End, Flush, Free }, TestName = "munmap: start, PTEs, end, flush, free")]
    [TestCase("madvise(pages 32-35, MADV_DONTNEED)", "Clear", new[] { Start, Pte, End, Flush, Free }, TestName = "MADV_DONTNEED: start, PTEs, end, flush, free")]
    [TestCase("madvise(pages 36-39, MADV_FREE)", "Clear", new[] { Start, Pte, End, Flush }, TestName = "MADV_FREE: start, PTEs, end, flush, no free")]
    [TestCase("mremap(", "Unmap", new[] { Start, Pte, Flush, End }, TestName = "mremap move: start, PTEs, flush under the locks, end")]
    [TestCase("write: page 30", "Clear", new[] { Start, Pte, Flush, Pte, End }, TestName = "COW break: start, PTE cleared, flush, new PTE, end")]
    public void EachOperationPrintsItsStepsInLinuxsOrder(string step, string notifierEvent, string[] expected)
    {
        var table = SeedOneTimeline();
        var rows = StepRows(table, step);

        Assert.Multiple(() =>
        {
            Assert.That(Order(table, rows), Is.EqualTo(expected));
            Assert.That(
                rows.Where(r => table.Cell(r, "kind") is Start or End).Select(r => table.Cell(r, "event")),
                Is.All.EqualTo(notifierEvent));
        });
    }

    [Test]
    public void CopyOnWriteBreakIsAOnePageClearRange()
    {
        var table = SeedOneTimeline();
        var rows = StepRows(table, "write: page 30");
        var start = rows.Single(r => table.Cell(r, "kind") == Start);
        var ptes = rows.Where(r => table.Cell(r, "kind") == Pte).ToList();

        Assert.Multiple(() =>
        {
            Assert.That(ptes.Select(r => table.Cell(r, "range")), Is.All.EqualTo(table.Cell(start, "range")));
            Assert.That(table.Cell(ptes[0], "detail"), Does.StartWith("PTE cleared, was pfn:"));
            Assert.That(table.Cell(ptes[1], "detail"), Does.StartWith("PTE → [P W"));
        });
    }

    [Test]
    public void ForkWriteProtectsEachVmaInsideItsOwnRangeThenFlushesOnceAfterTheLastEnd()
    {
        var table = SeedOneTimeline();
        var order = Order(table, StepRows(table, "fork()"));

        Assert.Multiple(() =>
        {
            Assert.That(order[^1], Is.EqualTo(Flush));
            Assert.That(order.Count(k => k == Flush), Is.EqualTo(1));
            Assert.That(string.Join(" ", order), Does.Match($"^({Start}( {Pte})? {End} )+{Flush}$"));
            Assert.That(order.Count(k => k == Start), Is.GreaterThan(1), "one start..end per VMA");
        });
    }

    [Test]
    public void ExitReleasesFirstThenUnmapsWithOnlyTheIntervalSubscriberListening()
    {
        var table = SeedOneTimeline();
        var rows = table.Rows.ToList();
        var exit = rows.FindIndex(r => table.Cell(r, "kind") == Mark && table.Cell(r, "detail").StartsWith("exit(): ", StringComparison.Ordinal));
        var kinds = rows.Skip(exit + 1)
            .Select(r => table.Cell(r, "kind"))
            .Where(k => k != Mark)
            .ToList();

        Assert.That(kinds, Is.EqualTo(new[] { Interval, "Release", Interval, Pte, Flush, Free }));
    }

    [Test]
    public void FoldedRowsStayBetweenTheRowsThatBoundThem()
    {
        var table = SeedOneTimeline();
        var details = table.Column("detail").ToList();

        Assert.Multiple(() =>
        {
            Assert.That(details, Has.Some.Match(@"^60 PTEs → writable \[P W U A D NX\]$"), "the demand-zero faults, folded");
            Assert.That(details, Has.Some.Match(@"^8 PTEs cleared in pages 48-55; 8 PTEs → writable in pages 72-79$"), "mremap's move, folded");
            Assert.That(details, Has.Some.Match(@"^\d+ frames freed$"));
            Assert.That(details, Has.Some.Match(@"^PTE cleared, was pfn:0x[0-9a-f]+$"), "short runs stay row by row");
        });
    }

    [Test]
    public void EveryBlockableStartIsFollowedByItsEndForTheSameRange()
    {
        var table = SeedOneTimeline();
        var rows = table.Rows.Select((row, index) => (Index: index, Kind: table.Cell(row, "kind"), Range: table.Cell(row, "range"), Event: table.Cell(row, "event"))).ToList();
        var starts = rows.Where(r => r.Kind == Start).ToList();

        Assert.That(starts, Is.Not.Empty);
        foreach (var start in starts)
        {
            var end = rows.FirstOrDefault(r => r.Index > start.Index && r.Kind == End && r.Range == start.Range && r.Event == start.Event);
            Assert.That(end.Kind, Is.EqualTo(End), $"no end after the start in row {start.Index + 1} ({start.Range} {start.Event})");
            Assert.That(
                rows.Where(r => r.Index > start.Index && r.Index < end.Index).Select(r => r.Kind),
                Has.None.EqualTo(Start),
                "the script is single-threaded: pairs do not nest");
        }

        Assert.That(rows.Count(r => r.Kind == End), Is.EqualTo(starts.Count));
    }

    [Test]
    public void TimelineShowsReleaseThenOnlyIntervalCallbacks()
    {
        var table = SeedOneTimeline();
        var kinds = table.Column("kind").ToList();
        var release = kinds.IndexOf("Release");

        Assert.Multiple(() =>
        {
            Assert.That(release, Is.GreaterThan(0), "a Release row");
            Assert.That(table.Cell(table.Rows[release], "range"), Is.EqualTo("whole mm"));
            Assert.That(kinds.Skip(release), Has.None.EqualTo(Start).And.None.EqualTo(End));
            Assert.That(kinds.Skip(release), Has.Some.EqualTo(Interval), "the final unmap still reaches the interval subscriber");
            Assert.That(kinds.Skip(release), Has.Some.EqualTo(Free));
        });
    }

    [Test]
    public void RefusedNonBlockableStartIsShown()
    {
        var table = SeedOneTimeline();

        Assert.Multiple(() =>
        {
            Assert.That(table.Column("event"), Has.Some.EqualTo("Unmap nonblock"));
            Assert.That(table.Column("detail"), Has.Some.StartsWith("sleeper refuses"));
        });
    }

    [Test]
    public void ScriptedStepsSayWhatTheHostDoesNotDoYet()
    {
        var details = SeedOneTimeline().Column("detail").ToList();

        Assert.Multiple(() =>
        {
            Assert.That(details, Has.Some.Match(@"^aging of page 5: the script calls clear_flush_young, test_young \(reclaim would age whole LRU lists\)$"));
            Assert.That(details, Has.Some.Match(@"^OOM reaper on pages 56-63: the script calls start_nonblock\(UNMAP\) \(no reaper yet\)$"));
        });
    }

    [Test]
    public void EveryRowIsOnTheMainThread()
    {
        Assert.That(SeedOneTimeline().Column("thread"), Is.All.EqualTo("main"));
    }

    [Test]
    public void RowsAreNumberedFromOneInOrder()
    {
        var numbers = SeedOneTimeline().Column("#").Select(n => int.Parse(n, CultureInfo.InvariantCulture)).ToList();

        Assert.That(numbers, Is.EqualTo(Enumerable.Range(1, numbers.Count)));
    }

    [Test]
    public void UserChannelShowsAHintedInvalidateAndALastEventWithItsCounter()
    {
        var table = PlainTable.After(s_seedOne.Value.StdoutLines, "User event channel reads");
        var types = table.Column("type").ToList();

        Assert.Multiple(() =>
        {
            Assert.That(types, Has.Some.EqualTo("Last"));
            Assert.That(types[^1], Is.EqualTo("Last"), "each read ends with its Last event");
            Assert.That(table.Column("flags"), Has.Some.StartsWith("hint"));
            Assert.That(table.Column("flags"), Has.Some.StartsWith("no hint"));
            Assert.That(table.Rows.Where(r => table.Cell(r, "type") == "Last").Select(r => table.Cell(r, "cookie / counter")), Is.All.Match(@"^counter \d+$"));
        });
    }

    [Test]
    public void PrintsTheChainCounters()
    {
        var value = Counters("Chain counters (MmuNotifierChainStats)", "value");

        Assert.Multiple(() =>
        {
            Assert.That(value["FailedStarts"], Is.EqualTo(1));
            Assert.That(value["Starts"], Is.EqualTo(value["Ends"] + value["FailedStarts"]));
            Assert.That(value["Releases"], Is.GreaterThanOrEqualTo(1));
            Assert.That(value["Subscribers"], Is.Zero);
            Assert.That(value["Exiting"], Is.EqualTo(1));
            Assert.That(value["SecondaryTlbInvalidations"], Is.GreaterThan(0), "every host TLB flush reaches the chain");
        });
    }

    [Test]
    public void PrintsTheProcessAndHostCounters()
    {
        var mm = Counters("Process counters (MmStats of mm 1 before exit)", "value");
        var before = Counters("Host counters (HostStats)", "before mm 1 exit");
        var after = Counters("Host counters (HostStats)", "after exit");

        Assert.Multiple(() =>
        {
            Assert.That(mm["DemandZeroFaults"], Is.GreaterThanOrEqualTo(HostDemo.WrittenPages));
            Assert.That(mm["ZeroPageFaults"], Is.GreaterThanOrEqualTo(1));
            Assert.That(mm["CopyOnWriteFaults"], Is.GreaterThanOrEqualTo(1));
            Assert.That(mm["Calls.Fork"], Is.EqualTo(1));
            Assert.That(before["RssPages"], Is.EqualTo(mm["RssPages"]));
            Assert.That(after["Processes"], Is.Zero);
            Assert.That(after["RssPages"], Is.Zero);
            Assert.That(after["Memory.AllocatedFrames"], Is.EqualTo(1), "only the zero page is left");
        });
    }

    [Test]
    public void TheAuditorLineSaysConsistent()
    {
        var lines = s_seedOne.Value.StdoutLines.ToList();
        var section = lines.IndexOf(HostDemoReport.AuditorSection);

        Assert.Multiple(() =>
        {
            Assert.That(section, Is.GreaterThan(0));
            Assert.That(lines[section + 2], Does.Match(@"^HostMmAuditor\.Check after each of the \d+ steps: consistent$"));
        });
    }

    [Test]
    public void AnInconsistentHostIsReportedAsAnInternalErrorAndExits70()
    {
        var result = HostDemo.Run(1, 0, NullLoggerFactory.Instance) with
        {
            AuditFindings = [new AuditFinding("munmap(pages 20-23)", ["pfn:0x19 is free but 1 PTEs map it"])],
        };
        using var output = new StringWriter();
        using var error = new StringWriter();

        var exitCode = HostDemoCommand.Report(result, new CliContext(output, error, isTerminal: false), plain: true);

        Assert.Multiple(() =>
        {
            Assert.That(exitCode, Is.EqualTo(ExitCodes.InternalError));
            Assert.That(output.ToString(), Does.Contain(": INCONSISTENT, 1 violation after 1 step"));
            Assert.That(output.ToString(), Does.Contain("pfn:0x19 is free but 1 PTEs map it"));
            Assert.That(error.ToString().TrimEnd().Split('\n'), Has.Length.EqualTo(1));
            Assert.That(error.ToString(), Does.StartWith("hv: internal error: the host MM auditor found 1 violation"));
        });
    }

    [Test]
    public void SameSeedPrintsTheSameOutput()
    {
        var second = RunDemo("--seed", "1");

        Assert.That(second.Stdout, Is.EqualTo(s_seedOne.Value.Stdout));
    }

    [TestCase("demo", "host")]
    [TestCase("demo", "notifier")]
    public void DemoHostAndItsFormerNameRunTheSameDemo(string command, string subcommand)
    {
        var viaSubcommand = Hv.Run([command, subcommand, "--plain", "--seed", "1"]);

        Assert.Multiple(() =>
        {
            Assert.That(viaSubcommand.ExitCode, Is.Zero, viaSubcommand.Stderr);
            Assert.That(viaSubcommand.Stdout, Is.EqualTo(s_seedOne.Value.Stdout));
        });
    }

    [Test]
    public void DifferentSeedsPickDifferentRanges()
    {
        var one = RunDemo("--seed", "1", "--ranges", "8");
        var two = RunDemo("--seed", "2", "--ranges", "8");

        Assert.That(Timeline(two).Column("range"), Is.Not.EqualTo(Timeline(one).Column("range")));
    }

    [TestCase(0)]
    [TestCase(5)]
    public void RangesOptionSetsTheNumberOfRandomOperations(int ranges)
    {
        var table = Timeline(RunDemo("--ranges", ranges.ToString(CultureInfo.InvariantCulture)));

        Assert.That(table.Column("detail").Count(d => d.StartsWith("random ", StringComparison.Ordinal)), Is.EqualTo(ranges));
    }

    private static Dictionary<string, long> Counters(string section, string column)
    {
        var table = PlainTable.After(s_seedOne.Value.StdoutLines, section);
        return table.Rows.ToDictionary(r => table.Cell(r, "counter"), r => long.Parse(table.Cell(r, column), CultureInfo.InvariantCulture));
    }
}
