using Hypervisor.Vmm.Tests.Support;

namespace Hypervisor.Vmm.Tests.Bench;

public class BenchCommandTests
{
    [TestCase("zap")]
    [TestCase("age")]
    public void ZapAndAgePrintThroughputBesideTheirBaseline(string operation)
    {
        var result = Hv.Run("bench", operation, "--size", "2M", "--repeat", "1", "--plain");

        Assert.That(result.ExitCode, Is.Zero, result.Stderr);
        Assert.That(result.Stdout, Does.Contain($"{operation} 2 MiB"));
        Assert.That(result.Stdout, Does.Contain("512 items per call, 32 consecutive calls per repetition"));
        Assert.That(result.Stdout, Does.Not.Contain("Infinity"), "a 2 MiB call alone is below the clock's resolution; the calls are timed together");
        var ratio = System.Text.RegularExpressions.Regex.Match(result.Stdout, @"ratio to the baseline: (\d+\.\d\d)x");
        Assert.That(ratio.Success, Is.True, result.Stdout);
        Assert.That(double.Parse(ratio.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture), Is.Positive);
    }

    [Test]
    public void DirtyZapOnTheScalarPathSaysSo()
    {
        var result = Hv.Run("bench", "zap", "--size", "64K", "--repeat", "1", "--dirty", "--path", "scalar", "--plain");

        Assert.That(result.ExitCode, Is.Zero, result.Stderr);
        Assert.That(result.Stdout, Does.Contain("zap 64 KiB all-dirty (Scalar)"));
    }

    [Test]
    public void FaultMeasuresTheWholePath()
    {
        var result = Hv.Run("bench", "fault", "--size", "1M", "--repeat", "1", "--plain");

        Assert.That(result.ExitCode, Is.Zero, result.Stderr);
        Assert.That(result.Stdout, Does.Contain("EPT fault-in 1 MiB (with host demand-zero)"));
        Assert.That(result.Stdout, Does.Contain("256 items per repetition"));
    }

    [Test]
    public void TlbComparesHitsWithWalks()
    {
        var result = Hv.Run("bench", "tlb", "--size", "64K", "--repeat", "1", "--plain");

        Assert.That(result.ExitCode, Is.Zero, result.Stderr);
        Assert.That(result.Stdout, Does.Contain("TLB hit over 64 KiB (paging off)"));
        Assert.That(result.Stdout, Does.Contain("TLB miss: walk through EPT after a flush"));
    }

    [Test]
    public void ABareSizeIsMibAsForRunMem()
    {
        var result = Hv.Run("bench", "tlb", "--size", "1", "--repeat", "1", "--plain");

        Assert.That(result.ExitCode, Is.Zero, result.Stderr);
        Assert.That(result.Stdout, Does.Contain("TLB hit over 1 MiB (paging off)"));
    }

    [TestCase("3x")]
    [TestCase("0")]
    [TestCase("65G")]
    [TestCase("65537")]
    [TestCase("6000B")]
    public void BadSizesAreOneLineUsageErrors(string size)
    {
        var result = Hv.Run("bench", "zap", "--size", size);

        Assert.That(result.ExitCode, Is.EqualTo(2));
        Assert.That(result.StderrLines, Is.EqualTo(new[]
        {
            $"hv: error: --size expects a size from 4K to 64G in whole 4K pages (a bare number is MiB), got '{size}' (see 'hv bench zap --help')",
        }));
    }

