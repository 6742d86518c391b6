using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using Hypervisor.GuestMmu.Addresses;
using Hypervisor.GuestMmu.Ept;
using Hypervisor.Notifier;
using Hypervisor.Vmm.Bench;

namespace Hypervisor.Bench.GuestMmu;

/// <summary>
/// Zap of a densely 4 KiB-mapped guest range (KVM's zap_leafs under the MMU write lock), clean or all
/// dirty, vector or scalar kernels, beside a memset of the same leaf-table bytes measured in the same run
/// (the baseline, so the Ratio column is "zap / memset"). Targets (issue 4): clean ≥ 1e9 sptes/s and
/// within 2× of memset; all-dirty ≥ 2.5e8 sptes/s.
/// </summary>
/// <remarks>
/// A clean, fully populated leaf table is decided from its counts (<c>LeafTableCounts</c>) and cleared
/// without being read, so the clean rows measure that path; all-dirty tables go through the kernels, and
/// <see cref="EptZapPolicyBenchmarks"/> (one dirty entry per table) measures the kernels on nearly clean tables.
/// </remarks>
/// <remarks>
/// Every iteration starts from a freshly populated range (IterationSetup, a bulk fill), so one invocation
/// per iteration. Ranges below 64 MiB are zapped as consecutive separate calls over 64 MiB
/// (<see cref="Calls"/> of them) so an operation lasts long enough to time; divide by the call count for
/// one call.
/// </remarks>
[GroupBenchmarksBy(BenchmarkLogicalGroupRule.ByCategory, BenchmarkLogicalGroupRule.ByParams)]
[CategoriesColumn]
public class EptZapBenchmarks
{
    private const ulong MiB = 1UL << 20;

    private EptBenchTable _table = null!;
    private Spte _template;

    /// <summary>Guest range zapped per call.</summary>
    [Params(2 * MiB, 64 * MiB, 1024 * MiB, 16384 * MiB)]
    public ulong RangeBytes { get; set; }

    /// <summary>Kernel path.</summary>
    [Params(EptVectorWidth.Vector512, EptVectorWidth.Scalar)]
    public EptVectorWidth Path { get; set; }

    /// <summary>True: every leaf has its dirty bit set and is reported to the sink.</summary>
    [Params(false, true)]
    public bool Dirty { get; set; }

    /// <summary>Zap calls per operation (64 MiB / range, at least 1).</summary>
    public int Calls => (int)Math.Max(1, 64 * MiB / RangeBytes);

    /// <summary>Leaves zapped per operation: divide the mean by this for ns per spte.</summary>
    public ulong LeavesPerOp => RangeBytes / 4096 * (ulong)Calls;

    [GlobalSetup]
    public void Setup()
    {
        _template = Spte.Leaf(new Pfn(0), writable: true, executable: true, large: false, accessed: true);
        if (Dirty)
        {
            _template = _template.WithAccessed(dirty: true);
        }

        using (var small = new EptBenchTable(4096, _template, width: Path))
        {
            TieringWarmup.Run(() =>
            {
                small.Fill(_template);
                var sink = default(XorDirtySink);
                small.Ept.ZapLeaves(new Gfn(0), new Gfn(4096), ref sink);
                small.MemsetLeafTables();
            });
        }

        _table = new EptBenchTable(LeavesPerOp, _template, width: Path);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _table.Dispose();
    }

    [IterationSetup]
    public void Repopulate() => _table.Fill(_template);

    [Benchmark(Baseline = true, Description = "memset of the leaf-table bytes")]
    [BenchmarkCategory("Zap4K")]
    public void Memset() => _table.MemsetLeafTables();

    [Benchmark(Description = "ZapLeaves")]
    [BenchmarkCategory("Zap4K")]
    public long Zap()
    {
        var sink = default(XorDirtySink);
        var frames = RangeBytes / 4096;
        long zapped = 0;
        for (var call = 0UL; call < (ulong)Calls; call++)
        {
            zapped += _table.Ept.ZapLeaves(new Gfn(call * frames), new Gfn((call + 1) * frames), ref sink).Zapped;
        }

        if (zapped != (long)LeavesPerOp || sink.Reports != (Dirty ? zapped : 0))
        {
            throw new InvalidOperationException($"zapped {zapped} with {sink.Reports} dirty; expected {LeavesPerOp}");
        }

        return zapped + (long)sink.Checksum;
    }
}
