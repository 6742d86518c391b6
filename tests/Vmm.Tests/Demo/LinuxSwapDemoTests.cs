using Hypervisor.Vmm.Demo.Swap;
using Hypervisor.Vmm.Tests.Support;

namespace Hypervisor.Vmm.Tests.Demo;

/// <summary>
/// <c>hv demo swap --guest linux</c> on a small size: Debian's kernel in guest RAM 4x the host limit, its memtest over
/// all but 128 MiB of it as a Linux process, passes with the host swapping underneath and every audit clean. Ignored,
/// with the reason, where <c>make -C guests linux</c> has not been run.
/// </summary>
public sealed class LinuxSwapDemoTests
{
    [Test]
    [Explicit("a Linux boot: the Linux category")]
    [Category(TestCategories.Linux)]
    public void LinuxMemtestPassesInRamFourTimesTheHostLimitWithEveryAuditClean()
    {
        var (kernel, _) = LinuxGuest.Require();
        var guests = Path.GetDirectoryName(Path.GetDirectoryName(kernel))!;

        var result = new SwapDemo(new SwapDemoOptions { MemtestGuestBytes = 256UL << 20, MemtestHostBytes = 64UL << 20, GuestsFolder = guests }).RunLinux();

        Assert.Multiple(() =>
        {
            Assert.That(result.MemtestMib, Is.EqualTo(128), "guest RAM less the 128 MiB Linux keeps");
            Assert.That(result.GuestVerdict, Is.EqualTo("memtest: OK, 16777216 words verified"));
            Assert.That(result.UserlandLines, Has.Some.StartsWith("init: Linux 6."));
            Assert.That(result.GuestExitCode, Is.Zero);
            Assert.That(result.AuditViolations, Is.Empty);
            Assert.That(result.Audits, Is.GreaterThan(10));
            Assert.That(result.Reclaim.Pswpout, Is.GreaterThan(128 * 256 / 2), "most of memtest's pages went to swap under the running kernel");
            Assert.That(result.Reclaim.Pswpin, Is.GreaterThan(0), "and Linux's own accesses brought pages back");
            Assert.That(result.Succeeded, Is.True);
        });
    }

    [Test]
    public void AMissingLinuxGuestIsAnInputErrorThatSaysHowToBuildIt()
    {
        var folder = Path.Combine(Path.GetTempPath(), $"hv-no-linux-{Guid.NewGuid():N}");
        Directory.CreateDirectory(folder);
        try
        {
            var result = Hv.Run("demo", "swap", "--guest", "linux", "--guests", folder, "--plain");

            Assert.Multiple(() =>
            {
                Assert.That(result.ExitCode, Is.EqualTo(1));
                Assert.That(result.Stderr, Does.Contain("make -C guests linux").And.Contain(Path.Combine(folder, "linux")));
                Assert.That(result.Stderr.Trim().Split('\n'), Has.Length.EqualTo(1), "one line, no stack trace");
            });
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }
}
