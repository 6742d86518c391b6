using System.Diagnostics;
using Hypervisor.GuestMmu.Addresses;
using Hypervisor.GuestMmu.Ept;
using Hypervisor.GuestMmu.Mmu;
using Hypervisor.GuestMmu.Walker;
using Hypervisor.Notifier;

namespace Hypervisor.Vmm.Bench;

/// <summary>
/// Quick figures for <c>hv bench</c>: a few timed repetitions, best one kept, with the baseline measured in
/// the same run. BenchmarkDotNet in <c>bench/</c> is the rigorous version, on the same setup
/// (<see cref="EptBenchTable"/>, <see cref="BenchVm"/>); this is for a glance.
/// </summary>
public static partial class QuickBench
{
    /// <summary>
    /// Zaps a fully populated range of <paramref name="bytes"/> of guest memory (4 KiB sptes), clean or all
    /// dirty, on the given vector path (null: the widest the CPU accelerates); baseline: clearing the same
    /// leaf-table bytes with <c>Span.Clear</c>.
    /// </summary>
    public static QuickBenchResult Zap(ulong bytes, bool dirty, EptVectorWidth? path, int repetitions)
    {
        var frames = CheckSize(bytes);
        var calls = CallsPerRepetition(bytes);
        var template = Spte.Leaf(new Pfn(EptBenchTable.FirstPfn), writable: true, executable: true, large: false, accessed: true);
        if (dirty)
        {
            template = template.WithAccessed(dirty: true);
        }

        using var table = new EptBenchTable(frames * calls, template, width: path);
        WarmUp(table.Ept.VectorWidth, template, zap: true);
        var best = double.MaxValue;
        for (var i = 0; i < repetitions; i++)
        {
            table.Fill(template);
            var watch = Stopwatch.StartNew();
            ZapCalls(table.Ept, frames, calls);
            best = Math.Min(best, watch.Elapsed.TotalNanoseconds / (frames * calls));
        }

        // Each baseline repetition clears tables the zap just emptied (so the counts stay exact) after the same
        // fill, so the table lines are as warm as before a timed zap.
        var baseline = double.MaxValue;
        for (var i = 0; i < repetitions; i++)
        {
            table.Fill(template);
            ZapCalls(table.Ept, frames, calls);
            var watch = Stopwatch.StartNew();
            table.MemsetLeafTables();
            baseline = Math.Min(baseline, watch.Elapsed.TotalNanoseconds / (frames * calls));
        }

        var name = $"zap {FormatSize(bytes)} {(dirty ? "all-dirty" : "clean")} ({table.Ept.VectorWidth})";
        return new QuickBenchResult(name, (long)frames, best, "memset of the same table bytes", baseline, (int)calls);
    }

    /// <summary>Ages (test and clear accessed) a fully populated, all-young range; baseline: a vector scan of the same leaf-table bytes.</summary>
    public static QuickBenchResult Age(ulong bytes, EptVectorWidth? path, int repetitions)
    {
        var frames = CheckSize(bytes);
        var calls = CallsPerRepetition(bytes);
        var template = Spte.Leaf(new Pfn(EptBenchTable.FirstPfn), writable: true, executable: true, large: false, accessed: true);
        using var table = new EptBenchTable(frames * calls, template, width: path);
        WarmUp(table.Ept.VectorWidth, template, zap: false);
        var best = double.MaxValue;
        var baseline = double.MaxValue;
        ulong scanned = 0;
        for (var i = 0; i < repetitions; i++)
        {
            table.Fill(template);
            var watch = Stopwatch.StartNew();
            for (var call = 0UL; call < calls; call++)
            {
                table.Ept.AgeLeaves(new Gfn(call * frames), new Gfn((call + 1) * frames), clear: true, AgingMode.AccessedBit);
            }

            best = Math.Min(best, watch.Elapsed.TotalNanoseconds / (frames * calls));
            table.Fill(template);
            watch.Restart();
            scanned |= table.ScanLeafTables();
            baseline = Math.Min(baseline, watch.Elapsed.TotalNanoseconds / (frames * calls));
        }

        GC.KeepAlive(scanned);
        return new QuickBenchResult($"age {FormatSize(bytes)} ({table.Ept.VectorWidth})", (long)frames, best, "scan of the same table bytes", baseline, (int)calls);
    }

