using System.CommandLine;
using Hypervisor.Vmm.Cli;
using Hypervisor.Vmm.Cli.Output;
using Hypervisor.Vmm.Tests.Support;

namespace Hypervisor.Vmm.Tests.Cli;

/// <summary>
/// <c>--json</c> on <c>hv run</c> and <c>hv bench</c>: standard output is one document of schema <c>hv-report/1</c>
/// (docs/report-schema.md) and nothing else, the guest's console moves to standard error, the counters are the text
/// report's (Linux's names where it uses them) with the values the text report prints, several VMs are several
/// entries; a command that fails before its report writes no document.
/// </summary>
public sealed class JsonReportTests
{
    [Test]
    [Category(TestCategories.Guest)]
    public void RunWritesOneDocumentAndTheConsoleGoesToStandardError()
    {
        var result = Hv.Run("run", GuestImages.ImagePath("hello"), "--json");
        var text = Hv.Run("run", GuestImages.ImagePath("hello"), "--plain");

        Assert.That(result.ExitCode, Is.Zero, result.Stderr);
        var report = JsonReport.Parse(result.Stdout);
        var vm = report.Vms.Single();
        var counters = vm.GetProperty("counters");
        Assert.Multiple(() =>
        {
            Assert.That(report.Problems, Is.Empty, string.Join(Environment.NewLine, report.Problems));
            Assert.That(report.Root.GetProperty("kind").GetString(), Is.EqualTo("run"));
            Assert.That(report.Root.GetProperty("exitCode").GetInt32(), Is.Zero);
            Assert.That(report.Root.GetProperty("succeeded").GetBoolean(), Is.True);
            Assert.That(report.Root.GetProperty("title").GetString(), Is.EqualTo(text.StdoutLines.First(l => l.StartsWith("hv run ", StringComparison.Ordinal))));
            Assert.That(result.Stderr, Does.Contain("Hello from the guest"), "the console is on standard error");
            Assert.That(result.Stdout, Does.Not.Contain("Hello from the guest"));
            Assert.That(vm.GetProperty("label").GetString(), Is.EqualTo("hello.elf"));

            // The same figures as the text report's rows: a deterministic guest, so equal counts.
            Assert.That(counters.GetProperty("instructions").GetInt64(), Is.EqualTo(TextValue(text.StdoutLines, "instructions")));
            Assert.That(counters.GetProperty("ept_violations").GetInt64(), Is.EqualTo(TextValue(text.StdoutLines, "EPT violations")).And.Positive);
            Assert.That(counters.GetProperty("sptes_present").GetInt64(), Is.EqualTo(TextValue(text.StdoutLines, "sptes present")));
            Assert.That(counters.GetProperty("guest_exit_code").GetInt32(), Is.Zero);
            Assert.That(vm.GetProperty("series").GetProperty("resident_pages").EnumerateArray().Last().GetInt64(), Is.Positive);
            Assert.That(report.Figure("EPT violations").GetInt64(), Is.EqualTo(counters.GetProperty("ept_violations").GetInt64()), "the table's figures hold numbers");
        });
    }

    [Test]
    [Category(TestCategories.Guest)]
    public void RunUnderTheJitTierHasItsThresholdAndCompileCounters()
    {
        var result = Hv.Run("run", GuestImages.ImagePath("hello"), "--jit-threshold", "1", "--jit-compile", "Sync", "--json");

        Assert.That(result.ExitCode, Is.Zero, result.Stderr);
        var report = JsonReport.Parse(result.Stdout);
        var vm = report.Vms.Single().GetProperty("counters");
        Assert.Multiple(() =>
        {
            Assert.That(report.Problems, Is.Empty, string.Join(Environment.NewLine, report.Problems));
            Assert.That(vm.GetProperty("jit_threshold").GetInt32(), Is.EqualTo(1));
            Assert.That(vm.GetProperty("jit_blocks_compiled").GetInt64(), Is.Positive, "at 1 every block hello runs is compiled");
            Assert.That(vm.GetProperty("jit_compile_ms").GetDouble(), Is.Positive);
            Assert.That(vm.GetProperty("jit_instructions").GetInt64(), Is.Positive.And.LessThanOrEqualTo(vm.GetProperty("instructions").GetInt64()));
        });
    }

