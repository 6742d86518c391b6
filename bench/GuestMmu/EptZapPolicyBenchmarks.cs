using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using Hypervisor.GuestMmu.Addresses;
using Hypervisor.GuestMmu.Ept;
using Hypervisor.Notifier;
using Hypervisor.Vmm.Bench;

namespace Hypervisor.Bench.GuestMmu;

/// <summary>
/// What the hardware A/D contract costs a zap: 1 GiB of clean, writable 4 KiB leaves zapped under
/// <see cref="HardwareAdPolicy.DirtyUnderMmuLock"/> (vector stores) and <see cref="HardwareAdPolicy.Lockless"/>
/// (one atomic exchange per entry that could still gain D), beside the memset of the same bytes.
/// With <see cref="OneDirtyPerTable"/> each leaf table has one dirty entry, so no table can be cleared
/// from its counts alone and the rows measure the zap kernels on (almost) clean tables.
/// </summary>
[GroupBenchmarksBy(BenchmarkLogicalGroupRule.ByCategory, BenchmarkLogicalGroupRule.ByParams)]
[CategoriesColumn]
public class EptZapPolicyBenchmarks
{
    private const ulong Frames = 1UL << 18;

    private EptBenchTable _table = null!;
    private Spte _template;

    /// <summary>The hardware A/D contract.</summary>
    [Params(HardwareAdPolicy.DirtyUnderMmuLock, HardwareAdPolicy.Lockless)]
    public HardwareAdPolicy Policy { get; set; }

    /// <summary>True: hardware dirtied the first entry of every leaf table (one report per 512 sptes).</summary>
    [Params(false, true)]
    public bool OneDirtyPerTable { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _template = Spte.Leaf(new Pfn(0), writable: true, executable: true, large: false, accessed: true);
        using (var small = new EptBenchTable(4096, _template, Policy))
        {
            TieringWarmup.Run(() =>
            {
                small.Fill(_template);
                DirtyFirstOfEachTable(small, 4096);
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
    }

    [IterationSetup]
    public void Repopulate()
    {
        _table.Fill(_template);
        DirtyFirstOfEachTable(_table, Frames);
    }

    /// <summary>With <see cref="OneDirtyPerTable"/>, "hardware" dirties the first spte of every leaf table (the warm-up too, so the kernel path is the one compiled to its optimised tier).</summary>
    private void DirtyFirstOfEachTable(EptBenchTable table, ulong frames)
    {
        if (!OneDirtyPerTable)
        {
            return;
        }

        for (var gfn = 0UL; gfn < frames; gfn += 512)
        {
            var spte = table.Ept.Read(new Gfn(gfn));
            if (!table.Ept.TrySetAccessedDirty(new Gfn(gfn), spte, dirty: true))
            {
                throw new InvalidOperationException($"could not dirty {new Gfn(gfn)}");
            }
        }
    }

    [Benchmark(Baseline = true, Description = "memset of the leaf-table bytes")]
    [BenchmarkCategory("ZapPolicy1G")]
    public void Memset() => _table.MemsetLeafTables();

    [Benchmark(Description = "ZapLeaves (clean, writable)")]
    [BenchmarkCategory("ZapPolicy1G")]
    public long Zap()
    {
        var sink = default(XorDirtySink);
        var result = _table.Ept.ZapLeaves(new Gfn(0), new Gfn(Frames), ref sink);
        if (result.Zapped != (long)Frames || result.Dirty != (OneDirtyPerTable ? (long)Frames / 512 : 0))
        {
            throw new InvalidOperationException($"zapped {result.Zapped} with {result.Dirty} dirty");
        }

        return result.Zapped;
    }
}
