using Hypervisor.GuestMmu.Backing;
using BenchmarkDotNet.Attributes;
using Hypervisor.GuestMmu.Addresses;
using Hypervisor.GuestMmu.Memslots;
using Hypervisor.GuestMmu.Mmu;
using Hypervisor.GuestMmu.Tlb;
using Hypervisor.HostMm;
using Hypervisor.HostMm.Frames;
using Hypervisor.HostMm.Vmas;
using HostProcess = Hypervisor.HostMm.Mm;

namespace Hypervisor.Bench.GuestMmu;

/// <summary>
/// EPT violations end to end on fresh guest memory: snapshot, get-user-pages with the host's demand-zero
/// fault, MMU read lock, retry check and spte install, per 4 KiB page over 256 MiB. Target (issue 4):
/// ≤ 500 ns/page including the host's demand-zero.
/// </summary>
public class EptFaultInBenchmarks
{
    private const ulong Bytes = 256UL << 20;
    private const int Pages = (int)(Bytes >> 12);

    private Host _host = null!;
    private HostProcess _mm = null!;
    private TdpMmu _mmu = null!;

    [GlobalSetup]
    public void GlobalSetup() =>
        _host = new Host(new HostOptions { Memory = new HostMemoryOptions { TotalBytes = 1UL << 30 } });

    [GlobalCleanup]
    public void GlobalCleanup() => _host.Dispose();

    [IterationSetup]
    public void MapFreshGuestMemory()
    {
        _mm = _host.CreateMm();
        var ram = _mm.Mmap(Bytes, Protection.Read | Protection.Write);
        _mmu = new TdpMmu(new TlbShootdown());
        _mmu.SetMemoryRegion(0, MemslotFlags.None, new Gpa(0), Bytes, ram, new HostProcessBacking(_mm));
    }

    [IterationCleanup]
    public void Teardown()
    {
        _mmu.Dispose();
        _mm.Exit();
    }

    [Benchmark(OperationsPerInvoke = Pages, Description = "EPT violation → spte, with host demand-zero")]
    public void FaultIn()
    {
        for (ulong gfn = 0; gfn < Pages; gfn++)
        {
            _mmu.HandleEptViolation(new Gfn(gfn).ToGpa(), EptAccess.Write);
        }
    }
}
