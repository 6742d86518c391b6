using Hypervisor.Vmm.Cli;
using Hypervisor.Vmm.Demo.Ksm;
using Hypervisor.Vmm.Tests.Support;

namespace Hypervisor.Vmm.Tests.Demo;

/// <summary>
/// <see cref="KsmDemo"/> on small sizes: the guests' pages merge and memory is saved, every rewrite breaks a merged page
/// copy-on-write and stays the writer's own, every audit is clean, and legacy change_pte (almost) never finds an spte.
/// </summary>
public sealed class KsmDemoTests
{
    private static KsmDemoOptions Small(bool legacyChangePte = true) => new()
    {
        Vms = 3,
        GuestBytes = 16UL << 20,
        Pages = 512,
        Kinds = 4,
        Every = 4,
        SleepMilliseconds = 0,
        LegacyChangePte = legacyChangePte,
        GuestsFolder = Path.GetDirectoryName(GuestImages.ImagePath("ksm")),
    };

    [Test]
    [Category(TestCategories.Guest)]
    public void GuestsMergeSaveMemoryAndStayIsolated()
    {
        var result = new KsmDemo(Small()).Run();

        Assert.Multiple(() =>
        {
            Assert.That(result.Problem, Is.Null);
            Assert.That(result.Settled, Is.True);
            Assert.That(result.Vms.Select(v => v.Verdict), Is.All.StartWith("ksm: OK"));
            Assert.That(result.AfterMerge.MergingPages, Is.All.GreaterThanOrEqualTo(512 - 4), "every filled page of every VM is merged, but for the tree's own copies");
            Assert.That(result.AfterMerge.Ksm.PagesSharing, Is.GreaterThanOrEqualTo((3 * 512) - 8), "4 contents × 3 VMs × 512 pages collapse to a few KSM pages");
            Assert.That(result.FramesSaved, Is.GreaterThanOrEqualTo((3 * 512) - 8));
            Assert.That(result.AfterMerge.Ksm.GeneralProfit, Is.Positive);
            Assert.That(result.Vms.Select(v => v.RewrittenPages), Is.All.EqualTo(512 / 4));
            Assert.That(result.AfterRewrite.CowKsm - result.AfterMerge.CowKsm, Is.GreaterThanOrEqualTo(3 * 512 / 4), "every rewrite of a merged page copied it");
            Assert.That(result.Vms.Select(v => v.ForeignPages), Is.All.Zero, "no VM sees another's write");
            Assert.That(result.IsolationPassed, Is.True);
            Assert.That(result.AuditViolations, Is.Empty);
            Assert.That(result.Audits, Is.GreaterThan(3), "audits after ksmd batches and at each phase's end");
            Assert.That(result.Vms.Sum(v => v.ChangePteHits + v.ChangePteMisses), Is.Positive, "legacy change_pte was called on merge and COW");
            Assert.That(result.Vms.Sum(v => v.ChangePteHits), Is.LessThan(result.Vms.Sum(v => v.ChangePteMisses)), "inside start/end the spte is already zapped");
            Assert.That(result.Succeeded, Is.True, KsmDemoReport.Failure(result));
        });
    }

    [Test]
    [Category(TestCategories.Guest)]
    public void WithoutLegacyChangePteNothingIsCalled()
    {
        var result = new KsmDemo(Small(legacyChangePte: false) with { Vms = 2 }).Run();

        Assert.Multiple(() =>
        {
            Assert.That(result.Succeeded, Is.True, KsmDemoReport.Failure(result));
            Assert.That(result.Vms.Sum(v => v.ChangePteHits + v.ChangePteMisses), Is.Zero);
        });
    }

    [TestCase("--vms 1", "--vms")]
    [TestCase("--vms 17", "--vms")]
    [TestCase("--pages 70000", "--pages")]
    [TestCase("--every 1", "--every")]
    [TestCase("--pages 8192 -m 16M", "guest RAM must be")]
    [TestCase("--kinds 9000 --pages 100", "kinds must be 1 to the page count")]
    public void BadOptionsPrintOneErrorLineAndExitTwo(string options, string message)
    {
        var result = Hv.Run(["demo", "ksm", "--plain", .. options.Split(' ')]);

        CliAssert.OneErrorLine(result, message);
    }

    [Test]
    [Category(TestCategories.Guest)]
    public void TheCommandPrintsMemorySavedIsolationAndChangePte()
    {
        var guests = Path.GetDirectoryName(GuestImages.ImagePath("ksm"))!;
        var result = Hv.Run("demo", "ksm", "--plain", "--vms", "2", "-m", "16M", "--pages", "256", "--sleep", "0", "--guests", guests);

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.Zero, result.Stdout + result.Stderr);
            Assert.That(result.Stdout, Does.Contain("of host memory saved across 2 VMs"));
            Assert.That(result.Stdout, Does.Contain("Isolation: passed"));
            Assert.That(result.Stdout, Does.Match(@"change_pte: \d[\d,]* of \d[\d,]* calls found an spte"));
            Assert.That(result.StdoutLines.Any(l => l.StartsWith("pages_sharing ", StringComparison.Ordinal)), Is.True);
        });
    }
}
