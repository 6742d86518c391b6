using Hypervisor.GuestMmu.Addresses;
using Hypervisor.GuestMmu.Ept;
using Hypervisor.Notifier;

namespace Hypervisor.GuestMmu.Tests.Ept;

public sealed class EptMemoryTests
{
    [Test]
    public void Dense4KMappingOfOneGiB_UsesAtMostAQuarterPercentOfGuestRamInTables()
    {
        using var ept = new EptPageTable();
        const ulong Frames = 1UL << 18;
        var added = ept.PopulateLeaves(new Gfn(0), new Gfn(Frames), new Pfn(0), Spte.Leaf(new Pfn(0), true, true, false, true));
        Assert.That(added, Is.EqualTo((long)Frames));
        Assert.That(ept.Tables, Is.EqualTo(1 + 1 + 1 + 512), "root, PDPT, PD and one leaf table per 2 MiB");
        var ratio = (double)ept.TableBytes / (Frames * Paging.PageSize);
        Assert.That(ratio, Is.LessThanOrEqualTo(0.0025));
        Assert.That(ratio, Is.GreaterThan(0.00195), "512 leaves per 4 KiB table (plus 8 bytes of counts) is 0.195% before upper levels");
        Assert.That(ept.Arena.BytesReserved, Is.LessThanOrEqualTo(ept.TableBytes + (EptArena.TablesPerChunk * EptArena.BytesPerTable)), "the arena reserves at most one chunk beyond use");
    }

    [Test]
    public void Dispose_WithAPrivateArena_IsIdempotentAndLaterUseThrows()
    {
        var ept = new EptPageTable();
        ept.TryInstallLeaf(new Gfn(1), 1, Spte.Empty, Spte.Leaf(new Pfn(1), false, false, false, false));
        ept.Dispose();
        ept.Dispose();
        Assert.Throws<ObjectDisposedException>(() => ept.Read(new Gfn(1)));
        Assert.Throws<ObjectDisposedException>(() => ept.TryInstallLeaf(new Gfn(1), 1, Spte.Empty, Spte.Empty));
    }

    [Test]
    public void ConstructorAndVectorPath_RejectUndefinedValues()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => _ = new EptPageTable(policy: (HardwareAdPolicy)7));
        Assert.Throws<ArgumentOutOfRangeException>(() => EptVectorPath.Force((EptVectorWidth)9));
        Assert.That(EptVectorPath.Current, Is.EqualTo(EptVectorPath.Detected));
    }
}
