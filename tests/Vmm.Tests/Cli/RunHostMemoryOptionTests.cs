using System.Text.RegularExpressions;
using Hypervisor.Vmm.Machine;
using Hypervisor.Vmm.Tests.Support;

namespace Hypervisor.Vmm.Tests.Cli;

/// <summary>
/// <c>hv run --host-mem</c> and its swap options: one <c>hv: error:</c> line and exit 2 for each bad value or
/// combination, and under a limit the report's reclaim and swap rows (the guest still passes).
/// </summary>
public sealed class RunHostMemoryOptionTests
{
    [TestCase("--swap zram", "--swap needs --host-mem")]
    [TestCase("--swap-size 64M", "--swap-size needs --host-mem")]
    [TestCase("--swap-io direct", "--swap-io needs --host-mem")]
    [TestCase("--host-mem 64M --swap zram --swap-io direct", "--swap-io direct is for a swap file, not --swap zram")]
    [TestCase("--host-mem 64M --swap-io fast", "--swap-io expects buffered or direct, got 'fast'")]
    [TestCase("--lru mglru", "--lru needs --host-mem")]
    [TestCase("--secondary-aging off", "--secondary-aging needs --host-mem")]
    [TestCase("--inject-swap-errors 0.1", "--inject-swap-errors needs --host-mem")]
    [TestCase("--host-mem 1M", "--host-mem expects a size from 4M")]
    [TestCase("--host-mem 4M -m 1G", "--host-mem 4M is below the minimum for 1G of guest RAM: 16M")]
    [TestCase("--host-mem 8T", "--host-mem 8T is larger than this machine's RAM")]
    [TestCase("--host-mem 64M --swap-size 0", "--swap-size expects a size from 8K")]
    [TestCase("--host-mem 64M --swap-size 4K", "--swap-size expects a size from 8K")]
    [TestCase("--host-mem 64M --swap /nonexistent/dir/x", "--swap /nonexistent/dir/x")]
    [TestCase("--host-mem 64M --lru lfu", "--lru expects classic or mglru, got 'lfu'")]
    [TestCase("--host-mem 64M --secondary-aging maybe", "--secondary-aging expects on or off, got 'maybe'")]
    [TestCase("--host-mem 64M --inject-swap-errors 1", "--inject-swap-errors expects a probability from 0 to below 1, got '1'")]
    [TestCase("--host-mem 64M --inject-swap-errors x", "--inject-swap-errors expects a probability")]
    public void BadHostMemoryOptionsPrintOneErrorLineAndExitTwo(string options, string message)
    {
        var result = Hv.Run(["run", GuestImages.ImagePath("hello"), "--plain", .. options.Split(' ')]);

        Assert.Multiple(() =>
        {
            CliAssert.OneErrorLine(result, message);
            Assert.That(result.Stdout, Is.Empty, "the guest did not run");
        });
    }

    [Test]
    public void AnUncreatableSwapPathIsNamedWithTheReason()
    {
        var result = Hv.Run("run", GuestImages.ImagePath("hello"), "--plain", "--host-mem", "64M", "--swap", "/nonexistent/dir/x");

        Assert.That(result.StderrLines[0], Does.Contain("'/nonexistent/dir/x' cannot be created").And.Not.Contain("(Parameter"));
    }

