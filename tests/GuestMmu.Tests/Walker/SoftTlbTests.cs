using Hypervisor.GuestMmu.Addresses;
using Hypervisor.GuestMmu.Walker;

namespace Hypervisor.GuestMmu.Tests.Walker;

/// <summary>The TLB on its own, filled with synthetic translations (host addresses are never dereferenced).</summary>
public unsafe class SoftTlbTests
{
    private const nint HostBase = 0x7000_0000;

    [Test]
    public void FilledPermissionsHitAndOthersMiss()
    {
        var tlb = new SoftTlb();
        tlb.Fill(Ok(0x1000, PagePermissions.Read), GuestAccess.Read);

        Assert.That(tlb.TryLookup(new Gva(0x1234), GuestAccess.Read, out var host), Is.True);
        Assert.That((nint)host, Is.EqualTo(HostBase + 0x234));
        Assert.That(tlb.TryLookup(new Gva(0x1234), GuestAccess.Write, out _), Is.False);
        Assert.That(tlb.TryLookup(new Gva(0x1234), GuestAccess.Execute, out _), Is.False);
        Assert.That(tlb.TryLookup(new Gva(0x2234), GuestAccess.Read, out _), Is.False);
        Assert.That(tlb.TryLookup(new Gva(0x1234 + (SoftTlb.EntriesPerClass * 4096UL)), GuestAccess.Read, out _), Is.False, "an alias of the same slot");
        Assert.That(tlb.Stats.Hits, Is.EqualTo(1));
        Assert.That(tlb.Stats.Misses, Is.EqualTo(4));
    }

    [Test]
    public void AccessClassesAreKeptApart()
    {
        var tlb = new SoftTlb { AccessClass = TlbAccessClass.SupervisorAc };
        tlb.Fill(Ok(0x1000, PagePermissions.Read), GuestAccess.Read);

        Assert.That(tlb.TryLookup(new Gva(0x1000), GuestAccess.Read, out _), Is.True);
        Assert.That(tlb.TryLookup(new Gva(0x1000), GuestAccess.Read | GuestAccess.ImplicitSupervisor, out _), Is.False, "implicit accesses use the SMAP-enforced class");
        tlb.AccessClass = TlbAccessClass.User;
        Assert.That(tlb.TryLookup(new Gva(0x1000), GuestAccess.Read, out _), Is.False);
        tlb.AccessClass = TlbAccessClass.Supervisor;
        Assert.That(tlb.TryLookup(new Gva(0x1000), GuestAccess.Read, out _), Is.False);
    }

    [Test]
    public void FlushNonGlobalKeepsGlobalEntriesAndFlushAllDropsThem()
    {
        var tlb = new SoftTlb();
        tlb.Fill(Ok(0x1000, PagePermissions.Read), GuestAccess.Read);
        tlb.Fill(Ok(0x2000, PagePermissions.Read, global: true), GuestAccess.Read);

        tlb.FlushNonGlobal();
        Assert.That(tlb.TryLookup(new Gva(0x1000), GuestAccess.Read, out _), Is.False);
        Assert.That(tlb.TryLookup(new Gva(0x2000), GuestAccess.Read, out _), Is.True);

        tlb.FlushAll();
        Assert.That(tlb.TryLookup(new Gva(0x2000), GuestAccess.Read, out _), Is.False);
    }

