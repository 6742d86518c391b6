using System.Globalization;
using System.Text.RegularExpressions;
using Hypervisor.Vmm.Cli;
using Hypervisor.Vmm.Demo.Migrate;
using Hypervisor.Vmm.Tests.Support;

namespace Hypervisor.Vmm.Tests.Demo;

/// <summary>
/// <see cref="MigrateDemo"/> on a small guest: every trip moves all resident guest pages to the other node under the
/// running guest, NUMA balancing then pulls most of them to the vCPU's node, the guest and the host's read-back find
/// every page intact, and every audit is clean; the command prints the tables and exits 0; bad options exit 2.
/// </summary>
public sealed class MigrateDemoTests
{
    private static MigrateDemoOptions Small() => new()
    {
        GuestBytes = 8UL << 20,
        Pages = 512,
        Kinds = 4,
        Every = 4,
        Passes = 3,
        Trips = 4,
        GuestsFolder = Path.GetDirectoryName(GuestImages.ImagePath("ksm")),
    };

    [Test]
    [Category(TestCategories.Guest)]
    public void EveryTripMovesTheGuestsPagesAndBalancingPullsThemToTheVcpusNode()
    {
        var result = new MigrateDemo(Small()).Run();

        Assert.Multiple(() =>
        {
            Assert.That(result.Problem, Is.Null);
            Assert.That(result.Trips.Select(t => t.TargetNode), Is.EqualTo(new[] { 1, 0, 1, 0 }), "node 0 → 1 → 0 → 1 → 0");
            foreach (var trip in result.Trips)
            {
                Assert.That(trip.Summary.Migrated, Is.GreaterThanOrEqualTo(512), $"trip {trip.Number} moved every filled page");
                Assert.That(trip.PagesPerNodeAfter[trip.TargetNode], Is.GreaterThanOrEqualTo(512), $"trip {trip.Number}: the pages are on node {trip.TargetNode}");
            }

            Assert.That(result.Trips[0].SptesZapped, Is.GreaterThanOrEqualTo(512 / 2).And.LessThanOrEqualTo(result.Trips[0].Summary.Migrated), "the first trip zapped the sptes of the pages the guest had mapped (most of its pages), none other");
            Assert.That(result.Trips.Sum(t => t.EptViolations), Is.Positive, "the guest refaulted to the new frames");
            Assert.That(result.Migration.PgmigrateSuccess, Is.GreaterThanOrEqualTo(4 * 512));
            Assert.That(result.Migration.EntriesInstalled, Is.EqualTo(result.Migration.EntriesRemoved), "every migration entry was replaced");

            var balancing = result.Balancing!;
            Assert.That(balancing, Is.Not.Null);
            Assert.That(balancing.PagesPerNodeBefore[1], Is.Zero, "bound to node 0 before balancing");
            Assert.That(balancing.DataPagesPerNodeBefore, Is.EqualTo(new long[] { 512, 0 }));
            Assert.That(balancing.Balanced, Is.True);
            Assert.That(balancing.DataPagesPerNodeAfter[1], Is.GreaterThanOrEqualTo(0.9 * 512), "most of the guest's pages followed its vCPU to node 1");
            Assert.That(balancing.Stats.NumaPteUpdates, Is.Positive);
            Assert.That(balancing.Stats.NumaHintFaults, Is.Positive);
            Assert.That(balancing.Stats.NumaPagesMigrated, Is.GreaterThanOrEqualTo(balancing.DataPagesPerNodeAfter[1]), "each of the guest's pages on node 1 was moved there by a hinting fault (new pages the vCPU faults in start there)");
            Assert.That(balancing.SptesZapped, Is.Positive, "the cost: the scans zapped sptes");
            Assert.That(balancing.EptViolations, Is.Positive, "and the guest refaulted");

            Assert.That(result.GuestPassed, Is.True, result.Verdict);
            Assert.That(result.HostCheckedPages, Is.EqualTo(512));
            Assert.That(result.HostCorruptedPages, Is.Zero);
            Assert.That(result.AuditViolations, Is.Empty);
            Assert.That(result.Audits, Is.GreaterThanOrEqualTo(4 + balancing.Steps), "after every trip and every balancing step");
            Assert.That(result.Succeeded, Is.True, MigrateDemoReport.Failure(result));
        });
    }

