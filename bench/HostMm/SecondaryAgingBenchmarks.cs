using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using Hypervisor.GuestMmu.Addresses;
using Hypervisor.GuestMmu.Mmu;
using Hypervisor.HostMm;
using Hypervisor.HostMm.Reclaim;
using Hypervisor.HostMm.Vmas;
using Hypervisor.Notifier;
using Hypervisor.Vmm.Bench;
using HostProcess = Hypervisor.HostMm.Mm;

namespace Hypervisor.Bench.HostMm;

/// <summary>
/// An aging pass over 1 GiB of resident guest memory, as the classic LRU's <c>shrink_active_list</c> ages each page:
/// <c>folio_referenced</c> per frame — the reverse map to the one mapping, the host PTE's accessed bit tested and
/// cleared under its lock, then <c>clear_flush_young</c> through the process's notifier chain into the TDP MMU,
/// which answers from (and clears) the EPT accessed bit. Baseline: the same pass over a process with no secondary
/// MMU (the chain is empty), so the Ratio column is what the secondary young calls add. Mean per page.
/// Target (issue 11): ≤ 100 ns per page including the secondary MMU's young calls. A third row is the multi-gen
/// LRU's aging pass over the same 1 GiB (a separate host with <see cref="LruPolicy.MultiGen"/>): <c>AgeCgroup</c>
/// walks the process's page tables one PTE table at a time, clearing accessed bits and asking the chain with
/// <c>clear_young</c>, and promotes the young pages into a new generation. Two more rows are the classic LRU's batched
/// aging (<c>Reclaimer.FolioReferencedBatch</c>, what <c>shrink_active_list</c> and <c>shrink_folio_list</c> now call) in
/// 32-page batches: each batch's run of one PTE table is aged under one PTL hold with one <c>clear_flush_young</c> bitmap
/// query, so the TDP MMU is called once per 32 pages.
/// </summary>
/// <remarks>
/// <see cref="Young"/> true: before each pass every host PTE and every spte is made young again (so the pass clears
/// bits and the EPT answer is "young"); false: the pass finds everything old (a second pass in a row).
/// </remarks>
[GroupBenchmarksBy(BenchmarkLogicalGroupRule.ByCategory, BenchmarkLogicalGroupRule.ByParams)]
[CategoriesColumn]
public class SecondaryAgingBenchmarks
{
    private const ulong Bytes = 1UL << 30;
    private const int Pages = (int)(Bytes >> 12);
    private const int BatchPages = 32;

    private Host _host = null!;
    private BenchVm _vm = null!;
    private Host _mglruHost = null!;
    private BenchVm _mglruVm = null!;
    private HostProcess _plain = null!;
    private Hva _plainRam;
    private Pfn[] _guestFrames = [];
    private Pfn[] _plainFrames = [];

    /// <summary>True: every page was accessed since the last pass (host PTE and spte accessed bits set).</summary>
    [Params(false, true)]
    public bool Young { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _host = new Host(new HostOptions { Memory = new Hypervisor.HostMm.Frames.HostMemoryOptions { TotalBytes = (2 * Bytes) + (256UL << 20) } });
        _vm = new BenchVm(_host, Bytes, populate: true);
        FaultInAll(_vm);

        _mglruHost = new Host(new HostOptions
        {
            Memory = new Hypervisor.HostMm.Frames.HostMemoryOptions { TotalBytes = Bytes + (256UL << 20) },
            Reclaim = new ReclaimOptions { Policy = LruPolicy.MultiGen },
        });
        _mglruVm = new BenchVm(_mglruHost, Bytes, populate: true);
        FaultInAll(_mglruVm);

        _plain = _host.CreateMm();
        _plainRam = _plain.Mmap(Bytes, Protection.Read | Protection.Write, MmapFlags.Populate);
        _guestFrames = FramesOf(_vm.Mm, _vm.Ram);
        _plainFrames = FramesOf(_plain, _plainRam);
        TieringWarmup.Run(() =>
        {
            MakeYoung(_vm.Mm, _vm.Ram, 512, secondary: true);
            Age(_guestFrames.AsSpan(0, 512));
            AgeBatched(_guestFrames[..512]);
            MakeYoung(_plain, _plainRam, 512, secondary: false);
            Age(_plainFrames.AsSpan(0, 512));
            AgeBatched(_plainFrames[..512]);
            MakeYoung(_mglruVm, 512);
            _mglruHost.Reclaim.AgeCgroup(_mglruHost.Reclaim.Root);
        });
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _vm.Dispose();
        _plain.Exit();
        _host.Dispose();
        _mglruVm.Dispose();
        _mglruHost.Dispose();
    }

