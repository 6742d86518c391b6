using System.Diagnostics;
using Hypervisor.HostMm.Frames;
using Hypervisor.HostMm.Huge;
using Hypervisor.HostMm.PageTables;
using Hypervisor.HostMm.Vmas;

namespace Hypervisor.HostMm;

/// <summary>khugepaged's work in one process: the scan cursor, the range scan and <c>collapse_huge_page</c>.</summary>
public sealed partial class Mm
{
    // Where khugepaged's next scan of this process starts (Linux's khugepaged_scan.address); changed under its scan lock.
    private ulong _khugepagedCursor;

    /// <summary>
    /// Scans this process's huge-page-eligible VMAs 2 MiB at a time from the cursor, trying to collapse each range, until
    /// <paramref name="budgetPages"/> runs out (512 a range). True when the scan reached the end of the address space (the
    /// cursor starts again at 0); false when the budget ran out first.
    /// </summary>
    internal bool KhugepagedScan(ref long budgetPages, int maxPtesNone, Khugepaged daemon, ref int collapsed)
    {
        ThrowIfExited("khugepaged");
        var ranges = new List<Hva>();
        EnterRead("khugepaged");
        try
        {
            foreach (var vma in _vmas.Intersecting(new Hva(_khugepagedCursor), UserSpaceEnd))
            {
                var first = new Hva(Math.Max((vma.Start.Value + HugeSize - 1) & ~(HugeSize - 1), (_khugepagedCursor + HugeSize - 1) & ~(HugeSize - 1)));
                for (var range = first; range + HugeSize <= vma.End; range += HugeSize)
                {
                    if (HugeAllowed(vma, range))
                    {
                        ranges.Add(range);
                    }
                }
            }
        }
        finally
        {
            _mmapLock.ExitReadLock();
        }

        foreach (var range in ranges)
        {
            if (budgetPages <= 0)
            {
                _khugepagedCursor = range.Value;
                return false;
            }

            budgetPages -= HugeFrames;
            var result = TryCollapse(range, maxPtesNone);
            daemon.Count(result);
            if (result == CollapseResult.Collapsed)
            {
                collapsed++;
            }
        }

        _khugepagedCursor = 0;
        return true;
    }

    /// <summary>
    /// Collapses the 2 MiB at <paramref name="hugeAddress"/> into one huge page if it qualifies (Linux's
    /// <c>hpage_collapse_scan_pmd</c> then <c>collapse_huge_page</c>): a scan under the mmap lock for read, a huge block
    /// allocated with no lock, then under the mmap lock for write the scan again, every small page locked, start (Clear)
    /// → PD entry cleared and flushed → end → data copied → huge leaf installed → small pages and the table freed.
    /// </summary>
    internal CollapseResult TryCollapse(Hva hugeAddress, int maxPtesNone)
    {
        EnterRead("khugepaged scan");
        CollapseResult scan;
        try
        {
            scan = ScanForCollapse(hugeAddress, maxPtesNone, testYoung: true, out _);
        }
        finally
        {
            _mmapLock.ExitReadLock();
        }

        if (scan != CollapseResult.Collapsed)
        {
            return scan;
        }

        var trace = Host.Trace;
        var started = trace is null ? 0 : Stopwatch.GetTimestamp();
        var result = CollapseScanned(hugeAddress, maxPtesNone);
        trace?.HugeCollapse(this, hugeAddress, result, started);
        return result;
    }

