using Hypervisor.GuestMmu.Addresses;
using Hypervisor.GuestMmu.Backing;
using Hypervisor.GuestMmu.Memslots;
using Hypervisor.GuestMmu.Mmu;
using Hypervisor.GuestMmu.Tlb;
using Hypervisor.GuestMmu.Walker;
using Hypervisor.HostMm;
using Hypervisor.HostMm.Frames;
using Hypervisor.HostMm.Vmas;
using Hypervisor.Notifier;

namespace Hypervisor.GuestMmu.Tests.Mmu;

/// <summary>
/// A seeded race: two vCPUs (on node 1) stamp and read guest pages backed by transparent huge pages while the host
/// migrates all guest memory between nodes, runs NUMA balancing, splits huge pages (mprotect of one page and back) and
/// collapses them again (khugepaged). After every round both auditors are clean and every page holds its last stamp.
/// </summary>
public class HugeAndMigrationRaceTests
{
    private const ulong Page = 4096;
    private const ulong Huge = 2UL << 20;
    private const int Pages = 1024;
    private const int Vcpus = 2;

    [TestCase(1)]
    [TestCase(2)]
    [TestCase(3)]
    public void Vcpus_against_migration_balancing_split_and_collapse_lose_nothing(int seed)
    {
        using var host = new Host(new HostOptions
        {
            Memory = new HostMemoryOptions { TotalBytes = 64UL << 20, NodeCount = 2, AuditFreedFrames = true },
            TransparentHugePages = ThpMode.Always,
        });
        var mm = host.CreateMm(0);
        var region = mm.Mmap(3 * Huge, Protection.Read | Protection.Write);
        var ram = new Hva((region.Value + Huge - 1) & ~(Huge - 1));
        using var mmu = new TdpMmu(new TlbShootdown(), new TdpMmuOptions());
        mmu.SetMemoryRegion(0, MemslotFlags.None, new Gpa(0), 2 * Huge, ram, new HostProcessBacking(mm));
        var cpus = Enumerable.Range(0, Vcpus).Select(id => new MmuContext(mmu, id, PagingContext.PagingOff)).ToArray();
        var stamps = new long[Pages];
        host.NumaBalancing.Enabled = true;
        var random = new Random(seed);
        var ops = new Dictionary<string, int>();
        try
        {
            for (var round = 0; round < 24; round++)
            {
                var roundSeed = random.Next();
                using var stop = new CancellationTokenSource();
                var vcpus = Enumerable.Range(0, Vcpus).Select(id => new Thread(() => RunVcpu(cpus[id], id, stamps, new Random(roundSeed + id), stop.Token))).ToArray();
                foreach (var thread in vcpus)
                {
                    thread.Start();
                }

                var op = random.Next(4);
                var name = op switch
                {
                    0 => "migrate",
                    1 => "balance",
                    2 => "split",
                    _ => "collapse",
                };
                ops[name] = ops.GetValueOrDefault(name) + 1;
                switch (op)
                {
                    case 0:
                        host.Migration.MigrateRange(mm, ram, ram + (2 * Huge), toNode: round % 2);
                        break;
                    case 1:
                        host.NumaBalancing.Step(Pages);
                        break;
                    case 2:
                        var page = ram + ((ulong)random.Next(Pages) * Page);
                        mm.Mprotect(page, Page, Protection.Read);
                        mm.Mprotect(page, Page, Protection.Read | Protection.Write);
                        break;
                    default:
                        host.Khugepaged.Step(4096);
                        break;
                }

                stop.Cancel();
                foreach (var thread in vcpus)
                {
                    thread.Join();
                }

                Assert.That(HostMmAuditor.Check(host), Is.Empty, $"round {round} after {name}");
                var violations = MmuAuditor.Check(mmu);
                Assert.That(violations, Is.Empty, $"round {round} after {name}: " + string.Join(Environment.NewLine, violations.Take(10)));
                var buffer = new byte[8];
                for (var page = 0; page < Pages; page++)
                {
                    Assert.That(InGuest(cpus[0], () => cpus[0].Read(new Gva((ulong)page * Page), buffer).IsOk), Is.True);
                    Assert.That(BitConverter.ToInt64(buffer), Is.EqualTo(Volatile.Read(ref stamps[page])), $"round {round} after {name}: page {page}");
                }
            }
        }
        finally
        {
            foreach (var cpu in cpus)
            {
                cpu.Dispose();
            }

            mmu.Dispose();
            mm.Exit();
        }

        TestContext.Out.WriteLine($"seed {seed}: {string.Join(", ", ops.Select(o => $"{o.Key} {o.Value}"))}; pgmigrate_success {host.Migration.Stats.PgmigrateSuccess}, thp_migration_success {host.Migration.Stats.ThpMigrationSuccess}, collapsed {host.Khugepaged.Stats.PagesCollapsed}, numa_pages_migrated {host.NumaBalancing.Stats.NumaPagesMigrated}");
        Assert.That(host.Migration.Stats.PgmigrateSuccess, Is.GreaterThan(0));
    }

    private static void RunVcpu(MmuContext cpu, int id, long[] stamps, Random random, CancellationToken stop)
    {
        HostThread.CurrentNode = 1;
        var accesses = 0;
        while (!stop.IsCancellationRequested || accesses < 64)
        {
            accesses++;
            var page = (random.Next(Pages / Vcpus) * Vcpus) + id;
            var next = stamps[page] + 1;
            var written = InGuest(cpu, () => cpu.Write(new Gva((ulong)page * Page), BitConverter.GetBytes(next)).IsOk);
            if (written)
            {
                Volatile.Write(ref stamps[page], next);
            }
        }
    }

    private static bool InGuest(MmuContext cpu, Func<bool> access)
    {
        cpu.Port.EnterGuest();
        try
        {
            cpu.Port.ServiceRequests();
            return access();
        }
        finally
        {
            cpu.Port.ExitGuest();
        }
    }
}
