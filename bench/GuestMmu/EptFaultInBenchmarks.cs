using BenchmarkDotNet.Attributes;
using Hypervisor.GuestMmu.Addresses;
using Hypervisor.GuestMmu.Mmu;
using Hypervisor.HostMm;
using Hypervisor.Vmm.Bench;

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
    private BenchVm _vm = null!;

    [GlobalSetup]
    public void GlobalSetup() => _host = BenchVm.CreateHost(Bytes, minimumBytes: 1UL << 30);

    [GlobalCleanup]
    public void GlobalCleanup() => _host.Dispose();

    [IterationSetup]
    public void MapFreshGuestMemory() => _vm = new BenchVm(_host, Bytes);

    [IterationCleanup]
    public void Teardown() => _vm.Dispose();

    [Benchmark(OperationsPerInvoke = Pages, Description = "EPT violation → spte, with host demand-zero")]
    public void FaultIn()
    {
        var mmu = _vm.Mmu;
        for (ulong gfn = 0; gfn < Pages; gfn++)
        {
            mmu.HandleEptViolation(new Gfn(gfn).ToGpa(), EptAccess.Write);
        }
    }
}
