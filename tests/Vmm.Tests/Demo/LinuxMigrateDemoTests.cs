using Hypervisor.Vmm.Demo.Migrate;
using Hypervisor.Vmm.Tests.Support;

namespace Hypervisor.Vmm.Tests.Demo;

/// <summary>
/// <c>hv demo migrate --guest linux</c> on a small size: all guest RAM migrates between the two nodes, trip after trip,
/// while Linux's memtest runs, and memtest passes with every audit clean. Ignored, with the reason, where
/// <c>make -C guests linux</c> has not been run.
/// </summary>
public sealed class LinuxMigrateDemoTests
{
    [Test]
    [Explicit("a Linux boot: the Linux category")]
    [Category(TestCategories.Linux)]
    public void LinuxMemtestPassesWhileAllItsRamMigratesBackAndForth()
    {
        var (kernel, _) = LinuxGuest.Require();
        var guests = Path.GetDirectoryName(Path.GetDirectoryName(kernel))!;

        var result = new MigrateDemo(new MigrateDemoOptions { GuestBytes = 256UL << 20, GuestsFolder = guests }).RunLinux();

        Assert.Multiple(() =>
        {
            Assert.That(result.MemtestMib, Is.EqualTo(128));
            Assert.That(result.GuestVerdict, Is.EqualTo("memtest: OK, 16777216 words verified"));
            Assert.That(result.GuestExitCode, Is.Zero);
            Assert.That(result.AuditViolations, Is.Empty);
            Assert.That(result.TripsWhileLinuxRan, Is.GreaterThanOrEqualTo(2), "trips ran while Linux ran");
            Assert.That(result.Trips.Select(t => t.TargetNode), Is.EqualTo(result.Trips.Select(t => t.Number % 2)), "node 1, 0, 1 …");
            Assert.That(result.Trips.Select(t => t.PagesPerNodeAfter[t.TargetNode]), Is.All.GreaterThan(0));
            Assert.That(result.Trips.Select(t => t.Summary.Migrated), Is.All.GreaterThan(10_000), "each trip moved the resident guest RAM (the kernel and memtest's pages; new ones fault in on the vCPU's node 0)");
            Assert.That(result.Migration.PgmigrateFail, Is.Zero);
            Assert.That(result.Succeeded, Is.True);
        });
    }
}
