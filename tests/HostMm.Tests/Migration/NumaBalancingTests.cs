using Hypervisor.HostMm.Migration;
using Hypervisor.HostMm.PageTables;
using Hypervisor.Notifier;
using Hypervisor.HostMm.Vmas;
using static Hypervisor.HostMm.Tests.Migration.MigrationHosts;

namespace Hypervisor.HostMm.Tests.Migration;

/// <summary>
/// NUMA balancing: the scan makes a window PROT_NONE in mprotect's order (start (ProtectionVma) → PTEs → end → flush),
/// and each hinting fault makes its page accessible again with no notifier, counts it, and moves a page used from the
/// other node there.
/// </summary>
public class NumaBalancingTests
{
    [Test]
    public void The_scan_makes_resident_ptes_prot_none_inside_one_protection_vma_range_and_flushes_after_the_end()
    {
        using var host = MigrationHosts.Create();
        var (mm, start) = Populated(host, 8, seed: 1);
        host.NumaBalancing.Enabled = true;
        var recorder = Record(mm);

        var changed = host.NumaBalancing.Step(1024);

        Assert.That(changed, Is.EqualTo(8));
        Assert.That(Timeline(recorder, mm), Is.EqualTo("start:ProtectionVma pte end flush"));
        Assert.That(Enumerable.Range(0, 8).All(i => HostPteEncoding.Classify(mm.PageTable.Read(start + ((ulong)i * Page))) == HostPteKind.ProtNone), Is.True);
        Assert.That(host.NumaBalancing.Stats.NumaPteUpdates, Is.EqualTo(8));
        AssertConsistent(host);
    }

    [Test]
    public void A_hinting_fault_from_the_pages_own_node_restores_it_without_a_notifier_and_counts_it_local()
    {
        using var host = MigrationHosts.Create();
        var (mm, start) = Populated(host, 4, seed: 2);
        host.NumaBalancing.Enabled = true;
        host.NumaBalancing.Step(1024);
        var recorder = Record(mm);
        var pfn = mm.PageTable.Read(start).Pfn;

        var data = OnNode(0, () => ReadPage(mm, start));

        Assert.That(data, Is.EqualTo(Reclaim.SwapHosts.PageData(0, 2)));
        Assert.That(Timeline(recorder, mm), Is.EqualTo("pte"), "access is only added: no notifier, no flush");
        Assert.That(mm.PageTable.Read(start) is { IsPresent: true } pte && pte.Pfn == pfn, Is.True, "not moved: it was local");
        Assert.That(host.NumaBalancing.Stats.NumaHintFaults, Is.EqualTo(1));
        Assert.That(host.NumaBalancing.Stats.NumaHintFaultsLocal, Is.EqualTo(1));
        Assert.That(host.NumaBalancing.Stats.NumaPagesMigrated, Is.Zero);
        AssertConsistent(host);
    }

    [Test]
    public void Pages_used_from_the_other_node_move_there_on_their_hinting_faults_with_their_data()
    {
        using var host = MigrationHosts.Create();
        var (mm, start) = Populated(host, 32, seed: 3);
        host.NumaBalancing.Enabled = true;
        host.NumaBalancing.Step(1024);

        OnNode(1, () =>
        {
            for (var i = 0; i < 32; i++)
            {
                mm.Write(start + ((ulong)i * Page) + 16, new byte[] { (byte)i });
            }

            return 0;
        });

        Assert.That(host.NumaBalancing.Stats.NumaHintFaults, Is.EqualTo(32));
        Assert.That(host.NumaBalancing.Stats.NumaHintFaultsLocal, Is.Zero);
        Assert.That(host.NumaBalancing.Stats.NumaPagesMigrated, Is.EqualTo(32));
        Assert.That(Enumerable.Range(0, 32).All(i => NodeOfPage(mm, start + ((ulong)i * Page)) == 1), Is.True);
        for (var i = 0; i < 32; i++)
        {
            var expected = Reclaim.SwapHosts.PageData(i, 3);
            expected[16] = (byte)i;
            Assert.That(ReadPage(mm, start + ((ulong)i * Page)), Is.EqualTo(expected), $"page {i}");
        }

        AssertConsistent(host);
    }

    [Test]
    public void A_bind_policy_that_excludes_the_faulting_node_keeps_the_page_and_balancing_off_changes_nothing()
    {
        using var host = MigrationHosts.Create();
        var (mm, start) = Populated(host, 4, seed: 4);
        mm.Mbind(start, 4 * Page, NumaPolicy.Bind(0));

        Assert.That(host.NumaBalancing.Step(1024), Is.Zero, "disabled: the scan does nothing");
        host.NumaBalancing.Enabled = true;
        host.NumaBalancing.Step(1024);
        OnNode(1, () => ReadPage(mm, start));

        Assert.That(NodeOfPage(mm, start), Is.Zero, "bound to node 0");
        Assert.That(host.NumaBalancing.Stats.NumaHintFaults, Is.EqualTo(1));
        Assert.That(host.NumaBalancing.Stats.NumaPagesMigrated, Is.Zero);
        AssertConsistent(host);
    }

    [Test]
    public void The_scan_resumes_where_its_budget_ran_out_and_counts_a_full_pass()
    {
        using var host = MigrationHosts.Create();
        var (mm, start) = Populated(host, 16, seed: 5);
        host.NumaBalancing.Enabled = true;

        Assert.That(host.NumaBalancing.Step(6), Is.EqualTo(6));
        Assert.That(HostPteEncoding.Classify(mm.PageTable.Read(start + (6 * Page))), Is.EqualTo(HostPteKind.Present), "the window ended at page 6");
        Assert.That(host.NumaBalancing.Step(6), Is.EqualTo(6));
        Assert.That(host.NumaBalancing.Step(6), Is.EqualTo(4));
        Assert.That(host.NumaBalancing.Stats.FullScans, Is.EqualTo(1));
        Assert.Throws<ArgumentOutOfRangeException>(() => host.NumaBalancing.Step(0));
    }

    [Test]
    public void Mprotect_none_entries_are_not_hinting_faults()
    {
        using var host = MigrationHosts.Create();
        var (mm, start) = Populated(host, 1, seed: 6);
        host.NumaBalancing.Enabled = true;
        mm.Mprotect(start, Page, Protection.None);

        Assert.That(mm.HandleFault(start, FaultAccess.Read), Is.EqualTo(FaultResult.ProtectionViolation));
        Assert.That(host.NumaBalancing.Stats.NumaHintFaults, Is.Zero);
    }

    private static T OnNode<T>(int node, Func<T> work)
    {
        var result = default(T)!;
        var thread = new Thread(() =>
        {
            HostThread.CurrentNode = node;
            result = work();
        });
        thread.Start();
        thread.Join();
        return result;
    }

    private static byte[] ReadPage(Mm mm, Hva address)
    {
        var bytes = new byte[Page];
        mm.Read(address, bytes);
        return bytes;
    }
}