    [Test]
    [Category(TestCategories.Guest)]
    public void RunUnderHostMemHasLinuxsReclaimCountersPerHostAndSwapPerVm()
    {
        var result = Hv.Run("run", GuestImages.ImagePath("memtest"), "-m", "16M", "--host-mem", "4M", "--cmdline", "mib=8", "--json");

        Assert.That(result.ExitCode, Is.Zero, result.Stderr);
        var report = JsonReport.Parse(result.Stdout);
        var vm = report.Vms.Single().GetProperty("counters");
        Assert.Multiple(() =>
        {
            Assert.That(report.Problems, Is.Empty, string.Join(Environment.NewLine, report.Problems));
            foreach (var name in new[] { "pswpout", "pswpin", "pgscan", "pgsteal" })
            {
                Assert.That(report.Counter(name), Is.Positive, name);
            }

            Assert.That(report.Counter("host_mem_limit_bytes"), Is.EqualTo(4 << 20));
            Assert.That(report.Counter("pswpout"), Is.EqualTo(report.Figure("pswpout").GetDouble()), "the counter is the row's value");
            Assert.That(vm.GetProperty("pages_on_swap").ValueKind, Is.EqualTo(System.Text.Json.JsonValueKind.Number));
            Assert.That(report.Vms.Single().GetProperty("series").GetProperty("pages_on_swap").EnumerateArray().Max(v => v.GetInt64()), Is.Positive, "the history saw pages on swap");
        });
    }

    [Test]
    [Category(TestCategories.Guest)]
    public void SeveralVmsAreSeveralEntriesWithTheirLabels()
    {
        var result = Hv.Run("run", GuestImages.ImagePath("hello"), "--vms", "3", "--json");

        Assert.That(result.ExitCode, Is.Zero, result.Stderr);
        var report = JsonReport.Parse(result.Stdout);
        Assert.Multiple(() =>
        {
            Assert.That(report.Problems, Is.Empty, string.Join(Environment.NewLine, report.Problems));
            Assert.That(report.Vms.Select(v => v.GetProperty("label").GetString()), Is.EqualTo(new[] { "[0] hello.elf", "[1] hello.elf", "[2] hello.elf" }));
            Assert.That(report.Vms.Select(v => v.GetProperty("counters").GetProperty("instructions").GetInt64()).Distinct().Single(), Is.Positive, "three copies of one guest retire the same instructions");
            Assert.That(report.Counter("vms"), Is.EqualTo(3));
            Assert.That(result.StderrLines.Count(l => l.StartsWith("[1] Hello from the guest", StringComparison.Ordinal)), Is.EqualTo(1));
        });
    }

    [Test]
    public void BenchWritesItsMeasureAsCounters()
    {
        var result = Hv.Run("bench", "zap", "--size", "4M", "--repeat", "1", "--json");

        Assert.That(result.ExitCode, Is.Zero, result.Stderr);
        var report = JsonReport.Parse(result.Stdout);
        Assert.Multiple(() =>
        {
            Assert.That(report.Problems, Is.Empty, string.Join(Environment.NewLine, report.Problems));
            Assert.That(report.Root.GetProperty("kind").GetString(), Is.EqualTo("bench.zap"));
            Assert.That(report.Vms, Is.Empty, "a bench builds no VM");
            Assert.That(report.Counter("ns_per_item"), Is.Positive);
            Assert.That(report.Counter("items"), Is.EqualTo(1024), "4 MiB of 4 KiB sptes");
            Assert.That(report.Counter("ratio_to_baseline"), Is.EqualTo(report.Counter("ns_per_item") / report.Counter("baseline_ns_per_item")).Within(1e-9));
        });
    }

