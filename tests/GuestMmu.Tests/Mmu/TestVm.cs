using Hypervisor.GuestMmu.Backing;
using Hypervisor.GuestMmu.Addresses;
using Hypervisor.Notifier;
using Hypervisor.GuestMmu.Memslots;
using Hypervisor.GuestMmu.Mmu;
using Hypervisor.GuestMmu.Tlb;
using Hypervisor.HostMm;
using Hypervisor.HostMm.Frames;
using Hypervisor.HostMm.Vmas;

namespace Hypervisor.GuestMmu.Tests.Mmu;

/// <summary>A host process whose anonymous mapping backs guest memory from gpa 0 through one memslot, with the MMU attached.</summary>
internal sealed class TestVm : IDisposable
{
    public const ulong Page = 4096;

    public TestVm(ulong pages = 64, TdpMmuOptions? options = null, bool legacyChangePte = false)
    {
        Host = new Host(new HostOptions
        {
            Memory = new HostMemoryOptions { TotalBytes = 64UL << 20, AuditFreedFrames = true },
            LegacyChangePte = legacyChangePte,
        });
        Mm = Host.CreateMm();
        Pages = pages;
        Base = Mm.Mmap(pages * Page, Protection.Read | Protection.Write);
        Shootdown = new TlbShootdown();
        Mmu = new TdpMmu(Shootdown, options);
        Mmu.SetMemoryRegion(0, MemslotFlags.None, new Gpa(0), pages * Page, Base, new HostProcessBacking(Mm));
    }

    public Host Host { get; }

    public Hypervisor.HostMm.Mm Mm { get; }

    public ulong Pages { get; }

    public Hva Base { get; }

    public MemslotSet Slots => Mmu.Memslots;

    public TlbShootdown Shootdown { get; }

    public TdpMmu Mmu { get; }

    public static Gpa GpaOf(ulong page) => new(page * Page);

    public Hva HvaOf(ulong page) => Base + (page * Page);

    public void AssertCoherent()
    {
        var violations = MmuAuditor.Check(Mmu);
        Assert.That(violations, Is.Empty, string.Join(Environment.NewLine, violations.Take(10)));
    }

    public void Dispose()
    {
        Mmu.Dispose();
        if (!Mm.HasExited)
        {
            Mm.Exit();
        }

        Host.Dispose();
    }
}
