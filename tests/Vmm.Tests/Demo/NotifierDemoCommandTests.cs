using Hypervisor.Vmm.Tests.Support;

namespace Hypervisor.Vmm.Tests.Demo;

/// <summary><c>hv demo notifier --plain</c>, read back as text the way a user (or a script) reads it.</summary>
public sealed class NotifierDemoCommandTests
{
    private static CliResult RunDemo(params string[] extra) => Hv.Run(["demo", "notifier", "--plain", .. extra]);

    private static PlainTable Timeline(CliResult result) => PlainTable.After(result.StdoutLines, "Timeline");

    [Test]
    public void RunsToCompletionWithNothingOnStderr()
    {
        var result = RunDemo("--seed", "1");

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.Zero);
            Assert.That(result.Stderr, Is.Empty);
            Assert.That(result.Stdout, Does.Contain("There is no host memory manager yet"));
            Assert.That(result.Stdout, Does.Not.Contain("\u001b"), "no terminal escapes in plain output");
        });
    }

    [Test]
    public void EveryBlockableStartIsFollowedByItsEndForTheSameRange()
    {
        var table = Timeline(RunDemo("--seed", "1"));
        var rows = table.Rows.Select((row, index) => (Index: index, Kind: table.Cell(row, "kind"), Range: table.Cell(row, "range"), Event: table.Cell(row, "event"))).ToList();
        var starts = rows.Where(r => r.Kind == "InvalidateRangeStart").ToList();

        Assert.That(starts, Is.Not.Empty);
        foreach (var start in starts)
        {
            var end = rows.FirstOrDefault(r => r.Index > start.Index && r.Kind == "InvalidateRangeEnd" && r.Range == start.Range && r.Event == start.Event);
            Assert.That(end.Kind, Is.EqualTo("InvalidateRangeEnd"), $"no end after the start in row {start.Index + 1} ({start.Range} {start.Event})");
            Assert.That(
                rows.Where(r => r.Index > start.Index && r.Index < end.Index).Select(r => r.Kind),
                Has.None.EqualTo("InvalidateRangeStart"),
                "the script is single-threaded: pairs do not nest");
        }

        Assert.That(rows.Count(r => r.Kind == "InvalidateRangeEnd"), Is.EqualTo(starts.Count));
    }

    [Test]
    public void TimelineShowsReleaseThenOnlyIntervalCallbacks()
    {
        var table = Timeline(RunDemo("--seed", "1"));
        var kinds = table.Column("kind").ToList();
        var release = kinds.IndexOf("Release");

        Assert.Multiple(() =>
        {
            Assert.That(release, Is.GreaterThan(0), "a Release row");
            Assert.That(table.Cell(table.Rows[release], "range"), Is.EqualTo("whole mm"));
            Assert.That(kinds.Skip(release), Has.None.EqualTo("InvalidateRangeStart").And.None.EqualTo("InvalidateRangeEnd"));
            Assert.That(kinds.Skip(release), Has.Some.EqualTo("IntervalInvalidate"), "the final unmap still reaches the interval subscriber");
            Assert.That(kinds.Skip(release), Has.Some.EqualTo("FrameFree"));
        });
    }

    [Test]
    public void RefusedNonBlockableStartIsShown()
    {
        var table = Timeline(RunDemo("--seed", "1"));

        Assert.Multiple(() =>
        {
            Assert.That(table.Column("event"), Has.Some.EqualTo("Unmap nonblock"));
            Assert.That(table.Column("detail"), Has.Some.StartsWith("sleeper refuses"));
        });
    }

    [Test]
    public void EveryRowIsOnTheMainThread()
    {
        var table = Timeline(RunDemo("--seed", "1"));

        Assert.That(table.Column("thread"), Is.All.EqualTo("main"));
    }

    [Test]
    public void UserChannelShowsAHintedInvalidateAndALastEventWithItsCounter()
    {
        var table = PlainTable.After(RunDemo("--seed", "1").StdoutLines, "User event channel reads");
        var types = table.Column("type").ToList();

        Assert.Multiple(() =>
        {
            Assert.That(types, Has.Some.EqualTo("Last"));
            Assert.That(types[^1], Is.EqualTo("Last"), "each read ends with its Last event");
            Assert.That(table.Column("flags"), Has.Some.StartsWith("hint"));
            Assert.That(table.Rows.Where(r => table.Cell(r, "type") == "Last").Select(r => table.Cell(r, "cookie / counter")), Is.All.Match(@"^counter \d+$"));
        });
    }

    [Test]
    public void PrintsTheChainCounters()
    {
        var table = PlainTable.After(RunDemo("--seed", "1").StdoutLines, "Chain counters (MmuNotifierChainStats)");
        var value = table.Rows.ToDictionary(r => table.Cell(r, "counter"), r => long.Parse(table.Cell(r, "value"), System.Globalization.CultureInfo.InvariantCulture));

        Assert.Multiple(() =>
        {
            Assert.That(value["FailedStarts"], Is.EqualTo(1));
            Assert.That(value["Starts"], Is.EqualTo(value["Ends"] + value["FailedStarts"]));
            Assert.That(value["Releases"], Is.GreaterThanOrEqualTo(1));
            Assert.That(value["Subscribers"], Is.Zero);
            Assert.That(value["Exiting"], Is.EqualTo(1));
        });
    }

    [Test]
    public void SameSeedPrintsTheSameOutput()
    {
        var first = RunDemo("--seed", "1");
        var second = RunDemo("--seed", "1");

        Assert.That(second.Stdout, Is.EqualTo(first.Stdout));
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
        var table = Timeline(RunDemo("--ranges", ranges.ToString(System.Globalization.CultureInfo.InvariantCulture)));

        Assert.That(table.Column("detail").Count(d => d.StartsWith("random ", StringComparison.Ordinal)), Is.EqualTo(ranges));
    }
}
