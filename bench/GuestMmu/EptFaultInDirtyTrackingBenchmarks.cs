using BenchmarkDotNet.Attributes;
using Hypervisor.GuestMmu.Addresses;
using Hypervisor.GuestMmu.Mmu;
using Hypervisor.HostMm;
using Hypervisor.Vmm.Bench;

namespace Hypervisor.Bench.GuestMmu;

/// <summary>
/// The map side of <see cref="DirtyTrackingPolicy"/>: write EPT violations over 256 MiB of resident guest memory
/// (populated, so no host demand-zero: snapshot, get-user-pages, MMU read lock, retry check, install) under
/// <see cref="DirtyTrackingPolicy.OnZap"/> (the baseline) and <see cref="DirtyTrackingPolicy.OnMap"/>, which adds
/// marking the host frame dirty at install. Ratio: what map-time marking costs the fault path.
/// </summary>
public class EptFaultInDirtyTrackingBenchmarks
{
    private const ulong Bytes = 256UL << 20;
    private const int Pages = (int)(Bytes >> 12);

    private Host _host = null!;
    private BenchVm? _vm;

    [GlobalSetup]
    public void GlobalSetup()
    {
        _host = BenchVm.CreateHost(Bytes, minimumBytes: 1UL << 30);
        foreach (var policy in new[] { DirtyTrackingPolicy.OnZap, DirtyTrackingPolicy.OnMap })
        {
            TieringWarmup.Run(() =>
            {
                using var small = new BenchVm(_host, 2UL << 20, populate: true, new TdpMmuOptions { DirtyTracking = policy });
                FaultIn(small.Mmu, 512);
            });
        }
    }

    [GlobalCleanup]
    public void GlobalCleanup() => _host.Dispose();

    [IterationSetup(Target = nameof(FaultInOnZap))]
    public void FreshOnZap() => _vm = new BenchVm(_host, Bytes, populate: true, new TdpMmuOptions { DirtyTracking = DirtyTrackingPolicy.OnZap });

    [IterationSetup(Target = nameof(FaultInOnMap))]
    public void FreshOnMap() => _vm = new BenchVm(_host, Bytes, populate: true, new TdpMmuOptions { DirtyTracking = DirtyTrackingPolicy.OnMap });

    [IterationCleanup]
    public void Teardown()
    {
        _vm?.Dispose();
        _vm = null;
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Pages, Description = "write EPT violation → spte, OnZap")]
    public void FaultInOnZap() => FaultIn(_vm!.Mmu, Pages);

    [Benchmark(OperationsPerInvoke = Pages, Description = "write EPT violation → spte + frame marked dirty, OnMap")]
    public void FaultInOnMap() => FaultIn(_vm!.Mmu, Pages);

    private static void FaultIn(TdpMmu mmu, int pages)
    {
        for (ulong gfn = 0; gfn < (ulong)pages; gfn++)
        {
            mmu.HandleEptViolation(new Gfn(gfn).ToGpa(), EptAccess.Write);
        }
    }
}
