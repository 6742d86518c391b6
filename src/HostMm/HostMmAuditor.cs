using Hypervisor.HostMm.Frames;
using Hypervisor.HostMm.PageTables;

namespace Hypervisor.HostMm;

/// <summary>
/// Cross-checks the host's page tables against its frames: every frame's mapcount equals the PTEs that map
/// it, no free frame is mapped, every mapped frame lies inside a VMA of its process, RSS and swap-entry counts
/// match, and — when the host is quiescent (no operation in flight) — every in-use frame's references are exactly
/// its mappings plus the swap cache's, every page-table frame belongs to a live process, and the LRU lists, cgroup
/// charges, swap cache and swap map agree with the frames and the swap PTEs. For tests and stress runs; it reads
/// without locks, so call it only when no operation is running.
/// </summary>
public static class HostMmAuditor
{
    /// <summary>Returns one line per violation found; empty when the host is consistent.</summary>
    public static IReadOnlyList<string> Check(Host host)
    {
        ArgumentNullException.ThrowIfNull(host);
        var memory = host.Memory;
        var violations = new List<string>();
        var mappings = new Dictionary<ulong, int>();
        var swapReferences = new Dictionary<ulong, int>();
        long tablePages = 0;
        foreach (var mm in host.Mms)
        {
            var vmas = mm.Vmas;
            var collector = new MappingCollector(mm, vmas, host.ZeroPfn, mappings, swapReferences, violations);
            mm.PageTable.Walk(Hva.Zero, Mm.UserSpaceEnd, allocate: false, ref collector);
            var hugeResident = CollectHugeLeaves(host, mm, vmas, mappings, violations);
            tablePages += mm.PageTable.TablePages;
            if (collector.Resident + hugeResident != mm.Stats.RssPages)
            {
                violations.Add($"{mm}: RSS counter says {mm.Stats.RssPages} pages but {collector.Resident} PTEs and {hugeResident / PageTables.HostPageTable.HugePageFrames} huge leaves map {collector.Resident + hugeResident} frames");
            }

            if (collector.SwapEntries != mm.Stats.SwapEntries)
            {
                violations.Add($"{mm}: swap-entry counter says {mm.Stats.SwapEntries} but {collector.SwapEntries} PTEs are swap entries");
            }
        }

        long pageTableFrames = 0;
        for (ulong index = 0; index < (ulong)memory.TotalFrames; index++)
        {
            var pfn = new Pfn(index);
            ref var frame = ref memory.Frame(pfn);
            mappings.TryGetValue(index, out var mapped);
            if (frame.Has(FrameFlags.PageTable))
            {
                pageTableFrames++;
                if (mapped != 0)
                {
                    violations.Add($"{pfn} is a page-table frame but {mapped} PTEs map it as data");
                }

                continue;
            }

            if (pfn == host.ZeroPfn)
            {
                if (frame.IsFree)
                {
                    violations.Add($"the zero page {pfn} is free");
                }

                continue;
            }

            if (frame.IsFree && mapped != 0)
            {
                violations.Add($"{pfn} is free but {mapped} PTEs map it");
            }

            if (frame.MapCount != mapped)
            {
                violations.Add($"{pfn} has mapcount {frame.MapCount} but {mapped} PTEs map it");
            }

            var cacheReference = frame.Has(FrameFlags.SwapCache) ? 1 : 0;
            if (!frame.IsFree && !frame.Has(FrameFlags.Reserved) && frame.RefCount != frame.MapCount + cacheReference)
            {
                violations.Add($"{pfn} has refcount {frame.RefCount} but mapcount {frame.MapCount}{(cacheReference != 0 ? " + 1 swap-cache reference" : string.Empty)}: a reference leaked or a mapping lost its reference");
            }
        }

        host.Reclaim.Audit(swapReferences, violations);
        host.Ksm.Audit(violations, settled: false);

        if (pageTableFrames != tablePages)
        {
            violations.Add($"{pageTableFrames} frames are page tables but live processes account for {tablePages}");
        }

        return violations;
    }

    /// <summary>
    /// <see cref="Check"/> plus the KSM invariants that hold once the scanner has settled (call after a full scan with
    /// nothing else running): every mapping of a KSM page is found through its stable node, every mapped KSM page has a
    /// live node, and every rmap item in a tree names a present page (a stable one its node's page).
    /// </summary>
    public static IReadOnlyList<string> CheckKsmSettled(Host host)
    {
        ArgumentNullException.ThrowIfNull(host);
        var violations = new List<string>(Check(host));
        host.Ksm.Audit(violations, settled: true);
        return violations;
    }