    [Test]
    public void GenerationWrapAroundNeverRevivesAStaleEntry()
    {
        var tlb = new SoftTlb();
        tlb.Fill(Ok(0x1000, PagePermissions.Read), GuestAccess.Read);
        tlb.Fill(Ok(0x2000, PagePermissions.Read, global: true), GuestAccess.Read);

        for (var i = 0; i < 5000; i++)
        {
            tlb.FlushNonGlobal();
            Assert.That(tlb.TryLookup(new Gva(0x1000), GuestAccess.Read, out _), Is.False, $"after {i + 1} CR3 writes");
        }

        Assert.That(tlb.TryLookup(new Gva(0x2000), GuestAccess.Read, out _), Is.True, "the global entry survived the wraps");
        tlb.Fill(Ok(0x3000, PagePermissions.Read, global: true), GuestAccess.Read);
        for (var i = 0; i < 5000; i++)
        {
            tlb.FlushAll();
            Assert.That(tlb.TryLookup(new Gva(0x3000), GuestAccess.Read, out _), Is.False, $"after {i + 1} full flushes");
        }

        Assert.That(tlb.Stats.GenerationWraps, Is.GreaterThanOrEqualTo(3));
    }

    [Test]
    public void FlushPageDropsOnlyThatPageInEveryClass()
    {
        var tlb = new SoftTlb();
        tlb.Fill(Ok(0x1000, PagePermissions.Read, global: true), GuestAccess.Read);
        tlb.Fill(Ok(0x2000, PagePermissions.Read), GuestAccess.Read);
        tlb.AccessClass = TlbAccessClass.User;
        tlb.Fill(Ok(0x1000, PagePermissions.Read), GuestAccess.Read);

        tlb.FlushPage(new Gva(0x1ABC));

        Assert.That(tlb.TryLookup(new Gva(0x1000), GuestAccess.Read, out _), Is.False);
        tlb.AccessClass = TlbAccessClass.Supervisor;
        Assert.That(tlb.TryLookup(new Gva(0x1000), GuestAccess.Read, out _), Is.False, "INVLPG drops global entries too");
        Assert.That(tlb.TryLookup(new Gva(0x2000), GuestAccess.Read, out _), Is.True);
    }

    [Test]
    public void FlushPageInsideACachedLargePageFlushesEverything()
    {
        var tlb = new SoftTlb();
        tlb.Fill(Ok(0x20_0000, PagePermissions.Read, pageSize: 2UL << 20), GuestAccess.Read);
        tlb.Fill(Ok(0x20_1000, PagePermissions.Read, pageSize: 2UL << 20), GuestAccess.Read);
        tlb.Fill(Ok(0x100_0000, PagePermissions.Read), GuestAccess.Read);

        tlb.FlushPage(new Gva(0x9000));
        Assert.That(tlb.TryLookup(new Gva(0x20_1000), GuestAccess.Read, out _), Is.True, "outside the large page: nothing dropped");

        tlb.FlushPage(new Gva(0x3F_F000));

        Assert.That(tlb.TryLookup(new Gva(0x20_0000), GuestAccess.Read, out _), Is.False);
        Assert.That(tlb.TryLookup(new Gva(0x20_1000), GuestAccess.Read, out _), Is.False);
        Assert.That(tlb.TryLookup(new Gva(0x100_0000), GuestAccess.Read, out _), Is.False);
        Assert.That(tlb.Stats.LargePageFlushes, Is.EqualTo(1));
    }

    [Test]
    public void NonOkResultsAreNotCachedAndMixedKindsAreRejected()
    {
        var tlb = new SoftTlb();
        tlb.Fill(TranslationResult.PageFault(new Gva(0x1000), PageFaultErrorCode.None), GuestAccess.Read);

        Assert.That(tlb.TryLookup(new Gva(0x1000), GuestAccess.Read, out _), Is.False);
        Assert.That(tlb.Stats.Fills, Is.Zero);
        Assert.That(() => tlb.TryLookup(new Gva(0x1000), GuestAccess.Write | GuestAccess.Execute, out _), Throws.ArgumentException);
    }

    private static TranslationResult Ok(ulong gva, PagePermissions permissions, bool global = false, ulong pageSize = 4096) => new()
    {
        Status = TranslationStatus.Ok,
        Gva = new Gva(gva),
        Gpa = new Gpa(gva),
        HostAddress = HostBase,
        PageSize = pageSize,
        Permissions = permissions,
        Global = global,
    };
}
