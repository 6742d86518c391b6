using Hypervisor.GuestMmu.Addresses;
using Hypervisor.GuestMmu.Backing;
using Hypervisor.GuestMmu.Memslots;
using Hypervisor.GuestMmu.Mmu;
using Hypervisor.GuestMmu.Tlb;
using Hypervisor.HostMm;
using Hypervisor.HostMm.Frames;
using Hypervisor.HostMm.Vmas;
using Hypervisor.Notifier;
using HostProcess = Hypervisor.HostMm.Mm;

namespace Hypervisor.Vmm.Bench;

/// <summary>
/// The guest-memory setup of the fault-in, TLB and walker benchmarks, shared by <c>bench/</c>
/// (BenchmarkDotNet) and <c>hv bench</c>: a host process whose anonymous read-write mapping is guest memory
/// <c>[0, bytes)</c> in memslot 0 of a <see cref="TdpMmu"/>, reached through <see cref="HostProcessBacking"/>.
/// The host is the caller's, so one host can serve a fresh guest per iteration.
/// </summary>
public sealed class BenchVm : IDisposable
{
    /// <summary>Maps <paramref name="bytes"/> of guest memory in a new process of <paramref name="host"/>.</summary>
    /// <param name="host">The host whose frames back the guest.</param>
    /// <param name="bytes">Guest memory size, a multiple of 4 KiB.</param>
    /// <param name="populate">Fault every host page in up front (<c>MAP_POPULATE</c>), so EPT faults find them resident.</param>
    /// <param name="options">The MMU's options; null for the defaults.</param>
    public BenchVm(Host host, ulong bytes, bool populate = false, TdpMmuOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(host);
        Mm = host.CreateMm();
        Ram = Mm.Mmap(bytes, Protection.Read | Protection.Write, populate ? MmapFlags.Populate : MmapFlags.None);
        Mmu = new TdpMmu(new TlbShootdown(), options);
        Mmu.SetMemoryRegion(0, MemslotFlags.None, new Gpa(0), bytes, Ram, new HostProcessBacking(Mm));
    }

    /// <summary>The host process backing guest memory.</summary>
    public HostProcess Mm { get; }

    /// <summary>Where guest memory starts in <see cref="Mm"/> (guest-physical 0).</summary>
    public Hva Ram { get; }

    /// <summary>The secondary MMU.</summary>
    public TdpMmu Mmu { get; }

    /// <summary>
    /// A host with room for <paramref name="guestBytes"/> of guest memory twice over (rounded to 2 MiB), and at
    /// least <paramref name="minimumBytes"/>.
    /// </summary>
    public static Host CreateHost(ulong guestBytes, ulong minimumBytes = 64UL << 20)
    {
        var rounded = (guestBytes + Paging.LargePageSize - 1) & ~(Paging.LargePageSize - 1);
        return new Host(new HostOptions { Memory = new HostMemoryOptions { TotalBytes = Math.Max(minimumBytes, rounded * 2) } });
    }

    /// <summary>Detaches the MMU (unregistering its notifiers), then ends the process, freeing its frames.</summary>
    public void Dispose()
    {
        Mmu.Dispose();
        Mm.Exit();
    }
}
