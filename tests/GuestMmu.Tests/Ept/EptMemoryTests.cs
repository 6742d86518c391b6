using Hypervisor.GuestMmu.Addresses;
using Hypervisor.GuestMmu.Ept;
using Hypervisor.GuestMmu.Mmu;
using Hypervisor.GuestMmu.Tlb;
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
    public void Constructor_RejectsUndefinedPolicyAndVectorWidth()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => _ = new EptPageTable(policy: (HardwareAdPolicy)7));
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => _ = new EptPageTable(vectorWidth: (EptVectorWidth)9));
        Assert.That(e!.ParamName, Is.EqualTo("vectorWidth"));
    }

    [Test]
    public void VectorWidth_IsChosenPerTable_DefaultingToTheDetectedOne()
    {
        using var detected = new EptPageTable();
        using var scalar = new EptPageTable(vectorWidth: EptVectorWidth.Scalar);
        using var wide = new EptPageTable(vectorWidth: EptVectorWidth.Vector256);
        Assert.That(detected.VectorWidth, Is.EqualTo(EptVectorPath.Detected));
        Assert.That(scalar.VectorWidth, Is.EqualTo(EptVectorWidth.Scalar), "a second table on another path changes nothing for the first");
        Assert.That(wide.VectorWidth, Is.EqualTo(EptVectorWidth.Vector256));

        // Both live at once and do the same work on their own paths.
        var template = Spte.Leaf(new Pfn(0), writable: true, executable: true, large: false, accessed: true).WithAccessed(dirty: true);
        foreach (var ept in new[] { scalar, wide })
        {
            ept.PopulateLeaves(new Gfn(3), new Gfn(1500), new Pfn(0x100), template);
        }

        var scalarSink = new RecordingSink();
        var wideSink = new RecordingSink();
        Assert.That(scalar.ZapLeaves(new Gfn(0), new Gfn(2048), ref scalarSink), Is.EqualTo(wide.ZapLeaves(new Gfn(0), new Gfn(2048), ref wideSink)));
        Assert.That(wideSink.Reports, Is.EqualTo(scalarSink.Reports).And.Count.EqualTo(1497));
    }

    [Test]
    public void TdpMmuOptions_VectorWidth_ReachesTheEpt()
    {
        using var defaults = new TdpMmu(new TlbShootdown());
        using var scalar = new TdpMmu(new TlbShootdown(), new TdpMmuOptions { VectorWidth = EptVectorWidth.Scalar });
        Assert.That(defaults.Ept.VectorWidth, Is.EqualTo(EptVectorPath.Detected));
        Assert.That(scalar.Ept.VectorWidth, Is.EqualTo(EptVectorWidth.Scalar));
    }
}
