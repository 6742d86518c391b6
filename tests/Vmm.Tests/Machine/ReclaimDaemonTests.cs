using Hypervisor.HostMm;
using Hypervisor.HostMm.Frames;
using Hypervisor.HostMm.Swap;
using Hypervisor.HostMm.Vmas;
using Hypervisor.Notifier;
using Hypervisor.Vmm.Machine;

namespace Hypervisor.Vmm.Tests.Machine;

/// <summary>The VM's kswapd thread: it reclaims a cgroup that nears its limit on its own, and a failure of it is kept and reported, not lost.</summary>
public sealed class ReclaimDaemonTests
{
    private const int LimitPages = 1024;

    [Test]
    public void ACgroupNearItsLimitIsReclaimedInTheBackground()
    {
        using var host = CreateHost();
        var cgroup = host.Reclaim.CreateCgroup("vm", LimitPages);
        var mm = host.CreateMm(0, cgroup);
        var start = mm.Mmap(LimitPages * Paging.PageSize, Protection.Read | Protection.Write);
        var page = new byte[Paging.PageSize];
        using (var daemon = new ReclaimDaemon(host.Reclaim))
        {
            // 1000 of 1024 pages: headroom 24 is below the low margin of 32 pages, so kswapd has work.
            for (var i = 0; i < 1000; i++)
            {
                page[0] = (byte)i;
                mm.Write(start + ((ulong)i * Paging.PageSize), page);
            }

            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
            while (cgroup.HeadroomPages < 64 && DateTime.UtcNow < deadline)
            {
                Thread.Sleep(5);
            }

            Assert.Multiple(() =>
            {
                Assert.That(daemon.Steps, Is.Positive);
                Assert.That(daemon.PagesReclaimed, Is.GreaterThanOrEqualTo(40));
                Assert.That(cgroup.HeadroomPages, Is.GreaterThanOrEqualTo(64), "kswapd stops at twice the low margin");
                Assert.That(host.Reclaim.Stats.PgstealKswapd, Is.EqualTo(daemon.PagesReclaimed));
                Assert.That(host.Reclaim.Stats.Allocstall, Is.Zero, "no allocation came near the limit itself");
                Assert.That(daemon.Failure, Is.Null);
            });
        }

        mm.Exit();
    }

    [Test]
    public void AFailureOfTheReclaimerIsKeptAndReported()
    {
        var host = CreateHost();
        Exception? reported = null;
        using var signalled = new ManualResetEventSlim();
        using var daemon = new ReclaimDaemon(host.Reclaim, e =>
        {
            reported = e;
            signalled.Set();
        });

        // Tearing the reclaimer down under the daemon makes its next wait throw.
        host.Dispose();

        Assert.Multiple(() =>
        {
            Assert.That(signalled.Wait(TimeSpan.FromSeconds(10)), Is.True, "the failure was reported");
            Assert.That(reported, Is.InstanceOf<ObjectDisposedException>());
            Assert.That(daemon.Failure, Is.SameAs(reported));
        });
    }

    private static Host CreateHost() => new(new HostOptions
    {
        Memory = new HostMemoryOptions { TotalBytes = 64UL << 20 },
        Swap = new SwapOptions { Kind = SwapDeviceKind.Zram, SizeBytes = 16UL << 20 },
    });
}
