using Hypervisor.HostMm.Vmas;
using Hypervisor.Notifier;
using static Hypervisor.HostMm.Tests.Ksm.KsmHosts;

namespace Hypervisor.HostMm.Tests.Ksm;

/// <summary>The auditor's KSM invariants catch what they claim to.</summary>
public class KsmAuditTests
{
    [Test]
    public void A_writable_PTE_of_a_KSM_page_is_reported()
    {
        using var host = Create();
        var mm = host.CreateMm();
        var start = MapMergeable(mm, 2, i => 600);
        FullScans(host);
        Assert.That(HostMmAuditor.CheckKsmSettled(host), Is.Empty);

        Assert.That(mm.PageTable.TryLock(start, allocate: false, out var slot), Is.True);
        using (slot)
        {
            slot.Value = slot.Value.With(HostPte.WritableBit);
        }

        Assert.That(HostMmAuditor.Check(host), Has.Some.Contains("mapped writable"));
    }

    [Test]
    public void A_KSM_page_mapped_where_no_sharer_leads_is_reported_once_settled()
    {
        using var host = Create();
        var mm = host.CreateMm();
        var start = MapMergeable(mm, 2, i => 601);
        var plain = mm.Mmap(Page, Protection.Read | Protection.Write);
        FullScans(host);
        var kpfn = FrameAt(mm, start);

        // Map the KSM page by hand in a VMA KSM does not know (as a lost rmap item would leave it).
        host.Memory.Get(kpfn);
        host.Memory.IncrementMapCount(kpfn);
        mm.HandleFault(plain, FaultAccess.Read); // builds the page table; maps the zero page
        Assert.That(mm.PageTable.TryLock(plain, allocate: false, out var slot), Is.True);
        using (slot)
        {
            slot.Value = HostPte.Present(kpfn, HostPte.UserBit);
        }

        Assert.That(HostMmAuditor.CheckKsmSettled(host), Has.Some.Contains("sharers lead to 2 mappings"));
    }
}