    /// <summary>Counts every huge leaf's 512 frames as mappings (the huge zero page none) and checks each leaf lies in one VMA, 2 MiB-aligned; returns the resident pages they map.</summary>
    private static long CollectHugeLeaves(Host host, Mm mm, IReadOnlyList<Vmas.Vma> vmas, Dictionary<ulong, int> mappings, List<string> violations)
    {
        const int frames = PageTables.HostPageTable.HugePageFrames;
        long resident = 0;
        mm.PageTable.ForEachHuge(Hva.Zero, Mm.UserSpaceEnd, (address, leaf) =>
        {
            if (!vmas.Any(v => v.Start <= address && v.End - address >= PageTables.HostPageTable.HugePageSize))
            {
                violations.Add($"{mm}: huge leaf {leaf} at {address} is not inside one VMA");
            }

            if ((leaf.Pfn.Value & (frames - 1)) != 0)
            {
                violations.Add($"{mm}: huge leaf {leaf} at {address} maps a frame that is not 2 MiB-aligned");
            }

            if (host.IsHugeZeroPage(leaf.Pfn))
            {
                if (leaf.IsWritable)
                {
                    violations.Add($"{mm}: the huge zero page is mapped writable at {address}");
                }

                return;
            }

            for (var i = 0UL; i < frames; i++)
            {
                var index = leaf.Pfn.Value + i;
                mappings[index] = mappings.GetValueOrDefault(index) + 1;
            }

            resident += frames;
        });
        return resident;
    }

    private struct MappingCollector : IPteVisitor
    {
        private readonly Mm _mm;
        private readonly IReadOnlyList<Vmas.Vma> _vmas;
        private readonly Pfn _zeroPfn;
        private readonly Dictionary<ulong, int> _mappings;
        private readonly Dictionary<ulong, int> _swapReferences;
        private readonly List<string> _violations;
        private Vmas.Vma? _lastVma;

        public MappingCollector(Mm mm, IReadOnlyList<Vmas.Vma> vmas, Pfn zeroPfn, Dictionary<ulong, int> mappings, Dictionary<ulong, int> swapReferences, List<string> violations)
        {
            _mm = mm;
            _vmas = vmas;
            _zeroPfn = zeroPfn;
            _mappings = mappings;
            _swapReferences = swapReferences;
            _violations = violations;
            _lastVma = null;
            Resident = 0;
            SwapEntries = 0;
        }

        public long Resident { get; private set; }

        public long SwapEntries { get; private set; }

        // Consecutive PTEs almost always lie in the VMA of the previous one: check that first (no search, no allocation).
        private bool InSomeVma(Hva address)
        {
            if (_lastVma?.Contains(address) == true)
            {
                return true;
            }

            foreach (var vma in _vmas)
            {
                if (vma.Contains(address))
                {
                    _lastVma = vma;
                    return true;
                }
            }

            return false;
        }

        public bool VisitTable(Hva firstAddress, Span<ulong> entries, Pfn tablePfn)
        {
            for (var i = 0; i < entries.Length; i++)
            {
                var pte = new HostPte(entries[i]);
                var kind = HostPteEncoding.Classify(pte);
                if (kind == HostPteKind.None)
                {
                    continue;
                }

                var address = firstAddress + ((ulong)i << Paging.PageShift);
                if (!InSomeVma(address))
                {
                    _violations.Add($"{_mm}: {pte} at {address} lies outside every VMA");
                }

                Pfn pfn;
                if (kind == HostPteKind.Present)
                {
                    pfn = pte.Pfn;
                }
                else if (kind == HostPteKind.ProtNone)
                {
                    pfn = HostPteEncoding.ProtNonePfn(pte);
                }
                else
                {
                    if (kind == HostPteKind.Swap)
                    {
                        var slot = HostPteEncoding.SwapSlotOf(pte);
                        _swapReferences[slot] = _swapReferences.GetValueOrDefault(slot) + 1;
                        SwapEntries++;
                    }
                    else if (kind == HostPteKind.Migration)
                    {
                        // Counted in RSS; it names the frame being migrated, which its migration holds locked until every
                        // entry is replaced. An entry whose frame is unlocked (or free) was left behind.
                        Resident++;
                        var migrating = HostPteEncoding.MigrationPfn(pte);
                        ref var frame = ref _mm.Host.Memory.Frame(migrating);
                        if (frame.IsFree || !frame.Has(FrameFlags.Locked))
                        {
                            _violations.Add($"{_mm}: {HostPteEncoding.Describe(pte)} at {address} names {migrating}, which no migration holds (not locked, or free): a migration entry was left behind");
                        }
                    }

                    continue;
                }

                if (pfn == _zeroPfn)
                {
                    if (pte.IsWritable)
                    {
                        _violations.Add($"{_mm}: the zero page is mapped writable at {address}");
                    }

                    continue;
                }

                Resident++;
                _mappings[pfn.Value] = _mappings.GetValueOrDefault(pfn.Value) + 1;
            }

            return true;
        }
    }
}
