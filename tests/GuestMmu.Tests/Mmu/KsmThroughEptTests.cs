using Hypervisor.GuestMmu.Addresses;
using Hypervisor.GuestMmu.Mmu;
using Hypervisor.GuestMmu.Walker;
using Hypervisor.HostMm;
using Hypervisor.HostMm.Frames;
using Hypervisor.HostMm.Ksm;

namespace Hypervisor.GuestMmu.Tests.Mmu;

/// <summary>
/// KSM seen from two guests on one host, deterministically: a merge zaps the sptes of both merged pages (the
/// write_protect_page and replace_page rows of reference/mmu-notifier.md §3: each start zaps), the next guest read
/// refaults and maps the KSM page read-only, and a guest write through the EPT breaks it copy-on-write
/// (<c>cow_ksm</c>) into a private page while the other guest keeps reading the merged content.
/// </summary>
public class KsmThroughEptTests
{
    private const ulong Page = HostGuest.Page;
    private const int Pages = 4;

    [Test]
    public void A_merge_zaps_both_sptes_and_the_next_read_maps_the_ksm_page_read_only()
    {
        using var host = NewHost();
        using var a = new HostGuest(host, Pages);
        using var b = new HostGuest(host, Pages);
        using var cpuA = new MmuContext(a.Mmu, 0, PagingContext.PagingOff);
        using var cpuB = new MmuContext(b.Mmu, 0, PagingContext.PagingOff);
        WriteContents(cpuA, cpuB);
        Assert.That(a.Mmu.Ept.Read(new Gfn(0)) is { IsPresent: true, IsWritable: true }, "the guest write mapped page 0 writable");

        var faultsA = a.Mmu.Stats.Faults;
        var faultsB = b.Mmu.Stats.Faults;
        MergeUntilSharing(host, 1, a, b);

        var kpfn = a.Mm.PageTable.Read(a.Ram).Pfn;
        Assert.That(b.Mm.PageTable.Read(b.Ram).Pfn, Is.EqualTo(kpfn), "both processes' page 0 map one KSM page");
        Assert.That(a.Mm.PageTable.Read(a.Ram).IsWritable || b.Mm.PageTable.Read(b.Ram).IsWritable, Is.False, "read-only in both");
        Assert.That(a.Mmu.Ept.Read(new Gfn(0)).IsPresent, Is.False, "write_protect_page's start zapped A's spte");
        Assert.That(b.Mmu.Ept.Read(new Gfn(0)).IsPresent, Is.False, "B's spte is zapped too");
        Assert.That(a.Mmu.Ept.Read(new Gfn(1)).IsPresent, Is.True, "a unique page is never write-protected, its spte stays");
        Assert.That(host.Ksm.Stats.PagesShared, Is.EqualTo(1));
        AssertAudited(host, a, b);

        var buffer = new byte[Page];
        Assert.That(GuestRead(cpuA, 0, buffer), Is.True);
        Assert.That(buffer, Is.EqualTo(Content(7)), "merging never changes what a guest reads");
        Assert.That(a.Mmu.Stats.Faults, Is.EqualTo(faultsA + 1), "the read refaulted");
        var spte = a.Mmu.Ept.Read(new Gfn(0));
        Assert.That(spte.IsPresent && spte.Pfn == kpfn, Is.True, $"the refault maps the KSM pfn {kpfn}, got {spte}");
        Assert.That(spte.IsWritable, Is.False, "read-only");
        Assert.That(b.Mmu.Stats.Faults, Is.EqualTo(faultsB), "B has not touched the page");
        AssertAudited(host, a, b);
    }