    [Test]
    [Category(TestCategories.Guest)]
    public void MemtestUnderHostMemReportsTheSwapCountersAndPasses()
    {
        var result = Hv.Run("run", GuestImages.ImagePath("memtest"), "--plain", "-m", "32M", "--host-mem", "8M", "--swap", "zram", "--lru", "classic", "--secondary-aging", "on", "--cmdline", "mib=16");

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.Zero, result.Stdout + result.Stderr);
            Assert.That(result.Stdout, Does.Contain("memtest: OK"));
            Assert.That(Value(result, "pswpout"), Is.Positive);
            Assert.That(Value(result, "pswpin"), Is.Positive);
            Assert.That(Value(result, "pgscan"), Is.Positive);
            Assert.That(Value(result, "pgsteal"), Is.Positive);
            Assert.That(Row(result, "host memory"), Does.Contain("8 MiB").And.Contain("LRU classic, secondary aging on"));
            Assert.That(Row(result, "swap device"), Does.Match(@"[0-9.]+:1\s+zram"));
            foreach (var figure in new[] { "pgactivate", "workingset_refault_anon", "swap-cache hits", "readahead hits", "secondary young", "allocstall", "guest pages resident" })
            {
                Assert.That(Row(result, figure), Is.Not.Empty, figure);
            }
        });
    }

    [Test]
    [Category(TestCategories.Guest)]
    public void MemtestSwapsThroughADirectIoSwapFileAndPasses_LeavingItsPagesOutOfThePageCache()
    {
        DirectIo.IgnoreUnlessAvailable();
        var folder = Directory.CreateTempSubdirectory("hv-direct-run-");
        try
        {
            var direct = Path.Combine(folder.FullName, "direct.swap");
            var buffered = Path.Combine(folder.FullName, "buffered.swap");
            var result = Hv.Run("run", GuestImages.ImagePath("memtest"), "--plain", "-m", "32M", "--host-mem", "8M", "--swap", direct, "--swap-size", "32M", "--swap-io", "direct", "--cmdline", "mib=16");
            var directCached = OperatingSystem.IsLinux() ? PageCache.ResidentPages(direct) : 0;
            var baseline = Hv.Run("run", GuestImages.ImagePath("memtest"), "--plain", "-m", "32M", "--host-mem", "8M", "--swap", buffered, "--swap-size", "32M", "--cmdline", "mib=16");
            var bufferedCached = OperatingSystem.IsLinux() ? PageCache.ResidentPages(buffered) : 0;

            Assert.Multiple(() =>
            {
                Assert.That(result.ExitCode, Is.Zero, result.Stdout + result.Stderr);
                Assert.That(result.Stdout, Does.Contain("memtest: OK"));
                Assert.That(Row(result, "swap device"), Does.Contain("file:" + direct + " (O_DIRECT)"));
                Assert.That(Value(result, "pswpout"), Is.GreaterThan(1000));
                Assert.That(Value(result, "pswpin"), Is.Positive);
                Assert.That(baseline.ExitCode, Is.Zero, baseline.Stdout + baseline.Stderr);
                if (OperatingSystem.IsLinux())
                {
                    // Only the header page, written before O_DIRECT is set, may be cached; the buffered run's writes stay there.
                    Assert.That(directCached, Is.LessThanOrEqualTo(1), "pages of the direct swap file in the page cache");
                    Assert.That(bufferedCached, Is.GreaterThan(Value(baseline, "pswpout") / 4), "the buffered run's swap file should be largely in the page cache (the measurement's control)");
                }
            });
        }
        finally
        {
            folder.Delete(recursive: true);
        }
    }

    [Test]
    [Category(TestCategories.Guest)]
    public void ASwapFileGivenByPathIsCreatedKeptAtExitAndReusedByTheNextRun()
    {
        var folder = Path.Combine(Path.GetTempPath(), "hv-swap-path-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(folder);
        try
        {
            var path = Path.Combine(folder, "guest.swap");
            var first = Hv.Run("run", GuestImages.ImagePath("hello"), "--plain", "--host-mem", "16M", "--swap", path, "--swap-size", "1M");
            var lengthAfterFirst = File.Exists(path) ? new FileInfo(path).Length : -1;
            var second = Hv.Run("run", GuestImages.ImagePath("hello"), "--plain", "--host-mem", "16M", "--swap", path, "--swap-size", "1M");

            Assert.Multiple(() =>
            {
                Assert.That(first.ExitCode, Is.Zero, first.Stdout + first.Stderr);
                Assert.That(lengthAfterFirst, Is.EqualTo(1L << 20), "the named file is kept, at the size asked for");
                Assert.That(second.ExitCode, Is.Zero, second.Stdout + second.Stderr);
                Assert.That(Row(second, "swap device"), Does.Contain("file:" + path));
            });
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Test]
    [Category(TestCategories.Guest)]
    public void WithoutHostMemTheReportHasNoSwapRows()
    {
        var result = Hv.Run("run", GuestImages.ImagePath("hello"), "--plain");

        Assert.That(Row(result, "pswpout"), Is.Empty);
    }

    [Test]
    [Category(TestCategories.Guest)]
    public void ASwapTooSmallExitsThreeNamingHostMemoryExhaustion()
    {
        var result = Hv.Run("run", GuestImages.ImagePath("memtest"), "--plain", "-m", "32M", "--host-mem", "4M", "--swap", "zram", "--swap-size", "4M", "--cmdline", "mib=16");

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.EqualTo(VmExitStatus.Broken), result.Stdout + result.Stderr);
            Assert.That(result.StdoutLines, Has.Some.StartsWith("hv run memtest.elf: the host ran out of memory for the guest, exit status 3"));
            Assert.That(result.Stdout, Does.Contain("host memory exhausted: cgroup limit 4 MiB, swap full"));
        });
    }

    [Test]
    [Category(TestCategories.Guest)]
    public void InjectedSwapErrorsExitThreeNamingAMemoryFailure()
    {
        var result = Hv.Run("run", GuestImages.ImagePath("memtest"), "--plain", "-m", "32M", "--host-mem", "8M", "--swap", "zram", "--inject-swap-errors", "0.05", "--cmdline", "mib=16");

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.EqualTo(VmExitStatus.Broken), result.Stdout + result.Stderr);
            Assert.That(result.Stdout, Does.Contain("memory failure on swap device inject(zram)").And.Contain("memslot 0"));
        });
    }

    private static string Row(CliResult result, string figure) =>
        result.StdoutLines.FirstOrDefault(r => r.StartsWith(figure + " ", StringComparison.Ordinal)) ?? string.Empty;

    private static long Value(CliResult result, string figure)
    {
        var match = Regex.Match(Row(result, figure), "^" + Regex.Escape(figure) + @"\s+([0-9,]+)\s");
        return match.Success ? long.Parse(match.Groups[1].Value.Replace(",", string.Empty, StringComparison.Ordinal), System.Globalization.CultureInfo.InvariantCulture) : -1;
    }
}