    [TestCase("swap-out", "host", "host-only", "plain file: 32-page writes of the same pages")]
    [TestCase("swap-out", "ept", "through the EPT", "plain file: 32-page writes of the same pages")]
    [TestCase("swap-in", "host", "host-only", "plain file: 8-page reads of the same pages")]
    [TestCase("swap-in", "ept", "through the EPT", "plain file: 8-page reads of the same pages")]
    public void SwapPathsPrintTheirCostPerPageBesideThePlainFileBaselineAndThePairedRatio(string operation, string through, string named, string baseline)
    {
        var result = Hv.Run("bench", operation, "--size", "1M", "--repeat", "2", "--through", through, "--plain");

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.Zero, result.Stdout + result.Stderr);
            Assert.That(result.Stdout, Does.Contain($"{operation} 1 MiB {named}"));
            Assert.That(result.Stdout, Does.Contain(baseline));
            Assert.That(result.Stdout, Does.Contain("256 items per repetition"));
            Assert.That(Figure(result.Stdout, @"ratio to the baseline: (\d+\.\d\d)x"), Is.Positive, result.Stdout);
            Assert.That(Figure(result.Stdout, @"median of the repetitions' paired ratios: (\d+\.\d\d)x"), Is.Positive, result.Stdout);
        });
    }

    [Test]
    public void SwapInWritesItsFiguresAndThePairedRatioAsCounters()
    {
        var result = Hv.Run("bench", "swap-in", "--size", "512K", "--repeat", "3", "--through", "ept", "--json");

        Assert.That(result.ExitCode, Is.Zero, result.Stderr);
        var report = JsonReport.Parse(result.Stdout);
        Assert.Multiple(() =>
        {
            Assert.That(report.Problems, Is.Empty, string.Join(Environment.NewLine, report.Problems));
            Assert.That(report.Root.GetProperty("kind").GetString(), Is.EqualTo("bench.swap-in"));
            Assert.That(report.Counter("items"), Is.EqualTo(128), "512 KiB of 4 KiB pages");
            Assert.That(report.Counter("ns_per_item"), Is.Positive);
            Assert.That(report.Counter("baseline_ns_per_item"), Is.Positive);
            Assert.That(report.Counter("paired_ratio"), Is.Positive);
            Assert.That(report.Counter("direct_io"), Is.Zero, "buffered is the default");
        });
    }

    [TestCase("swap-out", "32-page writes")]
    [TestCase("swap-in", "8-page reads")]
    public void WithDirectIoBothTheSwapFileAndThePlainFileBypassThePageCache(string operation, string baseline)
    {
        DirectIo.IgnoreUnlessAvailable();
        var result = Hv.Run("bench", operation, "--size", "512K", "--repeat", "2", "--io", "direct", "--json");

        Assert.That(result.ExitCode, Is.Zero, result.Stderr);
        var report = JsonReport.Parse(result.Stdout);
        Assert.Multiple(() =>
        {
            Assert.That(report.Problems, Is.Empty, string.Join(Environment.NewLine, report.Problems));
            Assert.That(report.Root.GetProperty("title").GetString(), Does.EndWith($"{operation} 512 KiB host-only, O_DIRECT"));
            Assert.That(report.Counter("direct_io"), Is.EqualTo(1));
            Assert.That(report.Counter("items"), Is.EqualTo(128));
            Assert.That(report.Counter("baseline_ns_per_item"), Is.Positive);
            Assert.That(report.Counter("paired_ratio"), Is.Positive);
            Assert.That(result.Stdout, Does.Contain($"plain file, O_DIRECT: {baseline} of the same pages"));
        });
    }

    [Test]
    public void SwapOutWithAsyncWritebackSaysSoInItsTitleAndCounters()
    {
        var result = Hv.Run("bench", "swap-out", "--size", "512K", "--repeat", "2", "--writeback", "async", "--json");

        Assert.That(result.ExitCode, Is.Zero, result.Stderr);
        var report = JsonReport.Parse(result.Stdout);
        Assert.Multiple(() =>
        {
            Assert.That(report.Problems, Is.Empty, string.Join(Environment.NewLine, report.Problems));
            Assert.That(report.Root.GetProperty("title").GetString(), Does.EndWith("swap-out 512 KiB host-only, async writeback"));
            Assert.That(report.Counter("async_writeback"), Is.EqualTo(1));
            Assert.That(report.Counter("items"), Is.EqualTo(128));
            Assert.That(report.Counter("paired_ratio"), Is.Positive);
        });
    }

    [Test]
    public void SwapInHasNoWritebackOption()
    {
        var result = Hv.Run("bench", "swap-in", "--writeback", "async");

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.EqualTo(2));
            Assert.That(result.StderrLines, Has.Count.EqualTo(1));
            Assert.That(result.StderrLines[0], Does.StartWith("hv: error: Unrecognized command or argument '--writeback'"));
        });
    }

    [Test]
    public void AnUnknownIoModeIsAOneLineUsageError()
    {
        var result = Hv.Run("bench", "swap-out", "--io", "mmap");

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.EqualTo(2));
            Assert.That(result.StderrLines, Is.EqualTo(new[] { "hv: error: --io expects one of Buffered, Direct, got 'mmap' (see 'hv bench swap-out --help')" }));
        });
    }

    [TestCase("swap-out", "192K", "hv: error: --size for swap-out must be a multiple of 128K (the swap runs are 32 pages), got 192K (see 'hv bench swap-out --help')")]
    [TestCase("swap-in", "64K", "hv: error: --size expects a size from 128K to 1G in whole 4K pages (a bare number is MiB), got '64K' (see 'hv bench swap-in --help')")]
    [TestCase("swap-in", "2G", "hv: error: --size expects a size from 128K to 1G in whole 4K pages (a bare number is MiB), got '2G' (see 'hv bench swap-in --help')")]
    public void SwapSizesOutsideWholeRunsOrTheRangeAreOneLineUsageErrors(string operation, string size, string error)
    {
        var result = Hv.Run("bench", operation, "--size", size);

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.EqualTo(2));
            Assert.That(result.StderrLines, Is.EqualTo(new[] { error }));
            Assert.That(result.Stdout, Is.Empty);
        });
    }

    [Test]
    public void AnUnknownSwapPathIsAOneLineUsageError()
    {
        var result = Hv.Run("bench", "swap-in", "--through", "disk");

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.EqualTo(2));
            Assert.That(result.StderrLines, Is.EqualTo(new[] { "hv: error: --through expects one of Host, Ept, got 'disk' (see 'hv bench swap-in --help')" }));
        });
    }

    [TestCase("swap-out")]
    [TestCase("swap-in")]
    public void SwapHelpShowsTheSizeDefaultAndBothPaths(string operation)
    {
        var result = Hv.Run("bench", operation, "--help");
        var help = string.Join(' ', result.Stdout.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries));

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.Zero);
            Assert.That(help, Does.Match(@"--size <SIZE> Guest memory swapped \(a multiple of 128K: 32-page runs\): [^\[]*\(128K to 1G\)\. \[default: 64M\]"), result.Stdout);
            Assert.That(help, Does.Match(@"--through <Host\|Ept> host: [^\[]*\[default: Host\]"), result.Stdout);
        });
    }

    private static double Figure(string text, string pattern)
    {
        var match = System.Text.RegularExpressions.Regex.Match(text, pattern);
        return match.Success ? double.Parse(match.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) : double.NaN;
    }
}
