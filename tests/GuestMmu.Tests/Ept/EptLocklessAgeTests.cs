using Hypervisor.GuestMmu.Addresses;
using Hypervisor.GuestMmu.Ept;
using Hypervisor.Notifier;

namespace Hypervisor.GuestMmu.Tests.Ept;

/// <summary>
/// <see cref="EptPageTable.AgeOneAccessed"/>: one gfn's accessed bit tested and cleared with an atomic AND, safe
/// beside hardware's compare-and-swap A/D updates (the MMU lock held only for read).
/// </summary>
public sealed class EptLocklessAgeTests
{
    private static readonly Spte Template = Spte.Leaf(new Pfn(0), writable: true, executable: true, large: false, accessed: true);

    [Test]
    public void AYoungLeafAnswersYoungAndClearingLeavesEverythingElse()
    {
        using var ept = new EptPageTable();
        ept.PopulateLeaves(new Gfn(10), new Gfn(12), new Pfn(0x500), Template.WithAccessed(dirty: true));

        Assert.That(ept.AgeOneAccessed(new Gfn(10), clear: false), Is.True);
        Assert.That(ept.Read(new Gfn(10)).IsAccessed, Is.True, "a test clears nothing");
        Assert.That(ept.AgeOneAccessed(new Gfn(10), clear: true), Is.True);

        var aged = ept.Read(new Gfn(10));
        Assert.That(aged.IsAccessed, Is.False);
        Assert.That(aged.Value, Is.EqualTo(Template.WithAccessed(dirty: true).Value & ~Spte.AccessedBit | (0x500UL << Spte.PfnShift)), "only A changed: D, W and the pfn stay");
        Assert.That(ept.AgeOneAccessed(new Gfn(10), clear: true), Is.False, "old now");
        Assert.That(ept.Read(new Gfn(11)).IsAccessed, Is.True, "the neighbour is untouched");
        Assert.That(ept.AgeOneAccessed(new Gfn(99), clear: true), Is.False, "nothing mapped");
        Assert.That(ept.Read(new Gfn(99)).IsPresent, Is.False);
        Assert.That(ept.GetStats().AgedYoung, Is.EqualTo(2));
    }

    [Test]
    public void WithoutAccessedDirtyBitsItIsRefused()
    {
        using var ept = new EptPageTable(accessDirtyEnabled: false);
        var error = Assert.Throws<InvalidOperationException>(() => ept.AgeOneAccessed(new Gfn(1), clear: true))!;
        Assert.That(error.Message, Does.Contain("needs EPT A/D bits"));
    }

    [Test]
    public void HardwareDirtyBitsSetConcurrentlyAreNeverLost()
    {
        const int Leaves = 512;
        using var ept = new EptPageTable();
        ept.PopulateLeaves(new Gfn(0), new Gfn(Leaves), new Pfn(0x1000), Template);
        var stop = 0;
        var dirtied = new bool[Leaves];
        var ager = new Thread(() =>
        {
            while (Volatile.Read(ref stop) == 0)
            {
                for (var g = 0UL; g < Leaves; g++)
                {
                    ept.AgeOneAccessed(new Gfn(g), clear: true);
                }
            }
        });
        ager.Start();
        var random = new Random(5);
        for (var round = 0; round < 20_000; round++)
        {
            var gfn = new Gfn((ulong)random.Next(Leaves));
            var observed = ept.Read(gfn);
            if (ept.TrySetAccessedDirty(gfn, observed, dirty: true))
            {
                dirtied[gfn.Value] = true;
            }
        }

        Volatile.Write(ref stop, 1);
        ager.Join();
        for (var g = 0UL; g < Leaves; g++)
        {
            var spte = ept.Read(new Gfn(g));
            Assert.That(spte.IsPresent, Is.True);
            Assert.That(spte.IsDirty, Is.EqualTo(dirtied[g]), $"gfn {g}: {spte}");
        }

        Assert.That(dirtied.Count(d => d), Is.GreaterThan(Leaves / 2));
    }
}