    [Test]
    [Category(TestCategories.Guest)]
    public void TheCommandPrintsTheTripsAndTheBalancingPhaseAndExitsZero()
    {
        var guests = Path.GetDirectoryName(GuestImages.ImagePath("ksm"))!;
        var result = Hv.Run("demo", "migrate", "--plain", "-m", "8M", "--pages", "512", "--kinds", "4", "--every", "4", "--passes", "3", "--trips", "4", "--guests", guests);

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.Zero, result.Stdout + result.Stderr);
            Assert.That(result.StdoutLines.Any(l => l.StartsWith("hv demo migrate: ", StringComparison.Ordinal) && l.EndsWith("pages migrated under a running guest, every page intact", StringComparison.Ordinal)), Is.True, result.Stdout);
            Assert.That(Value(result, "pgmigrate_success"), Is.GreaterThanOrEqualTo(4 * 512));
            Assert.That(Value(result, "pgmigrate_fail"), Is.GreaterThanOrEqualTo(0));
            Assert.That(Value(result, "numa_pages_migrated"), Is.Positive);
            Assert.That(Value(result, "numa_pte_updates"), Is.Positive);
            Assert.That(result.StdoutLines.Count(l => Regex.IsMatch(l, @"^[1-4]\s+[01]\s+[\d,]+\s+\d+\s+\d+\s+[\d.,]+ ms")), Is.EqualTo(4), "a row per trip");
            foreach (var row in new[] { "migration-entry waits", "time per trip", "pages per node before", "pages per node after", "numa_hint_faults", "sptes zapped", "EPT violations" })
            {
                Assert.That(result.StdoutLines.Any(l => l.StartsWith(row, StringComparison.Ordinal)), Is.True, $"row '{row}'");
            }

            Assert.That(result.Stdout, Does.Contain("Guest: ksm: OK"));
            Assert.That(result.Stdout, Does.Contain("all clean."));
        });
    }

    [Test]
    [Explicit("a long run: many trips and small balancing windows under a guest that checks its pages many times")]
    [Category(TestCategories.Stress)]
    public void ManyTripsAndSmallBalancingWindowsStayAuditedAndIntact([Values(64, 512)] int budget)
    {
        var result = new MigrateDemo(Small() with { Pages = 1024, GuestBytes = 16UL << 20, Passes = 40, Trips = 40, BalanceBudget = budget }).Run();

        Assert.Multiple(() =>
        {
            Assert.That(result.Trips, Has.Count.EqualTo(40));
            Assert.That(result.Trips.Select(t => t.Summary.Migrated), Is.All.GreaterThanOrEqualTo(1024));
            Assert.That(result.AuditViolations, Is.Empty);
            Assert.That(result.HostCorruptedPages, Is.Zero);
            Assert.That(result.Succeeded, Is.True, MigrateDemoReport.Failure(result));
        });
    }

    [TestCase("--trips 3", "--trips expects a whole number from 4")]
    [TestCase("--pages 70000", "--pages")]
    [TestCase("--every 1", "--every")]
    [TestCase("--passes 0", "--passes")]
    [TestCase("--balance-budget -1", "--balance-budget")]
    [TestCase("--pages 8192 -m 16M", "guest RAM must be a multiple of 4 KiB from 36 MiB")]
    [TestCase("--kinds 600 --pages 512", "kinds must be 1 to the page count (512), got 600")]
    public void BadOptionsPrintOneErrorLineAndExitTwo(string options, string message)
    {
        var result = Hv.Run(["demo", "migrate", "--plain", .. options.Split(' ')]);

        CliAssert.OneErrorLine(result, message);
    }

    private static long Value(CliResult result, string figure)
    {
        var line = result.StdoutLines.First(l => l.StartsWith(figure + " ", StringComparison.Ordinal));
        var match = Regex.Match(line[figure.Length..], @"^\s+([\d,]+)");
        Assert.That(match.Success, Is.True, line);
        return long.Parse(match.Groups[1].Value, NumberStyles.AllowThousands, CultureInfo.InvariantCulture);
    }
}
