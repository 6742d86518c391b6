using System.Text.Json;
using Hypervisor.Vmm.Tests.Support;

namespace Hypervisor.Vmm.Tests.Demo;

/// <summary>
/// <c>--json</c> on every demo, each in a short form: one document of schema <c>hv-report/1</c> on standard output and
/// the progress lines on standard error; the demo's kind; one entry per VM the demo built, labelled by its options, with
/// its sampled series; the figures the demo claims, under the text report's (Linux's) names, as numbers.
/// </summary>
public sealed class DemoJsonReportTests
{
    private static string Guests => Path.GetDirectoryName(GuestImages.ImagePath("ksm"))!;

    [TestCase("demo")]
    [TestCase("demo", "host")]
    public void TheHostDemoWritesItsTablesWithNoVm(params string[] command)
    {
        var result = Hv.Run([.. command, "--json"]);

        Assert.That(result.ExitCode, Is.Zero, result.Stderr);
        var report = JsonReport.Parse(result.Stdout);
        Assert.Multiple(() =>
        {
            Assert.That(report.Problems, Is.Empty, string.Join(Environment.NewLine, report.Problems));
            Assert.That(report.Root.GetProperty("kind").GetString(), Is.EqualTo("demo.host"));
            Assert.That(report.Vms, Is.Empty, "the host demo runs the host MM without a VM");
            Assert.That(report.Figure("DemandZeroFaults").GetInt64(), Is.Positive, "the process's counters, as numbers");
            Assert.That(report.Root.GetProperty("sections").GetArrayLength(), Is.GreaterThan(2));
        });
    }

    [Test]
    [Category(TestCategories.Guest)]
    public void TheKsmDemoHasAnEntryPerVmWithItsMergedPages()
    {
        var result = Hv.Run("demo", "ksm", "--vms", "2", "-m", "8M", "--pages", "128", "--sleep", "0", "--guests", Guests, "--json");

        Assert.That(result.ExitCode, Is.Zero, result.Stderr);
        var report = JsonReport.Parse(result.Stdout);
        Assert.Multiple(() =>
        {
            Assert.That(report.Problems, Is.Empty, string.Join(Environment.NewLine, report.Problems));
            Assert.That(report.Root.GetProperty("kind").GetString(), Is.EqualTo("demo.ksm"));
            Assert.That(report.Vms, Has.Count.EqualTo(2));
            Assert.That(report.Vms.Select(v => v.GetProperty("label").GetString()), Has.All.Contains("8 MiB, ksm"));
            foreach (var vm in report.Vms)
            {
                Assert.That(Max(vm, "ksm_merging_pages"), Is.Positive, "each VM's pages were merged while it ran");
            }

            // pages_sharing before merging, after merging, after the rewrites.
            Assert.That(report.Figure("pages_sharing", 1).GetInt64(), Is.Positive);
            Assert.That(report.Figure("pages_sharing", 0).GetInt64(), Is.Zero);
            Assert.That(result.Stderr, Does.Contain("..."), "the progress lines are on standard error");
        });
    }