    [Test]
    public void AMissingImageWritesNoDocument()
    {
        var result = Hv.Run("run", "/nonexistent/image.elf", "--json");

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.EqualTo(1));
            Assert.That(result.Stdout, Is.Empty);
            Assert.That(result.StderrLines, Has.Count.EqualTo(1));
            Assert.That(result.StderrLines[0], Does.StartWith("hv: error: image '"));
        });
    }

    [Test]
    [Category(TestCategories.Guest)]
    public void AnUnwritableReportPathFailsBeforeTheGuestRuns()
    {
        var result = Hv.Run("run", GuestImages.ImagePath("hello"), "--json", "--report", "/nonexistent-folder/report.html");

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.EqualTo(2));
            Assert.That(result.Stdout, Is.Empty);
            Assert.That(result.StderrLines, Has.Count.EqualTo(1), result.Stderr);
            Assert.That(result.StderrLines[0], Does.StartWith("hv: error: --report /nonexistent-folder/report.html: '/nonexistent-folder/report.html' cannot be created: "));
            Assert.That(result.Stderr, Does.Not.Contain("Hello from the guest"), "the guest did not run");
        });
    }

    [Test]
    public void AFolderAsReportPathIsRefused()
    {
        var folder = Path.GetTempPath();
        var result = Hv.Run("bench", "zap", "--size", "4M", "--repeat", "1", "--report", folder);

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.EqualTo(2));
            Assert.That(result.Stdout, Is.Empty, "nothing ran");
            Assert.That(result.StderrLines.Single(), Does.EndWith("cannot be created: it is a folder"));
        });
    }

    [Test]
    public void TheTextReportStaysOnStandardOutputWithReportAlone()
    {
        var path = Path.Combine(Path.GetTempPath(), "hv-bench-" + Guid.NewGuid().ToString("N") + ".html");
        try
        {
            var result = Hv.Run("bench", "zap", "--size", "4M", "--repeat", "1", "--report", path);

            Assert.Multiple(() =>
            {
                Assert.That(result.ExitCode, Is.Zero, result.Stderr);
                Assert.That(result.StdoutLines[0], Does.StartWith("hv bench: zap 4 MiB"), "the text report as without --report");
                Assert.That(result.StderrLines.Single(), Is.EqualTo($"hv: report: 0 VM(s) charted in {path}"));
                Assert.That(File.ReadAllText(path), Does.Contain($"<h1>{result.StdoutLines[0]}</h1>"));
            });
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Test]
    public void OneCallGivesACommandBothOptionsWhetherItsActionIsSynchronousOrNot()
    {
        // What a new demo needs: its report through ReportWriter.Create, and JsonReportOptions.AddTo (which hv does for
        // every 'hv demo' subcommand).
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        var context = new CliContext(stdout, stderr, isTerminal: false);
        var cli = new HvCli(context);
        var probe = new Command("probe");
        probe.SetAction(async (_, _) =>
        {
            await Task.Yield();
            context.Output.WriteLine("progress ...");
            var writer = ReportWriter.Create(context, plain: true);
            writer.Title("probe: done");
            var table = new ReportTable(new ReportColumn("figure"), new ReportColumn("value", AlignRight: true));
            table.AddRow("pswpout", "1,234");
            writer.Table(table);
            return 3;
        });
        cli.Root.Subcommands.Add(JsonReportOptions.AddTo(probe, context, "demo.probe"));

        var exitCode = cli.Invoke(["probe", "--json"]);

        var report = JsonReport.Parse(stdout.ToString());
        Assert.Multiple(() =>
        {
            Assert.That(exitCode, Is.EqualTo(3));
            Assert.That(report.Problems, Is.Empty, string.Join(Environment.NewLine, report.Problems));
            Assert.That(report.Root.GetProperty("kind").GetString(), Is.EqualTo("demo.probe"));
            Assert.That(report.Root.GetProperty("exitCode").GetInt32(), Is.EqualTo(3));
            Assert.That(report.Root.GetProperty("succeeded").GetBoolean(), Is.False);
            Assert.That(report.Root.GetProperty("command").GetString(), Is.EqualTo("hv probe --json"));
            Assert.That(report.Figure("pswpout").GetInt64(), Is.EqualTo(1234));
            Assert.That(stderr.ToString(), Is.EqualTo("progress ..." + Environment.NewLine), "progress goes to standard error, the text report nowhere");
        });
    }

    // The value column of the text report's row named figure: "EPT violations  24  ...".
    private static long TextValue(IReadOnlyList<string> lines, string figure)
    {
        var row = lines.Single(l => l.StartsWith(figure + "  ", StringComparison.Ordinal));
        var value = row[figure.Length..].TrimStart().Split("  ")[0];
        return long.Parse(value.Replace(",", string.Empty, StringComparison.Ordinal), System.Globalization.CultureInfo.InvariantCulture);
    }
}
