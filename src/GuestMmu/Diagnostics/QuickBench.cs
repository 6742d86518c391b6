using System.Diagnostics;
using System.Runtime.Intrinsics;
using Hypervisor.GuestMmu.Ept;
using Hypervisor.GuestMmu.Memslots;
using Hypervisor.GuestMmu.Mmu;
using Hypervisor.GuestMmu.Tlb;
using Hypervisor.GuestMmu.Backing;
using Hypervisor.HostMm;
using Hypervisor.HostMm.Frames;
using Hypervisor.HostMm.Vmas;

namespace Hypervisor.GuestMmu.Diagnostics;

/// <summary>
/// Quick figures for <c>hv bench</c>: a few timed repetitions, best one kept, with the baseline measured in
/// the same run. BenchmarkDotNet in <c>bench/</c> is the rigorous version; this is for a glance.
/// </summary>
public static class QuickBench
{
    private const ulong FirstPfn = 0x10_0000;

    /// <summary>
    /// Zaps a fully populated range of <paramref name="bytes"/> of guest memory (4 KiB sptes), clean or all
    /// dirty, on the given vector path (null: the one chosen at start-up); baseline: clearing the same
    /// number of table bytes with <c>Span.Clear</c>.
    /// </summary>
    public static QuickBenchResult Zap(ulong bytes, bool dirty, EptVectorWidth? path, int repetitions)
    {
        var frames = CheckSize(bytes);
        var calls = CallsPerRepetition(bytes);
        using var ept = new EptPageTable(vectorWidth: path);
        var template = Spte.Leaf(new Pfn(FirstPfn), writable: true, executable: true, large: false, accessed: true);
        if (dirty)
        {
            template = new Spte(template.Value | Spte.DirtyBit);
        }

        WarmUp(ept.VectorWidth, template, zap: true);
        var best = double.MaxValue;
        for (var i = 0; i < repetitions; i++)
        {
            ept.PopulateLeaves(default, new Gfn(frames * calls), new Pfn(FirstPfn), template);
            var sink = default(DiscardDirtySink);
            var watch = Stopwatch.StartNew();
            for (var call = 0UL; call < calls; call++)
            {
                ept.ZapLeaves(new Gfn(call * frames), new Gfn((call + 1) * frames), ref sink);
            }

            best = Math.Min(best, watch.Elapsed.TotalNanoseconds / (frames * calls));
        }

        var baseline = MeasureOverTableBytes(frames, calls, repetitions, static span => span.Clear());
        var name = $"zap {FormatSize(bytes)} {(dirty ? "all-dirty" : "clean")} ({ept.VectorWidth})";
        return new QuickBenchResult(name, (long)frames, best, "memset of the same table bytes", baseline, (int)calls);
    }

    /// <summary>Ages (test and clear accessed) a fully populated, all-young range; baseline: a vector scan of the same table bytes.</summary>
    public static QuickBenchResult Age(ulong bytes, EptVectorWidth? path, int repetitions)
    {
        var frames = CheckSize(bytes);
        var calls = CallsPerRepetition(bytes);
        using var ept = new EptPageTable(vectorWidth: path);
        var template = Spte.Leaf(new Pfn(FirstPfn), writable: true, executable: true, large: false, accessed: true);
        WarmUp(ept.VectorWidth, template, zap: false);
        var best = double.MaxValue;
        for (var i = 0; i < repetitions; i++)
        {
            ept.PopulateLeaves(default, new Gfn(frames * calls), new Pfn(FirstPfn), template);
            var watch = Stopwatch.StartNew();
            for (var call = 0UL; call < calls; call++)
            {
                ept.AgeLeaves(new Gfn(call * frames), new Gfn((call + 1) * frames), clear: true, AgingMode.AccessedBit);
            }

            best = Math.Min(best, watch.Elapsed.TotalNanoseconds / (frames * calls));
        }

        var baseline = MeasureOverTableBytes(frames, calls, repetitions, static span => Scan(span));
        return new QuickBenchResult($"age {FormatSize(bytes)} ({ept.VectorWidth})", (long)frames, best, "scan of the same table bytes", baseline, (int)calls);
    }

    /// <summary>
    /// EPT violations end to end over <paramref name="bytes"/> of fresh guest memory: the fault path,
    /// get-user-pages and the host's demand-zero fault for every page. No baseline.
    /// </summary>
    public static QuickBenchResult Fault(ulong bytes, int repetitions)
    {
        var frames = CheckSize(bytes);
        using var host = new Host(new HostOptions { Memory = new HostMemoryOptions { TotalBytes = Math.Max(64UL << 20, RoundUp2M(bytes) * 2) } });
        var best = double.MaxValue;
        for (var i = 0; i < repetitions; i++)
        {
            var mm = host.CreateMm();
            var ram = mm.Mmap(bytes, Protection.Read | Protection.Write);
            using var mmu = new TdpMmu(new TlbShootdown());
            mmu.SetMemoryRegion(0, MemslotFlags.None, new Gpa(0), bytes, ram, new HostProcessBacking(mm));
            var watch = Stopwatch.StartNew();
            for (ulong gfn = 0; gfn < frames; gfn++)
            {
                mmu.HandleEptViolation(new Gfn(gfn).ToGpa(), EptAccess.Write);
            }

            best = Math.Min(best, watch.Elapsed.TotalNanoseconds / frames);
            mm.Exit();
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
        using var host = new Host(new HostOptions { Memory = new HostMemoryOptions { TotalBytes = Math.Max(64UL << 20, RoundUp2M(bytes) * 2) } });
        var mm = host.CreateMm();
        var ram = mm.Mmap(bytes, Protection.Read | Protection.Write, MmapFlags.Populate);
        using var mmu = new TdpMmu(new TlbShootdown());
        mmu.SetMemoryRegion(0, MemslotFlags.None, new Gpa(0), bytes, ram, new HostProcessBacking(mm));
        using var cpu = new Walker.MmuContext(mmu, 0, Walker.PagingContext.PagingOff);
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
                    cpu.TryTranslate(new Gva(page << Paging.PageShift), Walker.GuestAccess.Read, out _, out _);
                }
            }

