using Hypervisor.Notifier;
using Hypervisor.HostMm.Vmas;
using static Hypervisor.HostMm.Tests.Migration.MigrationHosts;

namespace Hypervisor.HostMm.Tests.Migration;

/// <summary>
/// Seeded races: writer threads (each owning a set of pages and stamping them with a version), readers through
/// get-user-pages, mprotect flips and MADV_DONTNEED against a migrator moving every page between the nodes. After every
/// round both the data (each page holds its owner's last stamp) and the host auditor are checked.
/// </summary>
public class MigrationRaceTests
{
    private const int Pages = 64;
    private const int Writers = 2;

    [TestCase(1)]
    [TestCase(2)]
    [TestCase(3)]
    public void Writers_readers_and_mprotect_against_migration_back_and_forth_lose_nothing(int seed)
    {
        using var host = MigrationHosts.Create();
        var mm = host.CreateMm(0);
        var start = mm.Mmap(Pages * Page, Protection.Read | Protection.Write);
        var stamps = new long[Pages];
        for (var i = 0; i < Pages; i++)
        {
            Stamp(mm, start, i, stamps[i] = 1);
        }

        var random = new Random(seed);
        for (var round = 0; round < 12; round++)
        {
            var roundSeed = random.Next();
            using var stop = new CancellationTokenSource();
            var workers = new List<Task>();
            for (var w = 0; w < Writers; w++)
            {
                var owner = w;
                workers.Add(Task.Run(() => Write(mm, start, stamps, owner, new Random(roundSeed + owner), stop.Token)));
            }

            workers.Add(Task.Run(() => ReadThroughGup(mm, start, new Random(roundSeed - 1), stop.Token)));
            var summary = default(HostMm.Migration.MigrationSummary);
            for (var trip = 0; trip < 4; trip++)
            {
                summary = host.Migration.MigrateRange(mm, start, start + (Pages * Page), toNode: trip % 2 == 0 ? 1 : 0);
            }

            if (round % 3 == 2)
            {
                // mprotect and back while the writers run: they retry on the protection fault
                mm.Mprotect(start, Pages * Page / 2, Protection.Read);
                mm.Mprotect(start, Pages * Page / 2, Protection.Read | Protection.Write);
            }

            stop.Cancel();
            Task.WaitAll([.. workers], TimeSpan.FromSeconds(60));
            Assert.That(summary.Migrated + summary.Failed, Is.LessThanOrEqualTo(Pages));
            AssertConsistent(host);
            for (var i = 0; i < Pages; i++)
            {
                Assert.That(ReadStamp(mm, start, i), Is.EqualTo(Volatile.Read(ref stamps[i])), $"round {round}, page {i}: the page holds its owner's last stamp");
            }
        }

        Assert.That(host.Migration.Stats.PgmigrateSuccess, Is.GreaterThan(Pages), "pages did move while the threads ran");
        mm.Exit();
        AssertConsistent(host);
    }

    [TestCase(11)]
    [TestCase(12)]
    public void Ksm_merging_and_breaking_against_migration_of_shared_pages_loses_nothing(int seed)
    {
        using var host = MigrationHosts.Create();
        var a = host.CreateMm(0);
        var b = host.CreateMm(0);
        var startA = Ksm.KsmHosts.MapMergeable(a, Pages, i => 1 + (i % 8));
        var startB = Ksm.KsmHosts.MapMergeable(b, Pages, i => 1 + (i % 8));
        host.Ksm.SmartScan = false;
        var random = new Random(seed);
        var expectedA = Enumerable.Range(0, Pages).Select(i => 1 + (i % 8)).ToArray();
        for (var round = 0; round < 8; round++)
        {
            using var stop = new CancellationTokenSource();
            var scanner = Task.Run(() =>
            {
                host.Ksm.Run = HostMm.Ksm.KsmRunMode.Merge;
                while (!stop.IsCancellationRequested)
                {
                    host.Ksm.Step(64);
                }
            });
            var writerSeed = random.Next();
            var writer = Task.Run(() =>
            {
                var r = new Random(writerSeed);
                while (!stop.IsCancellationRequested)
                {
                    var page = r.Next(Pages);
                    var content = 1 + r.Next(8);
                    a.Write(startA + ((ulong)page * Page), Ksm.KsmHosts.PageOf(content));
                    Volatile.Write(ref expectedA[page], content);
                }
            });
            for (var trip = 0; trip < 4; trip++)
            {
                host.Migration.MigrateRange(a, startA, startA + (Pages * Page), toNode: trip % 2 == 0 ? 1 : 0, moveShared: true);
            }

            stop.Cancel();
            Task.WaitAll([scanner, writer], TimeSpan.FromSeconds(60));
            host.Ksm.Run = HostMm.Ksm.KsmRunMode.Stop;
            AssertConsistent(host);
            for (var i = 0; i < Pages; i++)
            {
                Assert.That(Ksm.KsmHosts.Read(a, startA + ((ulong)i * Page)), Is.EqualTo(Ksm.KsmHosts.PageOf(expectedA[i])), $"round {round}: A's page {i}");
                Assert.That(Ksm.KsmHosts.Read(b, startB + ((ulong)i * Page)), Is.EqualTo(Ksm.KsmHosts.PageOf(1 + (i % 8))), $"round {round}: B's page {i} never changes");
            }
        }

        Ksm.KsmHosts.FullScans(host, 3);
        var settled = HostMmAuditor.CheckKsmSettled(host);
        Assert.That(settled, Is.Empty, "after quiet full scans every KSM mapping is found through its stable node again: " + string.Join(Environment.NewLine, settled.Take(10)));
        Assert.That(host.Ksm.Stats.PagesSharing, Is.GreaterThan(0), "pages were merged during the run");
        Assert.That(host.Migration.Stats.PgmigrateSuccess, Is.GreaterThan(0));
    }

    private static void Write(Mm mm, Hva start, long[] stamps, int owner, Random random, CancellationToken stop)
    {
        while (!stop.IsCancellationRequested)
        {
            var page = (random.Next(Pages / Writers) * Writers) + owner;
            var next = stamps[page] + 1;
            try
            {
                Stamp(mm, start, page, next);
                Volatile.Write(ref stamps[page], next);
            }
            catch (HostFaultException)
            {
                // read-only for a moment (mprotect): the stamp did not land, try again later
            }
        }
    }

    private static void ReadThroughGup(Mm mm, Hva start, Random random, CancellationToken stop)
    {
        while (!stop.IsCancellationRequested)
        {
            var address = start + ((ulong)random.Next(Pages) * Page);
            var page = mm.GetUserPages(address, write: false);
            Assert.That(page.Pfn.Value, Is.Not.Zero);
            mm.ReleasePage(page.Pfn);
        }
    }

    private static void Stamp(Mm mm, Hva start, int page, long stamp)
    {
        var bytes = new byte[Page];
        BitConverter.TryWriteBytes(bytes.AsSpan(0, 8), stamp);
        BitConverter.TryWriteBytes(bytes.AsSpan((int)Page - 8), stamp ^ page);
        mm.Write(start + ((ulong)page * Page), bytes);
    }

    private static long ReadStamp(Mm mm, Hva start, int page)
    {
        var bytes = new byte[Page];
        mm.Read(start + ((ulong)page * Page), bytes);
        var stamp = BitConverter.ToInt64(bytes, 0);
        Assert.That(BitConverter.ToInt64(bytes, (int)Page - 8), Is.EqualTo(stamp ^ page), $"page {page} is whole (its head and tail stamps agree)");
        return stamp;
    }
}
