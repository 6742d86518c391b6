using Hypervisor.GuestMmu.Addresses;
using Hypervisor.GuestMmu.Backing;
using Hypervisor.GuestMmu.Memslots;
using Hypervisor.GuestMmu.Mmu;
using Hypervisor.GuestMmu.Tlb;
using Hypervisor.GuestMmu.Walker;
using Hypervisor.HostMm;
using Hypervisor.HostMm.Frames;
using Hypervisor.HostMm.Ksm;
using Hypervisor.HostMm.Vmas;
using Hypervisor.Notifier;

namespace Hypervisor.GuestMmu.Tests.Mmu;

/// <summary>
/// The change_pte story through EPT: two guests on one host write the same pages; the host's scanner merges them while
/// both TDP MMUs map them writable. With the host's legacy change_pte (2.6.32–6.9), replace_page (and the copy-on-write
/// break) call it inside start/end, and the TDP MMU never finds an spte to change: the start zapped it. Either way the
/// guests read the one KSM page read-only and a guest write stays private.
/// </summary>
public class KsmChangePteThroughEptTests
{
    private const ulong Page = 4096;
    private const int Pages = 8;

    [Test]
    public void Change_pte_inside_start_end_never_finds_an_spte_and_merging_never_changes_what_the_guests_read([Values] bool legacyChangePte)
    {
        using var host = new Host(new HostOptions
        {
            Memory = new HostMemoryOptions { TotalBytes = 64UL << 20, AuditFreedFrames = true },
            LegacyChangePte = legacyChangePte,
        });
        using var a = new Guest(host);
        using var b = new Guest(host);
        using var cpuA = new MmuContext(a.Mmu, 0, PagingContext.PagingOff);
        using var cpuB = new MmuContext(b.Mmu, 0, PagingContext.PagingOff);
        for (var page = 0; page < Pages; page++)
        {
            Assert.That(GuestWrite(cpuA, (ulong)page * Page, PageData(page)), Is.True);
            Assert.That(GuestWrite(cpuB, (ulong)page * Page, PageData(page)), Is.True);
        }

        Assert.That(a.PresentSptes(), Is.EqualTo(Pages), "the guests map their pages writable before the merge");
        host.Ksm.Run = KsmRunMode.Merge;
        for (var pass = host.Ksm.Stats.FullScans; host.Ksm.Stats.FullScans < pass + 2;)
        {
            host.Ksm.Step(100);
        }

        Assert.That(host.Ksm.Stats.PagesSharing, Is.EqualTo(Pages));
        Assert.That(a.PresentSptes() + b.PresentSptes(), Is.Zero, "every merge zapped the spte of the page it changed");
        AssertAudited(host, a, b);

        var buffer = new byte[Page];
        for (var page = 0; page < Pages; page++)
        {
            Assert.That(GuestRead(cpuA, (ulong)page * Page, buffer), Is.True);
            Assert.That(buffer, Is.EqualTo(PageData(page)));
            Assert.That(GuestRead(cpuB, (ulong)page * Page, buffer), Is.True);
            Assert.That(buffer, Is.EqualTo(PageData(page)));
        }

        var spteA = a.Mmu.Ept.Read(new Gpa(0).Gfn);
        var spteB = b.Mmu.Ept.Read(new Gpa(0).Gfn);
        Assert.That(spteA.Pfn, Is.EqualTo(spteB.Pfn), "both guests map the one KSM page");
        Assert.That(host.Memory.Frame(spteA.Pfn).Has(FrameFlags.Ksm), Is.True);
        Assert.That(spteA.IsWritable || spteB.IsWritable, Is.False, "read-only in EPT, as in the host");
        AssertAudited(host, a, b);

        var mine = PageData(100);
        Assert.That(GuestWrite(cpuA, 0, mine), Is.True);

        Assert.That(GuestRead(cpuA, 0, buffer), Is.True);
        Assert.That(buffer, Is.EqualTo(mine));
        Assert.That(GuestRead(cpuB, 0, buffer), Is.True);
        Assert.That(buffer, Is.EqualTo(PageData(0)), "guest B never sees guest A's write");
        Assert.That(a.Mmu.Ept.Read(new Gpa(0).Gfn).Pfn, Is.Not.EqualTo(spteB.Pfn));
        Assert.That(host.Stats.CowKsm, Is.EqualTo(1));
        AssertAudited(host, a, b);

        var stats = a.Mmu.Stats;
        var statsB = b.Mmu.Stats;
        Assert.That(stats.ChangePteHits + statsB.ChangePteHits, Is.Zero, "inside start/end the spte is always gone already");
        Assert.That(stats.ChangePteMisses + statsB.ChangePteMisses, legacyChangePte ? Is.GreaterThan(0) : Is.Zero);
    }

    private static void AssertAudited(Host host, Guest a, Guest b)
    {
        var violations = HostMmAuditor.Check(host).Concat(MmuAuditor.Check(a.Mmu)).Concat(MmuAuditor.Check(b.Mmu)).ToList();
        Assert.That(violations, Is.Empty, string.Join(Environment.NewLine, violations.Take(10)));
    }

    private static bool GuestWrite(MmuContext cpu, ulong address, byte[] data) => InGuest(cpu, () => cpu.Write(new Gva(address), data).IsOk);

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

    private static byte[] PageData(int page)
    {
        var bytes = new byte[Page];
        new Random(7_001 + page).NextBytes(bytes);
        return bytes;
    }

    /// <summary>One guest: a host process with mergeable RAM and a TDP MMU over it.</summary>
    private sealed class Guest : IDisposable
    {
        public Guest(Host host)
        {
            Mm = host.CreateMm();
            Ram = Mm.Mmap(Pages * Page, Protection.Read | Protection.Write);
            Mm.Madvise(Ram, Pages * Page, Advice.Mergeable);
            Mmu = new TdpMmu(new TlbShootdown(), new TdpMmuOptions());
            Mmu.SetMemoryRegion(0, MemslotFlags.None, new Gpa(0), Pages * Page, Ram, new HostProcessBacking(Mm));
        }

        public Mm Mm { get; }

        public Hva Ram { get; }

        public TdpMmu Mmu { get; }

        public int PresentSptes() => Enumerable.Range(0, Pages).Count(page => Mmu.Ept.Read(new Gpa((ulong)page * Page).Gfn).IsPresent);

        public void Dispose()
        {
            Mmu.Dispose();
            Mm.Exit();
        }
    }
}