    /// <summary>The rest of <see cref="TryCollapse"/> once its first scan found the range collapsible: allocation, the scan again, the copy and the huge leaf.</summary>
    private CollapseResult CollapseScanned(Hva hugeAddress, int maxPtesNone)
    {
        var vmaPolicy = default(Migration.NumaPolicy);
        var firstIndex = 0UL;
        EnterRead("khugepaged allocation");
        try
        {
            var vma = _vmas.Find(hugeAddress);
            if (vma is null)
            {
                return CollapseResult.NotEligible;
            }

            vmaPolicy = vma.Policy;
            firstIndex = vma.PageIndexOf(hugeAddress);
        }
        finally
        {
            _mmapLock.ExitReadLock();
        }

        if (!Host.Reclaim.TryAllocateHugeAnon(this, vmaPolicy, firstIndex, out var first))
        {
            return CollapseResult.AllocationFailed;
        }

        var memory = Host.Memory;
        var installed = false;
        EnterWrite("khugepaged collapse");
        try
        {
            // Everything may have changed while no lock was held: scan again (no young test needed: it was referenced).
            var again = ScanForCollapse(hugeAddress, maxPtesNone, testYoung: false, out var pages);
            if (again != CollapseResult.Collapsed)
            {
                return again;
            }

            var vma = _vmas.Find(hugeAddress)!;
            var locked = 0;
            for (; locked < pages.Count; locked++)
            {
                ref var frame = ref memory.Frame(pages[locked].Pfn);
                if (frame.TestAndSetFlag(FrameFlags.Locked))
                {
                    break;
                }

                if (frame.RefCount != 1 || frame.MapCount != 1 || frame.Has(FrameFlags.Isolated))
                {
                    frame.ClearFlags(FrameFlags.Locked);
                    break;
                }
            }

            if (locked < pages.Count)
            {
                for (var i = 0; i < locked; i++)
                {
                    memory.ClearFlags(pages[i].Pfn, FrameFlags.Locked);
                }

                return CollapseResult.Busy;
            }

            var end = hugeAddress + HugeSize;
            Pfn table;
            using (Invalidation.Begin(this, hugeAddress, end, NotifierEvent.Clear))
            {
                if (!_pageTable.TryDetachTable(hugeAddress, pdEntry => { TracePte(hugeAddress, pdEntry, HostPte.None); FlushTlb(hugeAddress, end); }, out table))
                {
                    throw new InvalidOperationException($"{this}: the PTE table at {hugeAddress} went away under the mmap lock held for write");
                }
            }

            // The small pages are unreachable now (no PTE table, no mmap lock for anyone else): copy them.
            var entries = _pageTable.DetachedEntries(table);
            var dirty = false;
            foreach (var (index, pfn) in pages)
            {
                memory.FrameBytes(pfn).CopyTo(memory.FrameBytes(first + (ulong)index));
                dirty |= new HostPte(entries[index]).IsDirty || memory.Frame(pfn).Has(FrameFlags.Dirty);
            }

            Host.Reclaim.PrepareHugeFrames(first, checked((int)vma.AnonId), firstIndex);

            var writable = (vma.Protection & Protection.Write) != 0;
            var leaf = HostPte.Present(first, PteFlags(vma.Protection, writable) | HostPte.AccessedBit | (dirty || writable ? HostPte.DirtyBit : 0) | HostPte.LargePageBit);
            if (!_pageTable.TryInstallHuge(hugeAddress, leaf))
            {
                throw new InvalidOperationException($"{this}: the PD entry at {hugeAddress} was filled under the mmap lock held for write");
            }

            installed = true;
            TracePte(hugeAddress, HostPte.None, leaf);
            foreach (var (_, pfn) in pages)
            {
                memory.DecrementMapCount(pfn);
                memory.ClearFlags(pfn, FrameFlags.Locked);
                memory.Put(pfn);
            }

            entries.Clear();
            _pageTable.ReleaseDetachedTable(table);
            AddRss(HugeFrames - pages.Count);
            return CollapseResult.Collapsed;
        }
        finally
        {
            _mmapLock.ExitWriteLock();
            if (!installed)
            {
                for (var i = 0UL; i < HugeFrames; i++)
                {
                    memory.Put(first + i);
                }
            }
        }
    }

    /// <summary>
    /// <c>hpage_collapse_scan_pmd</c> (the caller holds the mmap lock): whether the range may collapse, with the resident
    /// small pages (their index in the range and frame) in <paramref name="pages"/>. With <paramref name="testYoung"/> a
    /// page counts as referenced when its PTE's accessed bit, its frame's referenced flag or the secondary MMUs'
    /// <c>test_young</c> says so, asked under the page-table lock as Linux does.
    /// </summary>
    private CollapseResult ScanForCollapse(Hva hugeAddress, int maxPtesNone, bool testYoung, out List<(int Index, Pfn Pfn)> pages)
    {
        pages = [];
        var vma = _vmas.Find(hugeAddress);
        if (vma is null || !HugeAllowed(vma, hugeAddress))
        {
            return CollapseResult.NotEligible;
        }

        var pmd = _pageTable.ReadPmd(hugeAddress);
        if (HostPageTable.IsHugeLeaf(pmd.Value))
        {
            return CollapseResult.AlreadyHuge;
        }

        if (pmd.IsNone)
        {
            return CollapseResult.Empty;
        }

        var scan = new CollapseScanVisitor(this, testYoung, pages);
        _pageTable.Walk(hugeAddress, hugeAddress + HugeSize, allocate: false, ref scan);
        if (scan.Result != CollapseResult.Collapsed)
        {
            return scan.Result;
        }

        if (scan.None > maxPtesNone)
        {
            return CollapseResult.ExceedNone;
        }

        return testYoung && scan.Referenced == 0 ? CollapseResult.LackReferenced : CollapseResult.Collapsed;
    }

    /// <summary>The scan's PTE pass: counts none and zero-page entries, refuses anything but exclusive anonymous pages, and counts the referenced ones.</summary>
    private struct CollapseScanVisitor(Mm mm, bool testYoung, List<(int Index, Pfn Pfn)> pages) : IPteVisitor
    {
        public CollapseResult Result { get; private set; } = CollapseResult.Collapsed;

        public int None { get; private set; }

        public int Referenced { get; private set; }

        public bool VisitTable(Hva firstAddress, Span<ulong> entries, Pfn tablePfn)
        {
            var memory = mm.Host.Memory;
            var zero = mm.Host.ZeroPfn;
            for (var i = 0; i < entries.Length; i++)
            {
                var pte = new HostPte(entries[i]);
                if (pte.IsNone || (pte.IsPresent && pte.Pfn == zero))
                {
                    None++;
                    continue;
                }

                if (!pte.IsPresent)
                {
                    Result = CollapseResult.NonPresent;
                    return false;
                }

                ref var frame = ref memory.Frame(pte.Pfn);
                if (frame.MapCount != 1 || frame.Has(FrameFlags.Ksm) || frame.Has(FrameFlags.SwapCache))
                {
                    Result = CollapseResult.Shared;
                    return false;
                }

                var address = firstAddress + ((ulong)i << Paging.PageShift);
                if (testYoung && (pte.IsAccessed || frame.Has(FrameFlags.Accessed) || mm.Notifiers.TestYoung(address)))
                {
                    Referenced++;
                }

                pages.Add(((int)((address.Value & (HugeSize - 1)) >> Paging.PageShift), pte.Pfn));
            }

            return true;
        }
    }
}