    [Test]
    public void A_guest_write_through_the_ept_to_a_merged_page_breaks_cow_and_the_other_guest_reads_the_old_content()
    {
        using var host = NewHost();
        using var a = new HostGuest(host, Pages);
        using var b = new HostGuest(host, Pages);
        using var cpuA = new MmuContext(a.Mmu, 0, PagingContext.PagingOff);
        using var cpuB = new MmuContext(b.Mmu, 0, PagingContext.PagingOff);
        WriteContents(cpuA, cpuB);
        MergeUntilSharing(host, 1, a, b);
        var kpfn = a.Mm.PageTable.Read(a.Ram).Pfn;
        var buffer = new byte[Page];
        Assert.That(GuestRead(cpuA, 0, buffer), Is.True, "A maps the KSM page read-only first");
        var cowBefore = host.Stats.CowKsm;

        Assert.That(GuestWrite(cpuA, 0, Content(9)), Is.True);

        Assert.That(host.Stats.CowKsm, Is.EqualTo(cowBefore + 1), "the write fault copied the KSM page (cow_ksm)");
        var spte = a.Mmu.Ept.Read(new Gfn(0));
        Assert.That(spte is { IsPresent: true, IsWritable: true }, Is.True, $"A's spte maps its private copy writable, got {spte}");
        Assert.That(spte.Pfn, Is.Not.EqualTo(kpfn));
        Assert.That(a.Mm.PageTable.Read(a.Ram).Pfn, Is.EqualTo(spte.Pfn), "the host PTE and the spte agree");
        Assert.That(GuestRead(cpuA, 0, buffer) && buffer.AsSpan().SequenceEqual(Content(9)), Is.True, "A reads its write");
        Assert.That(GuestRead(cpuB, 0, buffer), Is.True);
        Assert.That(buffer, Is.EqualTo(Content(7)), "the write is private to A: B still reads the merged content");
        var spteB = b.Mmu.Ept.Read(new Gfn(0));
        Assert.That(spteB.IsPresent && spteB.Pfn == kpfn && !spteB.IsWritable, Is.True, $"B maps the KSM page read-only, got {spteB}");
        Assert.That(host.Memory.FrameBytes(kpfn).ToArray(), Is.EqualTo(Content(7)), "the KSM page itself never changed");
        AssertAudited(host, a, b);
    }

    /// <summary>One guest write as the vCPU loop makes it: in guest mode, after the boundary's pending TLB flushes.</summary>
    private static bool GuestWrite(MmuContext cpu, ulong address, byte[] data) => InGuest(cpu, () => cpu.Write(new Gva(address), data).IsOk);

    /// <summary>One guest read as the vCPU loop makes it (see <see cref="GuestWrite"/>).</summary>
    private static bool GuestRead(MmuContext cpu, ulong address, byte[] buffer) => InGuest(cpu, () => cpu.Read(new Gva(address), buffer).IsOk);

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

    /// <summary>A 64 MiB host (the auditor's minimum) whose freed frames are poisoned and checked.</summary>
    private static Host NewHost() =>
        new(new HostOptions { Memory = new HostMemoryOptions { TotalBytes = 64UL << 20, AuditFreedFrames = true } });

    /// <summary>Page 0 gets the same content in both guests, the other pages contents of their own; all RAM mergeable.</summary>
    private static void WriteContents(MmuContext cpuA, MmuContext cpuB)
    {
        foreach (var (cpu, salt) in new[] { (cpuA, 100), (cpuB, 200) })
        {
            Assert.That(GuestWrite(cpu, 0, Content(7)), Is.True);
            for (var page = 1; page < Pages; page++)
            {
                Assert.That(GuestWrite(cpu, (ulong)page * Page, Content(salt + page)), Is.True);
            }
        }
    }

    private static void MergeUntilSharing(Host host, long sharing, params HostGuest[] guests)
    {
        foreach (var guest in guests)
        {
            guest.Mm.Madvise(guest.Ram, Pages * Page, Advice.Mergeable);
        }

        host.Ksm.SmartScan = false;
        host.Ksm.Run = KsmRunMode.Merge;
        for (var scan = 0; scan < 8 && host.Ksm.Stats.PagesSharing < sharing; scan++)
        {
            host.Ksm.Step(2 * Pages);
        }

        Assert.That(host.Ksm.Stats.PagesSharing, Is.EqualTo(sharing), "the equal pages merged within a few scans");
        host.Ksm.Run = KsmRunMode.Stop;
    }

    private static void AssertAudited(Host host, params HostGuest[] guests)
    {
        Assert.That(HostMmAuditor.Check(host), Is.Empty);
        foreach (var guest in guests)
        {
            var violations = MmuAuditor.Check(guest.Mmu);
            Assert.That(violations, Is.Empty, string.Join(Environment.NewLine, violations.Take(10)));
        }
    }

    /// <summary>A page of content <paramref name="kind"/>: equal kinds give equal pages, never a zero page.</summary>
    private static byte[] Content(int kind)
    {
        var page = new byte[Page];
        for (var i = 0; i < page.Length; i += 8)
        {
            BitConverter.TryWriteBytes(page.AsSpan(i), ((ulong)kind * 0x9E37_79B9_7F4A_7C15UL) ^ (ulong)(i + 1));
        }

        return page;
    }
}