    /// <summary>
    /// EPT violations end to end over <paramref name="bytes"/> of fresh guest memory: the fault path,
    /// get-user-pages and the host's demand-zero fault for every page. No baseline.
    /// </summary>
    public static QuickBenchResult Fault(ulong bytes, int repetitions)
    {
        var frames = CheckSize(bytes);
        using var host = BenchVm.CreateHost(bytes);
        var best = double.MaxValue;
        for (var i = 0; i < repetitions; i++)
        {
            using var vm = new BenchVm(host, bytes);
            var watch = Stopwatch.StartNew();
            for (ulong gfn = 0; gfn < frames; gfn++)
            {
                vm.Mmu.HandleEptViolation(new Gfn(gfn).ToGpa(), EptAccess.Write);
            }

            best = Math.Min(best, watch.Elapsed.TotalNanoseconds / frames);
        }

        return new QuickBenchResult($"EPT fault-in {FormatSize(bytes)} (with host demand-zero)", (long)frames, best, null, 0);
    }

    /// <summary>
    /// Soft-TLB hits: a vCPU with paging off translates every page of <paramref name="bytes"/> of guest
    /// memory (at most the TLB's reach is useful) after one warm pass; baseline: the same translations
    /// after a full flush each pass, so every one is a walk through EPT.
    /// </summary>
    public static unsafe QuickBenchResult Tlb(ulong bytes, int repetitions) // unsafe: TryTranslate hands out host pointers.
    {
        var frames = CheckSize(bytes);
        using var host = BenchVm.CreateHost(bytes);
        using var vm = new BenchVm(host, bytes, populate: true);
        using var cpu = new MmuContext(vm.Mmu, 0, PagingContext.PagingOff);
        cpu.Port.EnterGuest();
        const int passes = 200;
        double hit = double.MaxValue, miss = double.MaxValue;
        for (var i = 0; i < repetitions + 1; i++)
        {
            var watch = Stopwatch.StartNew();
            for (var pass = 0; pass < passes; pass++)
            {
                for (ulong page = 0; page < frames; page++)
                {
                    cpu.TryTranslate(new Gva(page << Paging.PageShift), GuestAccess.Read, out _, out _);
                }
            }

            var perHit = watch.Elapsed.TotalNanoseconds / (passes * (double)frames);
            watch.Restart();
            for (var pass = 0; pass < passes / 10; pass++)
            {
                cpu.Tlb.FlushAll();
                for (ulong page = 0; page < frames; page++)
                {
                    cpu.TryTranslate(new Gva(page << Paging.PageShift), GuestAccess.Read, out _, out _);
                }
            }

            var perMiss = watch.Elapsed.TotalNanoseconds / (passes / 10 * (double)frames);
            if (i > 0)
            {
                hit = Math.Min(hit, perHit);
                miss = Math.Min(miss, perMiss);
            }
        }

        cpu.Port.ExitGuest();
        return new QuickBenchResult($"TLB hit over {FormatSize(bytes)} (paging off)", (long)frames, hit, "TLB miss: walk through EPT after a flush", miss);
    }

    /// <summary>
    /// Runs the operation and its baseline on a small table of the same path until tiered compilation has
    /// optimised them (<see cref="TieringWarmup"/>).
    /// </summary>
    private static void WarmUp(EptVectorWidth width, Spte template, bool zap)
    {
        const ulong Frames = 512 * 4;
        using var small = new EptBenchTable(Frames, template, width: width);
        TieringWarmup.Run(() =>
        {
            small.Fill(template);
            if (zap)
            {
                ZapCalls(small.Ept, Frames, 1);
                small.MemsetLeafTables();
            }
            else
            {
                small.Ept.AgeLeaves(default, new Gfn(Frames), clear: true, AgingMode.AccessedBit);
                small.ScanLeafTables();
            }
        });
    }

    /// <summary><paramref name="calls"/> consecutive zaps of <paramref name="frames"/> each, from gfn 0.</summary>
    private static void ZapCalls(EptPageTable ept, ulong frames, ulong calls)
    {
        var sink = default(XorDirtySink);
        for (var call = 0UL; call < calls; call++)
        {
            ept.ZapLeaves(new Gfn(call * frames), new Gfn((call + 1) * frames), ref sink);
        }
    }

    private static ulong CheckSize(ulong bytes)
    {
        if (bytes < Paging.PageSize || !Paging.IsPageAligned(bytes))
        {
            throw new ArgumentException($"size {bytes} is not a positive multiple of {Paging.PageSize}");
        }

        return bytes >> Paging.PageShift;
    }

    /// <summary>
    /// Calls per timed repetition: ranges below 64 MiB are measured as consecutive separate calls over 64 MiB, so
    /// a repetition lasts long enough for the clock (a 2 MiB zap alone takes well under a microsecond).
    /// </summary>
    private static ulong CallsPerRepetition(ulong bytes) => Math.Max(1, (64UL << 20) / bytes);

    private static string FormatSize(ulong bytes) => bytes >= 1UL << 30 && bytes % (1UL << 30) == 0 ? $"{bytes >> 30} GiB"
        : bytes >= 1UL << 20 && bytes % (1UL << 20) == 0 ? $"{bytes >> 20} MiB"
        : $"{bytes >> 10} KiB";
}