    [Test]
    [Category(TestCategories.Guest)]
    public void TheSwapDemoChartsEachPhasesVmAndTheHotSet()
    {
        // The smallest sizes the demo takes (memtest needs 4x its 4 MiB minimum host limit): its three phases, five VMs.
        var page = Path.Combine(Path.GetTempPath(), "hv-swap-report-" + Guid.NewGuid().ToString("N") + ".html");
        CliResult result;
        string html;
        try
        {
            result = Hv.Run("demo", "swap", "-m", "16M", "--host-mem", "4M", "--hot", "2", "--cold", "6", "--rounds", "2", "--ws-host-mem", "5M", "--swap", "zram", "--guests", Guests, "--json", "--report", page);
            html = File.Exists(page) ? File.ReadAllText(page) : string.Empty;
        }
        finally
        {
            File.Delete(page);
        }

        Assert.That(result.ExitCode, Is.Zero, result.Stderr);
        var report = JsonReport.Parse(result.Stdout);
        var labels = report.Vms.Select(v => v.GetProperty("label").GetString()!).ToList();
        Assert.Multiple(() =>
        {
            Assert.That(report.Problems, Is.Empty, string.Join(Environment.NewLine, report.Problems));
            Assert.That(report.Root.GetProperty("kind").GetString(), Is.EqualTo("demo.swap"));

            // memtest, the working set with aging on and off, memtest under each dirty policy.
            Assert.That(report.Vms, Has.Count.EqualTo(5), string.Join(Environment.NewLine, labels));
            Assert.That(labels[1], Does.Contain("secondary aging on").And.Contain("hot=2"));
            Assert.That(labels[2], Does.Contain("secondary aging off").And.Contain("hot=2"));
            Assert.That(Max(report.Vms[0], "pages_on_swap"), Is.Positive, "memtest's pages went to swap");
            foreach (var vm in report.Vms.Skip(1).Take(2))
            {
                var hot = vm.GetProperty("series").GetProperty("hot_set_resident").EnumerateArray().Where(v => v.ValueKind == JsonValueKind.Number).Select(v => v.GetInt64()).ToList();
                Assert.That(hot, Is.Not.Empty, "the working-set VMs watch their hot set");
                Assert.That(hot.Max(), Is.Positive.And.LessThanOrEqualTo(512), "2 MiB of hot set: at most 512 pages resident");
            }

            Assert.That(report.Figure("pswpout").GetInt64(), Is.Positive);

            // The page draws the hot set in the working-set VMs' charts (the picture of aging on and off), in no other.
            Assert.That(html.Split("<article ").Skip(1).Select(a => a.Contains("data-series=\"hot set resident\"", StringComparison.Ordinal)), Is.EqualTo(new[] { false, true, true, false, false }));
        });
    }

    [Test]
    [Category(TestCategories.Guest)]
    public void TheMigrateDemoHasItsVmOnTwoNodes()
    {
        var result = Hv.Run("demo", "migrate", "-m", "8M", "--pages", "256", "--kinds", "4", "--every", "4", "--passes", "2", "--trips", "4", "--guests", Guests, "--json");

        Assert.That(result.ExitCode, Is.Zero, result.Stderr);
        var report = JsonReport.Parse(result.Stdout);
        Assert.Multiple(() =>
        {
            Assert.That(report.Problems, Is.Empty, string.Join(Environment.NewLine, report.Problems));
            Assert.That(report.Root.GetProperty("kind").GetString(), Is.EqualTo("demo.migrate"));
            Assert.That(report.Vms.Single().GetProperty("label").GetString(), Does.Contain("2 NUMA nodes"));
            Assert.That(Max(report.Vms[0], "sptes_zapped"), Is.Positive, "migration zaps the sptes of the pages it moves");
            Assert.That(report.Figure("pgmigrate_success").ValueKind, Is.EqualTo(JsonValueKind.Number));
        });
    }

    [Test]
    [Category(TestCategories.Guest)]
    public void TheThpDemoHasAVmWithoutAndTwoWithHugePages()
    {
        var result = Hv.Run("demo", "thp", "-m", "8M", "--pages", "256", "--kinds", "4", "--every", "4", "--passes", "1", "--guests", Guests, "--json");

        Assert.That(result.ExitCode, Is.Zero, result.Stderr);
        var report = JsonReport.Parse(result.Stdout);
        Assert.Multiple(() =>
        {
            Assert.That(report.Problems, Is.Empty, string.Join(Environment.NewLine, report.Problems));
            Assert.That(report.Root.GetProperty("kind").GetString(), Is.EqualTo("demo.thp"));
            Assert.That(report.Vms.Select(v => v.GetProperty("label").GetString()!.Contains("thp always", StringComparison.Ordinal)), Is.EqualTo(new[] { false, true, true }));
            Assert.That(report.Figure("thp_split_pmd").GetInt64(), Is.Positive);
        });
    }

    private static long Max(JsonElement vm, string series) => vm.GetProperty("series").GetProperty(series).EnumerateArray().Max(v => v.GetInt64());
}
