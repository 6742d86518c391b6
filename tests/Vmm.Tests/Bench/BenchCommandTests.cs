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
}