            var perHit = watch.Elapsed.TotalNanoseconds / (passes * (double)frames);
            watch.Restart();
            for (var pass = 0; pass < passes / 10; pass++)
            {
                cpu.Tlb.FlushAll();
                for (ulong page = 0; page < frames; page++)
                {
                    cpu.TryTranslate(new Gva(page << Paging.PageShift), Walker.GuestAccess.Read, out _, out _);
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
        mmu.Dispose();
        mm.Exit();
        return new QuickBenchResult($"TLB hit over {FormatSize(bytes)} (paging off)", (long)frames, hit, "TLB miss: walk through EPT after a flush", miss);
    }

    /// <summary>"1G", "64M", "2M", "4096" → bytes; a clear error for anything else.</summary>
    public static ulong ParseSize(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var trimmed = text.Trim();
        var multiplier = 1UL;
        if (trimmed.Length > 0 && char.IsLetter(trimmed[^1]))
        {
            multiplier = char.ToUpperInvariant(trimmed[^1]) switch
            {
                'K' => 1UL << 10,
                'M' => 1UL << 20,
                'G' => 1UL << 30,
                _ => 0,
            };
            trimmed = trimmed[..^1];
        }

        if (multiplier == 0 || !ulong.TryParse(trimmed, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var value)
            || value == 0 || value > (64UL << 30) / multiplier)
        {
            throw new ArgumentException($"size '{text}' is not a size from 4K to 64G: write a number with an optional K, M or G suffix");
        }

        return value * multiplier;
    }

    /// <summary>
    /// Runs the operation on a small table for long enough that tiered compilation has optimised it: the
    /// runtime starts counting calls only after 100 ms without new JIT work, promotes a method after 30
    /// calls, and compiles it on a background thread.
    /// </summary>
    private static void WarmUp(EptVectorWidth width, Spte template, bool zap)
    {
        using var small = new EptPageTable(vectorWidth: width);
        var end = new Gfn(512 * 4);
        var watch = Stopwatch.StartNew();
        for (var i = 0; i < 2000 && (i < 300 || watch.ElapsedMilliseconds < 600); i++)
        {
            small.PopulateLeaves(default, end, new Pfn(FirstPfn), template);
            if (zap)
            {
                var sink = default(DiscardDirtySink);
                small.ZapLeaves(default, end, ref sink);
            }
            else
            {
                small.AgeLeaves(default, end, clear: true, AgingMode.AccessedBit);
            }

            if (i % 50 == 49)
            {
                Thread.Sleep(20); // give the background compiler time
            }
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

    private static ulong RoundUp2M(ulong bytes) => (bytes + Paging.LargePageSize - 1) & ~(Paging.LargePageSize - 1);

    /// <summary>
    /// Calls per timed repetition: ranges below 64 MiB are measured as consecutive separate calls over 64 MiB, so
    /// a repetition lasts long enough for the clock (a 2 MiB zap alone takes well under a microsecond).
    /// </summary>
    private static ulong CallsPerRepetition(ulong bytes) => Math.Max(1, (64UL << 20) / bytes);

    /// <summary>The baseline over <paramref name="calls"/> buffers of <paramref name="entries"/> table entries each, one action per buffer.</summary>
    private static unsafe double MeasureOverTableBytes(ulong entries, ulong calls, int repetitions, SpanAction action) // unsafe: a native buffer the size of the leaf tables.
    {
        var bytes = entries * sizeof(ulong);
        var total = bytes * calls;
        var buffer = (byte*)NativeMemory.AlignedAlloc((nuint)total, 4096);
        try
        {
            for (ulong offset = 0; offset < total; offset += 1UL << 30)
            {
                new Span<byte>(buffer + offset, (int)Math.Min(total - offset, 1UL << 30)).Fill(1);
            }

            var best = double.MaxValue;
            for (var i = 0; i < repetitions; i++)
            {
                var watch = Stopwatch.StartNew();
                for (var call = 0UL; call < calls; call++)
                {
                    var start = buffer + (call * bytes);
                    for (ulong offset = 0; offset < bytes; offset += 1UL << 30)
                    {
                        action(new Span<byte>(start + offset, (int)Math.Min(bytes - offset, 1UL << 30)));
                    }
                }

                best = Math.Min(best, watch.Elapsed.TotalNanoseconds / (entries * calls));
            }

            return best;
        }
        finally
        {
            NativeMemory.AlignedFree(buffer);
        }
    }

    private static ulong Scan(Span<byte> bytes)
    {
        var words = MemoryMarshal.Cast<byte, ulong>(bytes);
        var accumulator = Vector256<ulong>.Zero;
        var vectors = MemoryMarshal.Cast<ulong, Vector256<ulong>>(words);
        foreach (var vector in vectors)
        {
            accumulator |= vector & Vector256.Create(Spte.AccessedBit);
        }

        return Vector256.Sum(accumulator);
    }

    private static string FormatSize(ulong bytes) => bytes >= 1UL << 30 && bytes % (1UL << 30) == 0 ? $"{bytes >> 30} GiB"
        : bytes >= 1UL << 20 && bytes % (1UL << 20) == 0 ? $"{bytes >> 20} MiB"
        : $"{bytes >> 10} KiB";

    private delegate void SpanAction(Span<byte> span);
}
