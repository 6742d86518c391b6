using Hypervisor.GuestMmu.Addresses;
using Hypervisor.GuestMmu.Ept;
using Hypervisor.GuestMmu.Mmu;
using Hypervisor.Notifier;
using Hypervisor.Vmm.Bench;

namespace Hypervisor.Vmm.Tests.Bench;

/// <summary>The setup <c>bench/</c> and <c>hv bench</c> share: what it builds, and that the baselines touch exactly the mapped entries.</summary>
public class BenchSetupTests
{
    private static readonly Spte Template = Spte.Leaf(new Pfn(0), writable: true, executable: true, large: false, accessed: true);

    [TestCase(EptVectorWidth.Scalar)]
    [TestCase(EptVectorWidth.Vector256)]
    public void EptBenchTable_MapsConsecutiveFramesOnItsPath(EptVectorWidth width)
    {
        using var table = new EptBenchTable(700, Template, width: width);

        Assert.That(table.Ept.VectorWidth, Is.EqualTo(width));
        Assert.That(table.Ept.PresentLeaves, Is.EqualTo(700));
        Assert.That(table.Ept.Read(new Gfn(0)).Pfn, Is.EqualTo(new Pfn(EptBenchTable.FirstPfn)));
        Assert.That(table.Ept.Read(new Gfn(699)).Pfn, Is.EqualTo(new Pfn(EptBenchTable.FirstPfn + 699)));
        Assert.That(table.Ept.Read(new Gfn(700)).IsPresent, Is.False);
    }

    [Test]
    public void Baselines_CoverExactlyTheMappedEntries_IncludingAPartialLastTable()
    {
        using var table = new EptBenchTable(700, Template);
        var outside = Spte.Leaf(new Pfn(0x42), writable: false, executable: false, large: false, accessed: false);
        Assert.That(table.Ept.TryInstallLeaf(new Gfn(700), 1, Spte.Empty, outside), Is.True);

        var expected = Enumerable.Range(0, 700).Aggregate(0UL, (or, g) => or | table.Ept.Read(new Gfn((ulong)g)).Value);
        Assert.That(table.ScanLeafTables(), Is.EqualTo(expected), "the scan reads the 700 mapped entries and nothing else");
        Assert.That((table.Scan512(), table.Scan256()), Is.EqualTo((expected, expected)), "both vector widths");

        var sink = default(XorDirtySink);
        table.Ept.ZapLeaves(new Gfn(0), new Gfn(700), ref sink);
        table.Fill(Template);
        table.MemsetLeafTables();
        Assert.That(table.Ept.CountPresentLeaves(), Is.EqualTo(1), "the memset clears the 700 mapped entries");
        Assert.That(table.Ept.Read(new Gfn(700)), Is.EqualTo(outside), "and stops at the end of the range");
    }

    [Test]
    public void BenchVm_IsOneSlotOfHostMemoryThatFaultsIn_AndGivesItsFramesBack()
    {
        const ulong Bytes = 1UL << 20;
        using var host = BenchVm.CreateHost(Bytes);
        Assert.That(host.Stats.Memory.TotalFrames, Is.EqualTo((64L << 20) >> 12), "at least 64 MiB");
        var freeBefore = host.Stats.Memory.FreeFrames;
        using (var vm = new BenchVm(host, Bytes))
        {
            for (ulong gfn = 0; gfn < Bytes >> 12; gfn++)
            {
                Assert.That(vm.Mmu.HandleEptViolation(new Gfn(gfn).ToGpa(), EptAccess.Write).Outcome, Is.EqualTo(EptFaultOutcome.Installed));
            }

            Assert.That(vm.Mmu.Ept.PresentLeaves, Is.EqualTo(256));
            Assert.That(vm.Mmu.HandleEptViolation(new Gfn(256).ToGpa(), EptAccess.Read).Outcome, Is.EqualTo(EptFaultOutcome.Mmio), "nothing beyond the slot");
        }

        Assert.That(host.Stats.Memory.FreeFrames, Is.EqualTo(freeBefore), "disposing ends the process and frees its frames");
    }
}
