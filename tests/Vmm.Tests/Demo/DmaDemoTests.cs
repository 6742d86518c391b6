using Hypervisor.Vmm.Demo.Dma;
using Hypervisor.Vmm.Devices.Dma;
using Hypervisor.Vmm.Tests.Support;

namespace Hypervisor.Vmm.Tests.Demo;

/// <summary>
/// <see cref="DmaDemo"/> in a short form: under swap-outs, KSM scans, migrations and remaps of its buffers, the safe
/// registration cache copies with zero stale DMAs, is invalidated, and the guest verifies every copy; the unsafe cache's
/// stale DMAs are caught by the engine's debug check. The command prints both phases and exits 0; bad options exit 2;
/// <c>hv run --dma-cache</c> reports the engine's counters and refuses a bad mode.
/// </summary>
public sealed class DmaDemoTests
{
    private static string GuestsFolder() => Path.GetDirectoryName(GuestImages.ImagePath("dmatest"))!;

    [Test]
    [Category(TestCategories.Guest)]
    public void TheSafeCacheMakesNoStaleDmaAndTheUnsafeOneIsCaught()
    {
        var result = new DmaDemo(new DmaDemoOptions { GuestBytes = 16UL << 20, Rounds = 8, Passes = 2, GuestsFolder = GuestsFolder() }).Run();

        Assert.Multiple(() =>
        {
            Assert.That(result.Failure, Is.Null);
            Assert.That(result.Safe.Mode, Is.EqualTo(DmaCacheMode.Safe));
            Assert.That(result.Safe.Dma.StaleDmas, Is.Zero);
            Assert.That(result.Safe.Dma.Copies, Is.EqualTo(8 * 2 * 8), "rounds x passes x buffers, every one completed");
            Assert.That(result.Safe.Dma.Invalidations, Is.Positive);
            Assert.That(result.Safe.Dma.EventsRead, Is.Positive);
            Assert.That(result.Safe.Dma.Hits, Is.Positive);
            Assert.That(result.Safe.GuestExitCode, Is.Zero, result.Safe.Verdict);
            Assert.That(result.Safe.Verdict, Does.Contain("dmatest: OK, 128 copies verified"));
            Assert.That(result.Safe.AuditViolations, Is.Empty);
            Assert.That(result.Safe.Pressure.PageOuts + result.Safe.Pressure.Migrations + result.Safe.Pressure.Remaps, Is.Positive);
            Assert.That(result.Unsafe.Dma.StaleDmas, Is.Positive, "the engine's debug check caught the stale copies");
            Assert.That(result.Unsafe.Dma.Invalidations, Is.Zero);
        });
    }

    [Test]
    [Category(TestCategories.Guest)]
    public void TheCommandPrintsBothPhasesAndExitsZero()
    {
        var result = Hv.Run("demo", "dma", "-m", "16M", "--rounds", "4", "--passes", "2", "--guests", GuestsFolder());

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.Zero, result.Stdout + result.Stderr);
            Assert.That(result.Stdout, Does.Contain("hv demo dma: the registration cache made 64 copies with 0 stale DMAs"));
            Assert.That(result.StdoutLines.Any(l => l.StartsWith("stale DMAs", StringComparison.Ordinal)), Is.True, result.Stdout);
            Assert.That(result.Stdout, Does.Contain("Safe: dmatest: OK, 64 copies verified"));
            Assert.That(result.Stderr, Is.Empty);
        });
    }

    [TestCase("--buffers 1", "--buffers")]
    [TestCase("--pages 65", "--pages")]
    [TestCase("--rounds 0", "--rounds")]
    [TestCase("--interval 2000", "--interval")]
    [TestCase("--buffers 64 --pages 64 -m 8M", "guest RAM must be a multiple of 4 KiB from 36 MiB")]
    public void BadDemoOptionsPrintOneErrorLineAndExitTwo(string options, string message)
    {
        var result = Hv.Run(["demo", "dma", .. options.Split(' ')]);

        CliAssert.OneErrorLine(result, message);
    }

    [Test]
    public void RunRefusesABadDmaCacheModeInOneLine()
    {
        var result = Hv.Run("run", GuestImages.ImagePath("dmatest"), "--plain", "--dma-cache", "sometimes");

        CliAssert.OneErrorLine(result, "--dma-cache expects safe, unsafe or off, got 'sometimes'");
    }

    [Test]
    [Category(TestCategories.Guest)]
    public void RunWithTheEngineReportsItsCountersAndWithoutItTheGuestFindsNone()
    {
        var image = GuestImages.ImagePath("dmatest");
        var with = Hv.Run("run", image, "--plain", "-m", "16M", "--dma-cache", "safe", "--cmdline", "rounds=2 passes=2");
        var without = Hv.Run("run", image, "--plain", "-m", "16M", "--cmdline", "rounds=2 passes=2");

        Assert.Multiple(() =>
        {
            Assert.That(with.ExitCode, Is.Zero, with.Stdout + with.Stderr);
            Assert.That(with.Stdout, Does.Contain("dmatest: OK, 32 copies verified").And.Contain("engine mode safe"));
            Assert.That(with.StdoutLines.Single(l => l.StartsWith("DMA copies", StringComparison.Ordinal)), Does.Contain(" 32 "));
            Assert.That(with.StdoutLines.Single(l => l.StartsWith("stale DMAs", StringComparison.Ordinal)), Does.Match(@"^stale DMAs\s+0\s"));
            Assert.That(without.ExitCode, Is.EqualTo(2), "the guest's own code 2: no engine");
            Assert.That(without.Stdout, Does.Contain("dmatest: no DMA engine at 0xfeb00000"));
            Assert.That(without.Stdout, Does.Not.Contain("DMA copies"));
        });
    }
}
