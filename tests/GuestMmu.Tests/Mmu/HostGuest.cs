using Hypervisor.GuestMmu.Addresses;
using Hypervisor.GuestMmu.Backing;
using Hypervisor.GuestMmu.Memslots;
using Hypervisor.GuestMmu.Mmu;
using Hypervisor.GuestMmu.Tlb;
using Hypervisor.HostMm;
using Hypervisor.HostMm.Reclaim;
using Hypervisor.HostMm.Vmas;
using Hypervisor.Notifier;

namespace Hypervisor.GuestMmu.Tests.Mmu;

/// <summary>
/// One guest on a host the caller shares between several: its own process (optionally in a cgroup), guest RAM from
/// gpa 0 in memslot 0, and a TDP MMU with its own shootdown. Disposal detaches the MMU and ends the process; the host
/// stays the caller's.
/// </summary>
internal sealed class HostGuest : IDisposable
{
    public const ulong Page = 4096;

    public HostGuest(Host host, ulong pages, MemoryCgroup? cgroup = null)
    {
        Host = host;
        Pages = pages;
        Mm = host.CreateMm(0, cgroup);
        Ram = Mm.Mmap(pages * Page, Protection.Read | Protection.Write);
        Shootdown = new TlbShootdown();
        Mmu = new TdpMmu(Shootdown, new TdpMmuOptions());
        Mmu.SetMemoryRegion(0, MemslotFlags.None, new Gpa(0), pages * Page, Ram, new HostProcessBacking(Mm));
    }

    public Host Host { get; }

    public Hypervisor.HostMm.Mm Mm { get; }

    public ulong Pages { get; }

    public Hva Ram { get; }

    public TlbShootdown Shootdown { get; }

    public TdpMmu Mmu { get; }

    public Hva HvaOf(ulong page) => Ram + (page * Page);

    public static Gfn GfnOf(ulong page) => new(page);

    public void Dispose()
    {
        Mmu.Dispose();
        if (!Mm.HasExited)
        {
            Mm.Exit();
        }
    }
}
