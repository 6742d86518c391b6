using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using Hypervisor.GuestMmu.Addresses;
using Hypervisor.GuestMmu.Ept;
using Hypervisor.Notifier;

namespace Hypervisor.Bench.GuestMmu;

/// <summary>
/// What the hardware A/D contract costs a zap: 1 GiB of clean, writable 4 KiB leaves zapped under
/// <see cref="HardwareAdPolicy.DirtyUnderMmuLock"/> (vector stores) and <see cref="HardwareAdPolicy.Lockless"/>
/// (one atomic exchange per entry that could still gain D), beside the memset of the same bytes.
/// </summary>
[GroupBenchmarksBy(BenchmarkLogicalGroupRule.ByCategory, BenchmarkLogicalGroupRule.ByParams)]
[CategoriesColumn]
public class EptZapPolicyBenchmarks
{
    private const ulong Frames = 1UL << 18;

    private EptBenchTable _table = null!;
    private EptVectorPathScope _path;
    private Spte _template;

    /// <summary>The hardware A/D contract.</summary>
    [Params(HardwareAdPolicy.DirtyUnderMmuLock, HardwareAdPolicy.Lockless)]
    public HardwareAdPolicy Policy { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _template = Spte.Leaf(new Pfn(0), writable: true, executable: true, large: false, accessed: true);
        _path = EptVectorPath.Force(EptVectorPath.Detected);
        using (var small = new EptBenchTable(4096, _template, Policy))
        {
            EptWarmup.Run(() =>
            {
                small.Fill(_template);
                var sink = default(XorDirtySink);
                small.Ept.ZapLeaves(new Gfn(0), new Gfn(4096), ref sink);
                small.MemsetLeafTables();
            });
        }

        _table = new EptBenchTable(Frames, _template, Policy);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _table.Dispose();
        _path.Dispose();
    }

    [IterationSetup]
    public void Repopulate() => _table.Fill(_template);

    [Benchmark(Baseline = true, Description = "memset of the leaf-table bytes")]
    [BenchmarkCategory("ZapPolicy1G")]
    public void Memset() => _table.MemsetLeafTables();

    [Benchmark(Description = "ZapLeaves (clean, writable)")]
    [BenchmarkCategory("ZapPolicy1G")]
    public long Zap()
    {
        var sink = default(XorDirtySink);
        return _table.Ept.ZapLeaves(new Gfn(0), new Gfn(Frames), ref sink).Zapped;
    }
}
