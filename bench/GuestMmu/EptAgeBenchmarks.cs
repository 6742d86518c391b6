using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using Hypervisor.GuestMmu.Addresses;
using Hypervisor.GuestMmu.Ept;
using Hypervisor.Notifier;
using Hypervisor.Vmm.Bench;

namespace Hypervisor.Bench.GuestMmu;

/// <summary>
/// One aging pass (A/D bits on) over a densely 4 KiB-mapped 1 GiB range, beside a vector scan of the same
/// leaf-table bytes in the same run (the baseline). Target (issue 4): ≥ 1e9 sptes/s. Cases: a test-only
/// pass over all-young leaves (test_young / page_idle reads), a clearing pass over all-young leaves (the
/// worst case: every entry rewritten), a clearing pass over all-old leaves (a steady-state idle pass), and,
/// for the A/D-off model, an access-tracking clearing pass over young read-only leaves (every entry rewritten).
/// </summary>
[GroupBenchmarksBy(BenchmarkLogicalGroupRule.ByCategory, BenchmarkLogicalGroupRule.ByParams)]
[CategoriesColumn]
public class EptAgeBenchmarks
{
    private const ulong Frames = 1UL << 18; // 1 GiB

    private EptBenchTable _table = null!;
    private Spte _template;

    /// <summary>Kernel path.</summary>
    [Params(EptVectorWidth.Vector512, EptVectorWidth.Scalar)]
    public EptVectorWidth Path { get; set; }

    /// <summary>Which pass.</summary>
    [Params("test-young", "clear-young", "clear-old", "track-clear")]
    public string Pass { get; set; } = "test-young";

    [GlobalSetup]
    public void Setup()
    {
        _template = Spte.Leaf(new Pfn(0), writable: Pass != "track-clear", executable: true, large: false, accessed: Pass != "clear-old");
        using (var small = new EptBenchTable(4096, _template, width: Path))
        {
            TieringWarmup.Run(() =>
            {
                small.Fill(_template);
                RunPass(small.Ept, 4096);
                small.ScanLeafTables();
            });
        }

        _table = new EptBenchTable(Frames, _template, width: Path);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _table.Dispose();
    }

    [IterationSetup]
    public void Repopulate() => _table.Fill(_template);

    [Benchmark(Baseline = true, Description = "scan of the leaf-table bytes")]
    [BenchmarkCategory("Age1G")]
    public ulong Scan() => _table.ScanLeafTables();

    [Benchmark(Description = "AgeLeaves")]
    [BenchmarkCategory("Age1G")]
    public long Age()
    {
        var young = RunPass(_table.Ept, Frames);
        var expected = Pass == "clear-old" ? 0 : (long)Frames;
        if (young != expected)
        {
            throw new InvalidOperationException($"{young} young, expected {expected}");
        }

        return young;
    }

    private long RunPass(EptPageTable ept, ulong frames)
    {
        if (Pass == "track-clear")
        {
            var sink = default(XorDirtySink);
            return ept.AgeLeaves(new Gfn(0), new Gfn(frames), clear: true, AgingMode.AccessTracking, ref sink).Young;
        }

        return ept.AgeLeaves(new Gfn(0), new Gfn(frames), clear: Pass != "test-young", AgingMode.AccessedBit).Young;
    }
}