    [IterationSetup(Targets = [nameof(AgeWithSecondary), nameof(AgeBatchedWithSecondary)])]
    public void PrepareGuest()
    {
        if (Young)
        {
            MakeYoung(_vm.Mm, _vm.Ram, Pages, secondary: true);
        }
    }

    [IterationSetup(Targets = [nameof(AgePrimaryOnly), nameof(AgeBatchedPrimaryOnly)])]
    public void PreparePlain()
    {
        if (Young)
        {
            MakeYoung(_plain, _plainRam, Pages, secondary: false);
        }
    }

    [IterationSetup(Target = nameof(AgeMglruWalk))]
    public void PrepareMglru()
    {
        if (Young)
        {
            MakeYoung(_mglruVm, Pages);
        }
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Pages, Description = "folio_referenced per page, no secondary MMU")]
    [BenchmarkCategory("Aging1G")]
    public long AgePrimaryOnly() => Age(_plainFrames);

    [Benchmark(OperationsPerInvoke = Pages, Description = "folio_referenced per page + clear_flush_young into the TDP MMU")]
    [BenchmarkCategory("Aging1G")]
    public long AgeWithSecondary()
    {
        var before = _vm.Mmu.Stats.AgingCalls;
        var referenced = Age(_guestFrames);
        var calls = _vm.Mmu.Stats.AgingCalls - before;
        if (calls != Pages || (Young && referenced != Pages))
        {
            throw new InvalidOperationException($"{calls} secondary aging calls, {referenced} referenced, for {Pages} pages");
        }

        return referenced;
    }

    [Benchmark(OperationsPerInvoke = Pages, Description = "batched aging (32-page batches), no secondary MMU")]
    [BenchmarkCategory("Aging1G")]
    public long AgeBatchedPrimaryOnly() => AgeBatched(_plainFrames);

    [Benchmark(OperationsPerInvoke = Pages, Description = "batched aging (32-page batches) + clear_flush_young bitmap into the TDP MMU")]
    [BenchmarkCategory("Aging1G")]
    public long AgeBatchedWithSecondary()
    {
        var before = _vm.Mmu.Stats.AgingCalls;
        var referenced = AgeBatched(_guestFrames);
        var calls = _vm.Mmu.Stats.AgingCalls - before;
        if (calls != Pages / BatchPages || (Young && referenced != Pages))
        {
            throw new InvalidOperationException($"{calls} secondary aging calls, {referenced} referenced, for {Pages} pages");
        }

        return referenced;
    }

    [Benchmark(OperationsPerInvoke = Pages, Description = "MGLRU aging walk (AgeCgroup) + clear_young into the TDP MMU")]
    [BenchmarkCategory("Aging1G")]
    public long AgeMglruWalk()
    {
        var before = _mglruVm.Mmu.Stats.AgingCalls;
        var hitsBefore = _mglruHost.Reclaim.Stats.SecondaryYoungHits;
        var promoted = _mglruHost.Reclaim.AgeCgroup(_mglruHost.Reclaim.Root);
        var calls = _mglruVm.Mmu.Stats.AgingCalls - before;
        var hits = _mglruHost.Reclaim.Stats.SecondaryYoungHits - hitsBefore;
        if (calls == 0 || hits != (Young ? Pages : 0))
        {
            throw new InvalidOperationException($"{calls} secondary aging calls found {hits} pages young ({promoted} promoted), for {Pages} pages");
        }

        return promoted;
    }

    private static void FaultInAll(BenchVm vm)
    {
        for (ulong page = 0; page < (ulong)Pages; page++)
        {
            var result = vm.Mmu.HandleEptViolation(new Gfn(page).ToGpa(), EptAccess.Write);
            if (result.Outcome != EptFaultOutcome.Installed)
            {
                throw new InvalidOperationException($"fault-in of page {page}: {result.Outcome}");
            }
        }
    }

    /// <summary>Makes the first <paramref name="pages"/> of <paramref name="vm"/> young in the host PTEs and in the EPT.</summary>
    private static void MakeYoung(BenchVm vm, int pages)
    {
        for (var page = 0; page < pages; page++)
        {
            vm.Mm.HandleFault(vm.Ram + ((ulong)page << 12), FaultAccess.Read);
            var gfn = new Gfn((ulong)page);
            var spte = vm.Mmu.Ept.Read(gfn);
            if (!spte.IsAccessed && !vm.Mmu.Ept.TrySetAccessedDirty(gfn, spte, dirty: false))
            {
                throw new InvalidOperationException($"could not make {gfn} young");
            }
        }
    }

    private long Age(ReadOnlySpan<Pfn> frames)
    {
        long referenced = 0;
        foreach (var pfn in frames)
        {
            referenced += _host.Reclaim.FolioReferenced(pfn, out _);
        }

        return referenced;
    }

    /// <summary>
    /// The classic LRU's batched aging as <c>shrink_active_list</c> runs it: <see cref="BatchPages"/> frames at a time (the
    /// default <see cref="ReclaimOptions.BatchPages"/>), in LRU-tail order (ascending addresses, as faulted in).
    /// </summary>
    private long AgeBatched(Pfn[] frames)
    {
        Span<uint> batch = stackalloc uint[BatchPages];
        Span<bool> age = stackalloc bool[BatchPages];
        Span<int> references = stackalloc int[BatchPages];
        Span<bool> complete = stackalloc bool[BatchPages];
        age.Fill(true);
        long referenced = 0;
        for (var first = 0; first < frames.Length; first += BatchPages)
        {
            for (var k = 0; k < BatchPages; k++)
            {
                batch[k] = (uint)frames[first + k].Value;
            }

            _host.Reclaim.FolioReferencedBatch(batch, age, references, complete);
            foreach (var found in references)
            {
                referenced += found;
            }
        }

        return referenced;
    }

    private static Pfn[] FramesOf(HostProcess mm, Hva start)
    {
        var frames = new Pfn[Pages];
        for (var page = 0; page < Pages; page++)
        {
            var pte = mm.PageTable.Read(start + ((ulong)page << 12));
            if (!pte.IsPresent)
            {
                throw new InvalidOperationException($"page {page} is not resident");
            }

            frames[page] = pte.Pfn;
        }

        return frames;
    }

    /// <summary>Sets the accessed bit of each host PTE (a host read fault on a present page) and, for the guest, of each spte.</summary>
    private void MakeYoung(HostProcess mm, Hva start, int pages, bool secondary)
    {
        for (var page = 0; page < pages; page++)
        {
            mm.HandleFault(start + ((ulong)page << 12), FaultAccess.Read);
            if (secondary)
            {
                var gfn = new Gfn((ulong)page);
                var spte = _vm.Mmu.Ept.Read(gfn);
                if (!spte.IsAccessed && !_vm.Mmu.Ept.TrySetAccessedDirty(gfn, spte, dirty: false))
                {
                    throw new InvalidOperationException($"could not make {gfn} young");
                }
            }
        }
    }
}
