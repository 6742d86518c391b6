using Hypervisor.HostMm;
using Hypervisor.Vmm.Cli;
using Hypervisor.Vmm.Demo.Thp;
using Hypervisor.Vmm.Tests.Support;

namespace Hypervisor.Vmm.Tests.Demo;

/// <summary>
/// <see cref="ThpDemo"/> on a small guest: THP off maps no 2 MiB spte and faults per 4 KiB, --thp always maps 2 MiB
/// leaves with far fewer EPT violations and table pages; the storm splits every huge page and pages_2m drops, khugepaged
/// collapses them back and pages_2m returns; the guest and the host's read-back find every page intact, every audit is
/// clean; the command prints its rows and exits 0; bad options exit 2.
/// </summary>
public sealed class ThpDemoTests
{
    private static ThpDemoOptions Small() => new()
    {
        GuestBytes = 8UL << 20,
        Pages = 512,
        Kinds = 4,
        Every = 4,
        Passes = 1,
        GuestsFolder = Path.GetDirectoryName(GuestImages.ImagePath("ksm")),
    };

    [Test]
    [Category(TestCategories.Guest)]
    public void HugePagesCutEptFaultsThenSplitUnderTheGuestAndCollapseBack()
    {
        var result = new ThpDemo(Small()).Run();

        Assert.Multiple(() =>
        {
            Assert.That(result.Problem, Is.Null);
            var off = result.Off!;
            var on = result.On!;
            Assert.That(off.Mode, Is.EqualTo(ThpMode.Never));
            Assert.That(off.Pages2M, Is.Zero);
            Assert.That(off.EptViolations, Is.GreaterThanOrEqualTo(512), "THP off: one violation per 4 KiB page touched");
            Assert.That(on.Pages2M, Is.Positive);
            Assert.That(on.EptViolations, Is.LessThan(off.EptViolations / 10), "THP on: one violation per 2 MiB");
            Assert.That(on.EptTablePages, Is.LessThan(off.EptTablePages), "no last-level EPT tables under 2 MiB leaves");
            Assert.That(on.Instructions, Is.EqualTo(off.Instructions), "the same guest work");

            var storm = result.Storm!;
            Assert.That(storm.Pages2MBefore, Is.Positive);
            Assert.That(storm.Splits, Is.EqualTo(storm.Mprotects).And.EqualTo(storm.HugeLeavesBefore), "every huge page was split");
            Assert.That(storm.Pages2MAfterStorm, Is.LessThan(storm.Pages2MBefore));
            Assert.That(storm.RefaultsAfterStorm, Is.Positive, "the guest refaulted at 4 KiB");
            Assert.That(storm.Collapsed, Is.Positive);
            Assert.That(storm.Pages2MAtEnd, Is.GreaterThan(storm.Pages2MAfterStorm), "the guest's touches after the collapse map 2 MiB leaves again");

            Assert.That(result.StormRun!.GuestPassed, Is.True, result.StormRun.Verdict);
            Assert.That(result.HostCheckedPages, Is.EqualTo(512));
            Assert.That(result.HostCorruptedPages, Is.Zero);
            Assert.That(result.Audits, Is.GreaterThanOrEqualTo(3));
            Assert.That(result.AuditViolations, Is.Empty);
            Assert.That(result.Succeeded, Is.True, ThpDemoReport.Failure(result));
        });
    }

    [Test]
    [Category(TestCategories.Guest)]
    public void TheCommandPrintsTheComparisonAndTheStormAndExitsZero()
    {
        var guests = Path.GetDirectoryName(GuestImages.ImagePath("ksm"))!;
        var result = Hv.Run("demo", "thp", "--plain", "-m", "8M", "--pages", "512", "--kinds", "4", "--every", "4", "--passes", "1", "--guests", guests);

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.EqualTo(ExitCodes.Success), result.Stdout + result.Stderr);
            Assert.That(result.Stdout, Does.Contain("hv demo thp: 2 MiB EPT leaves over host huge pages"));
            foreach (var row in new[] { "EPT violations", "EPT table pages", "pages_2m", "TLB misses", "2-D walks", "guest time", "thp_split_pmd", "pages_2m after the storm", "thp_collapse_alloc", "pages_2m at the end" })
            {
                Assert.That(result.StdoutLines.Any(l => l.StartsWith(row + " ", StringComparison.Ordinal)), Is.True, $"row '{row}'\n{result.Stdout}");
            }

            Assert.That(result.Stdout, Does.Contain("all clean."));
            Assert.That(result.Stderr, Is.Empty);
        });
    }

    [TestCase("--mem 9M", "guest RAM must be a multiple of 2 MiB")]
    [TestCase("--pages 0", "--pages")]
    [TestCase("--collapse-budget 100", "--collapse-budget")]
    [TestCase("--pages 4096 -m 8M", "guest RAM must be a multiple of 2 MiB from 20 MiB")]
    public void BadOptionsPrintOneErrorLineAndExitTwo(string options, string message)
    {
        var result = Hv.Run(["demo", "thp", "--plain", .. options.Split(' ')]);

        CliAssert.OneErrorLine(result, message);
    }
}
