using BenchmarkDotNet.Attributes;
using Hypervisor.HostMm.Swap;

namespace Hypervisor.Bench.HostMm.Swap;

/// <summary>
/// swap_map operations per slot on a 4 GiB area (2048 clusters), single-threaded: allocate + free (HAS_CACHE
/// dropped), a batch of 32 (reclaim's <c>SWAP_CLUSTER_MAX</c>) allocated and freed, and a map reference taken and
/// dropped. Means are per slot.
/// </summary>
public class SwapSlotBenchmarks
{
    private const int Batch = 32;
    private const int Rounds = 1024;

    private SwapArea _area = null!;
    private readonly ulong[] _slots = new ulong[Batch];
    private ulong _held;

    [GlobalSetup]
    public void GlobalSetup()
    {
        _area = new SwapArea(new ZramSwapDevice(4UL << 30));
        _area.TryAllocate(out _held);
    }

    [GlobalCleanup]
    public void GlobalCleanup() => _area.Dispose();

    [Benchmark(OperationsPerInvoke = Rounds, Description = "slot: allocate + free")]
    public void AllocateFree()
    {
        for (var i = 0; i < Rounds; i++)
        {
            _area.TryAllocate(out var slot);
            _area.ClearCache(slot);
        }
    }

    [Benchmark(OperationsPerInvoke = Rounds * Batch, Description = "slot: batch of 32 allocate + free")]
    public void AllocateFreeBatch()
    {
        for (var i = 0; i < Rounds; i++)
        {
            _area.AllocateBatch(_slots);
            foreach (var slot in _slots)
            {
                _area.ClearCache(slot);
            }
        }
    }

    [Benchmark(OperationsPerInvoke = Rounds, Description = "slot: duplicate + free reference")]
    public void DuplicateFree()
    {
        for (var i = 0; i < Rounds; i++)
        {
            _area.Duplicate(_held);
            _area.FreeReference(_held);
        }
    }
}
