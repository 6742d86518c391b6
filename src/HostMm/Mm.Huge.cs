using System.Diagnostics;
using Hypervisor.HostMm.Frames;
using Hypervisor.HostMm.PageTables;
using Hypervisor.HostMm.Vmas;

namespace Hypervisor.HostMm;

/// <summary>
/// Transparent huge pages in a process: the huge fault (a 2 MiB block on write, the huge zero page on read), faults and
/// get-user-pages on a huge leaf, the split to 512 PTEs (<c>__split_huge_pmd</c>), the zap of a whole huge leaf
/// (<c>zap_huge_pmd</c>) and fork's copy (<c>copy_huge_pmd</c>).
/// </summary>
/// <remarks>
/// A huge page is 512 frames of one aligned block, and a huge leaf holds one reference and one mapcount on each of them,
/// as 512 PTEs would (not Linux's folio with one count on its head): so a split changes no count, and every other
/// mechanism sees ordinary frames. Each frame has its own reverse-map index and sits on the LRU. Operations on part of
/// a huge page (munmap, mprotect, mremap, madvise, a copy-on-write of a shared huge page) split it first; walkers that
/// work on PTEs (reclaim's aging and unmap, KSM, NUMA balancing, migration) see a huge leaf as a hole for now.
/// </remarks>
public sealed partial class Mm
{
    private const ulong HugeSize = HostPageTable.HugePageSize;
    private const int HugeFrames = HostPageTable.HugePageFrames;

    private long _thpFaultAlloc;
    private long _thpFaultFallback;
    private long _thpZeroPageFaults;
    private long _thpSplitPmd;

    /// <summary>
    /// False while the host's mode is <see cref="ThpMode.Never"/>: no huge leaf can exist then (huge faults and collapse need
    /// another mode), so the fault, get-user-pages and zap paths skip every huge-leaf look.
    /// </summary>
    private bool HugePagesPossible => Host.Options.TransparentHugePages != ThpMode.Never;

    /// <summary>Huge-page counters of this process, under Linux's names.</summary>
    public ThpStats ThpStats => new()
    {
        ThpFaultAlloc = Volatile.Read(ref _thpFaultAlloc),
        ThpFaultFallback = Volatile.Read(ref _thpFaultFallback),
        ThpZeroPageFaults = Volatile.Read(ref _thpZeroPageFaults),
        ThpSplitPmd = Volatile.Read(ref _thpSplitPmd),
        HugeLeaves = CountHugeLeaves(),
    };

    /// <summary>True when a fault at <paramref name="hugeAddress"/>'s 2 MiB may map a huge page in <paramref name="vma"/> (mode, advice, the VMA covering the aligned 2 MiB).</summary>
    internal bool HugeAllowed(Vma vma, Hva hugeAddress)
    {
        var allowed = Host.Options.TransparentHugePages switch
        {
            ThpMode.Always => (vma.Flags & VmaFlags.NoHugePage) == 0,
            ThpMode.Madvise => (vma.Flags & VmaFlags.HugePage) != 0,
            _ => false,
        };
        return allowed && hugeAddress >= vma.Start && vma.End - hugeAddress >= HugeSize;
    }

    /// <summary>
    /// The huge-page part of a fault at <paramref name="page"/>: on a huge leaf, a touch or a write-protect fault; on an
    /// empty PD entry where huge pages are allowed, a huge demand fault. Null to go on with the 4 KiB fault (no huge
    /// page here, or the huge allocation fell back); <paramref name="retry"/> when the entry changed under it.
    /// </summary>
    private FaultResult? HugeFault(Vma vma, Hva page, FaultAccess access, out bool retry)
    {
        retry = false;
        if (!HugePagesPossible)
        {
            return null;
        }

        var hugeAddress = new Hva(page.Value & ~(HugeSize - 1));
        var pmd = _pageTable.ReadPmd(page);
        if (HostPageTable.IsHugeLeaf(pmd.Value))
        {
            var result = access == FaultAccess.Write && !pmd.IsWritable
                ? HugeWriteProtectFault(vma, hugeAddress, pmd)
                : HugeTouch(hugeAddress, pmd, access);
            retry = result is null;
            return result;
        }

        if (!pmd.IsNone || !HugeAllowed(vma, hugeAddress))
        {
            return null;
        }

        var demand = HugeDemandFault(vma, hugeAddress, access, out var fellBack);
        retry = demand is null && !fellBack;
        return demand;
    }

    /// <summary>A fault the huge leaf already allows: sets accessed (and dirty) on the leaf. Null when it changed.</summary>
    private FaultResult? HugeTouch(Hva hugeAddress, HostPte pmd, FaultAccess access)
    {
        var touched = pmd.With(HostPte.AccessedBit | (access == FaultAccess.Write ? HostPte.DirtyBit : 0));
        if (touched != pmd && !_pageTable.TryUpdateHuge(hugeAddress, pmd, touched))
        {
            return null;
        }

        Interlocked.Increment(ref _spuriousFaults);
        return FaultResult.AlreadyMapped;
    }

    /// <summary>
    /// A huge demand fault (<c>do_huge_pmd_anonymous_page</c>): a read maps the huge zero page read-only; a write maps a
    /// new zeroed, charged 2 MiB block writable, each frame given its reverse-map index, a mapcount and a place on the
    /// LRU before the leaf is visible. No notifier: a mapping is only added. Null when a racing fault filled the entry
    /// (retry), or with <paramref name="fellBack"/> when no block could be had (the 4 KiB fault goes on).
    /// </summary>
    private FaultResult? HugeDemandFault(Vma vma, Hva hugeAddress, FaultAccess access, out bool fellBack)
    {
        fellBack = false;
        var memory = Host.Memory;
        if (access != FaultAccess.Write)
        {
            if (!Host.TryGetHugeZeroPage(out var zero))
            {
                fellBack = true;
                return null;
            }

            var zeroLeaf = HostPte.Present(zero, PteFlags(vma.Protection, writable: false) | HostPte.AccessedBit | HostPte.LargePageBit);
            if (!_pageTable.TryInstallHuge(hugeAddress, zeroLeaf))
            {
                return null;
            }

            TracePte(hugeAddress, HostPte.None, zeroLeaf);
            Interlocked.Increment(ref _thpZeroPageFaults);
            return FaultResult.ZeroPage;
        }

        var firstIndex = vma.PageIndexOf(hugeAddress);
        if (!Host.Reclaim.TryAllocateHugeAnon(this, vma.Policy, firstIndex, out var first))
        {
            Interlocked.Increment(ref _thpFaultFallback);
            fellBack = true;
            return null;
        }

        Host.Reclaim.PrepareHugeFrames(first, checked((int)vma.AnonId), firstIndex);

        var leaf = HostPte.Present(first, PteFlags(vma.Protection, writable: true) | HostPte.AccessedBit | HostPte.DirtyBit | HostPte.LargePageBit);
        if (!_pageTable.TryInstallHuge(hugeAddress, leaf))
        {
            for (var i = 0UL; i < HugeFrames; i++)
            {
                memory.DecrementMapCount(first + i);
                memory.Put(first + i);
            }

            return null;
        }

        TracePte(hugeAddress, HostPte.None, leaf);
        AddRss(HugeFrames);
        Interlocked.Increment(ref _thpFaultAlloc);
        return FaultResult.DemandZero;
    }

    /// <summary>
    /// A write to a read-only huge leaf in a writable VMA (<c>do_huge_pmd_wp_page</c>): the huge zero page is replaced by
    /// a new huge page (start (Clear) → leaf cleared → flush → new leaf → end); a huge page this process alone maps is
    /// made writable in place with no notifier; a shared one is split, and the 4 KiB copy-on-write goes on from there.
    /// Null to retry.
    /// </summary>
    private FaultResult? HugeWriteProtectFault(Vma vma, Hva hugeAddress, HostPte pmd)
    {
        var memory = Host.Memory;
        if (Host.IsHugeZeroPage(pmd.Pfn))
        {
            return HugeZeroWriteFault(vma, hugeAddress, pmd);
        }

        var exclusive = true;
        for (var i = 0UL; i < HugeFrames && exclusive; i++)
        {
            ref var frame = ref memory.Frame(pmd.Pfn + i);
            exclusive = frame.MapCount == 1 && frame.RefCount == 1;
        }

        if (exclusive)
        {
            var writable = pmd.With(HostPte.WritableBit | HostPte.AccessedBit | HostPte.DirtyBit);
            if (!_pageTable.TryUpdateHuge(hugeAddress, pmd, writable))
            {
                return null;
            }

            TracePte(hugeAddress, pmd, writable);
            Interlocked.Increment(ref _writeReuseFaults);
            return FaultResult.WriteReuse;
        }

        SplitHugePmd(hugeAddress);
        return null; // the 4 KiB write fault breaks copy-on-write on the one page written
    }

    private FaultResult? HugeZeroWriteFault(Vma vma, Hva hugeAddress, HostPte zeroLeaf)
    {
        var memory = Host.Memory;
        var firstIndex = vma.PageIndexOf(hugeAddress);
        if (!Host.Reclaim.TryAllocateHugeAnon(this, vma.Policy, firstIndex, out var first))
        {
            Interlocked.Increment(ref _thpFaultFallback);
            SplitHugePmd(hugeAddress); // 4 KiB zero pages; the write then copies one of them
            return null;
        }

        Host.Reclaim.PrepareHugeFrames(first, checked((int)vma.AnonId), firstIndex);

        var leaf = HostPte.Present(first, PteFlags(vma.Protection, writable: true) | HostPte.AccessedBit | HostPte.DirtyBit | HostPte.LargePageBit);
        var replaced = false;
        using (Invalidation.Begin(this, hugeAddress, hugeAddress + HugeSize, NotifierEvent.Clear))
        {
            var cleared = _pageTable.ClearHuge(hugeAddress);
            if (cleared.Value == zeroLeaf.Value || (cleared.IsPresent && cleared.Pfn == zeroLeaf.Pfn))
            {
                TracePte(hugeAddress, cleared, HostPte.None);
                FlushTlb(hugeAddress, hugeAddress + HugeSize);
                replaced = _pageTable.TryInstallHuge(hugeAddress, leaf);
                if (replaced)
                {
                    TracePte(hugeAddress, HostPte.None, leaf);
                }
            }
            else if (!cleared.IsNone)
            {
                _pageTable.TryInstallHuge(hugeAddress, cleared); // not the zero page any more: put it back untouched
            }
        }

        if (!replaced)
        {
            for (var i = 0UL; i < HugeFrames; i++)
            {
                memory.DecrementMapCount(first + i);
                memory.Put(first + i);
            }

            return null;
        }

        AddRss(HugeFrames);
        Interlocked.Increment(ref _thpFaultAlloc);
        Interlocked.Increment(ref _copyOnWriteFaults);
        return FaultResult.CopyOnWrite;
    }

    /// <summary>
    /// get-user-pages on a huge leaf (<c>follow_huge_pmd</c>): a speculative reference on the subpage, confirmed by
    /// re-reading the leaf, and the leaf's accessed (and dirty) bit set. False when no huge leaf maps the page or it
    /// does not allow the access (the fault path then decides).
    /// </summary>
    private bool TryGupHuge(Hva page, FaultAccess access, FaultResult resolvedBy, out GupResult result)
    {
        result = default;
        if (!HugePagesPossible)
        {
            return false;
        }

        var pmd = _pageTable.ReadPmd(page);
        if (!HostPageTable.IsHugeLeaf(pmd.Value) || (access == FaultAccess.Write && !pmd.IsWritable))
        {
            return false;
        }

        var memory = Host.Memory;
        var subpage = HostPageTable.SubpageOf(pmd, page);
        if (!memory.TryGet(subpage.Pfn))
        {
            return false;
        }

        var hugeAddress = new Hva(page.Value & ~(HugeSize - 1));
        var touched = pmd.With(HostPte.AccessedBit | (access == FaultAccess.Write ? HostPte.DirtyBit : 0));
        if (_pageTable.ReadPmd(page) != pmd || (touched != pmd && !_pageTable.TryUpdateHuge(hugeAddress, pmd, touched)))
        {
            memory.Put(subpage.Pfn); // the leaf changed between the read and the reference
            return false;
        }

        result = new GupResult(resolvedBy, subpage.Pfn, pmd.IsWritable) { HostHuge = true };
        return true;
    }

    /// <summary>
    /// <c>__split_huge_pmd</c> for the huge leaf at <paramref name="hugeAddress"/> (the caller holds the mmap lock): start
    /// (Clear, the 2 MiB) → under the PMD lock the leaf is cleared and the TLB flushed, then a PTE table of 512 equivalent
    /// entries (the 4 KiB zero page for the huge zero page) is put in its place → end. No frame count changes (a leaf
    /// already held one per frame). False when there was no huge leaf.
    /// </summary>
    internal bool SplitHugePmd(Hva hugeAddress)
    {
        if (!_pageTable.IsHugeMapped(hugeAddress))
        {
            return false;
        }

        var trace = Host.Trace;
        var started = trace is null ? 0 : Stopwatch.GetTimestamp();
        var end = hugeAddress + HugeSize;
        HostPte split;
        using (Invalidation.Begin(this, hugeAddress, end, NotifierEvent.Clear))
        {
            var zero = Host.ZeroPfn;
            split = _pageTable.SplitHuge(
                hugeAddress,
                leaf =>
                {
                    TracePte(hugeAddress, leaf, HostPte.None);
                    FlushTlb(hugeAddress, end);
                },
                (leaf, entries) =>
                {
                    var flags = leaf.Value & ~(HostPte.PfnMask | HostPte.LargePageBit | HostPte.PresentBit);
                    var zeroPage = Host.IsHugeZeroPage(leaf.Pfn);
                    for (var i = 0; i < entries.Length; i++)
                    {
                        entries[i] = zeroPage
                            ? HostPte.Present(zero, flags & ~(HostPte.WritableBit | HostPte.DirtyBit)).Value
                            : HostPte.Present(leaf.Pfn + (ulong)i, flags).Value;
                    }
                });
            if (!split.IsNone)
            {
                TracePte(hugeAddress, HostPte.None, _pageTable.Read(hugeAddress)); // the PTE table's entries (one trace for the 512)
            }
        }

        if (split.IsNone)
        {
            return false;
        }

        Interlocked.Increment(ref _thpSplitPmd);
        trace?.HugeSplit(this, hugeAddress, started);
        return true;
    }

    /// <summary>Splits every huge leaf that <c>[start, end)</c> touches (the caller holds the mmap lock), so a PTE-level operation may follow.</summary>
    internal void SplitHugePmds(Hva start, Hva end)
    {
        if (!HugePagesPossible)
        {
            return;
        }

        var leaves = new List<Hva>();
        _pageTable.ForEachHuge(start, end, (address, _) => leaves.Add(address));
        foreach (var address in leaves)
        {
            SplitHugePmd(address);
        }
    }

    /// <summary>Splits the huge leaves that straddle <paramref name="start"/> or <paramref name="end"/> (a zap of whole leaves needs no split).</summary>
    internal void SplitHugeEdges(Hva start, Hva end)
    {
        if (!HugePagesPossible)
        {
            return;
        }

        foreach (var edge in new[] { start, end })
        {
            if ((edge.Value & (HugeSize - 1)) != 0 && edge < UserSpaceEnd)
            {
                SplitHugePmd(new Hva(edge.Value & ~(HugeSize - 1)));
            }
        }
    }

    /// <summary>Whether a huge leaf maps part of <c>[start, end)</c> and part of what lies outside it.</summary>
    private bool HugeLeafStraddles(Hva start, Hva end)
    {
        if (!HugePagesPossible)
        {
            return false;
        }

        var straddles = false;
        _pageTable.ForEachHuge(start, end, (address, _) => straddles |= address < start || address + HugeSize > end);
        return straddles;
    }

    /// <summary>
    /// <c>zap_huge_pmd</c> for every huge leaf inside <c>[start, end)</c> (2 MiB-aligned leaves wholly inside; the caller
    /// split the edges and has issued notifier start): clears each leaf, drops its 512 mapcounts (moving the dirty bit to
    /// frames that stay mapped elsewhere) and gathers the frames for the caller to release after the flush. Returns the
    /// resident pages unmapped.
    /// </summary>
    private long ZapHugeLeaves(Hva start, Hva end, List<Pfn> gathered)
    {
        if (!HugePagesPossible)
        {
            return 0;
        }

        var leaves = new List<Hva>();
        _pageTable.ForEachHuge(start, end, (address, _) =>
        {
            if (address >= start && address + HugeSize <= end)
            {
                leaves.Add(address); // a leaf straddling an edge is the caller's to split (see ZapRange)
            }
        });
        long resident = 0;
        var memory = Host.Memory;
        foreach (var address in leaves)
        {
            var leaf = _pageTable.ClearHuge(address);
            if (leaf.IsNone)
            {
                continue;
            }

            TracePte(address, leaf, HostPte.None);
            CountZapped(HugeFrames);
            if (Host.IsHugeZeroPage(leaf.Pfn))
            {
                continue;
            }

            for (var i = 0UL; i < HugeFrames; i++)
            {
                var pfn = leaf.Pfn + i;
                var remaining = memory.DecrementMapCount(pfn);
                if (leaf.IsDirty && (remaining != 0 || memory.Frame(pfn).Has(FrameFlags.SwapCache)))
                {
                    memory.SetFlags(pfn, FrameFlags.Dirty);
                }

                gathered.Add(pfn);
            }

            resident += HugeFrames;
        }

        return resident;
    }

    /// <summary>
    /// <c>copy_huge_pmd</c> for fork: each huge leaf of <c>[start, end)</c> is write-protected in the parent (no flush: the
    /// caller flushes after the copy) and installed read-only in the child, each frame gaining a reference and a
    /// mapcount (the huge zero page none). Returns the child's resident pages gained.
    /// </summary>
    private long CopyHugeLeaves(Mm child, Hva start, Hva end)
    {
        if (!HugePagesPossible)
        {
            return 0;
        }

        var leaves = new List<(Hva, HostPte)>();
        _pageTable.ForEachHuge(start, end, (address, leaf) => leaves.Add((address, leaf)));
        long resident = 0;
        var memory = Host.Memory;
        foreach (var (address, leaf) in leaves)
        {
            var readOnly = leaf.Without(HostPte.WritableBit);
            if (readOnly != leaf)
            {
                if (!_pageTable.TryUpdateHuge(address, leaf, readOnly))
                {
                    throw new InvalidOperationException($"{this}: huge leaf at {address} changed during fork, which holds the mmap lock for write");
                }

                TracePte(address, leaf, readOnly);
            }

            if (!Host.IsHugeZeroPage(leaf.Pfn))
            {
                for (var i = 0UL; i < HugeFrames; i++)
                {
                    memory.Get(leaf.Pfn + i);
                    memory.IncrementMapCount(leaf.Pfn + i);
                }

                resident += HugeFrames;
            }

            child._pageTable.TryInstallHuge(address, readOnly);
            child.TracePte(address, HostPte.None, readOnly);
        }

        return resident;
    }

    /// <summary>
    /// MADV_HUGEPAGE / MADV_NOHUGEPAGE: sets the VMA flag over the range (splitting VMAs at its ends; the two flags
    /// exclude each other). Existing huge leaves stay; the flags decide later faults (and collapse).
    /// </summary>
    private void MadviseHuge(Hva start, Hva end, Advice advice)
    {
        EnterWrite("madvise");
        try
        {
            Interlocked.Increment(ref _madviseCalls);
            if (!_vmas.IsFullyMapped(start, end))
            {
                throw new UnmappedRangeException(HostMmRule.RangeNotFullyMapped, Id, start, end, $"madvise {advice}");
            }

            var (set, clear) = advice == Advice.HugePage ? (VmaFlags.HugePage, VmaFlags.NoHugePage) : (VmaFlags.NoHugePage, VmaFlags.HugePage);
            foreach (var vma in _vmas.SplitToRange(start, end))
            {
                _vmas.SetFlags(vma, (vma.Flags & ~clear) | set);
            }
        }
        finally
        {
            _mmapLock.ExitWriteLock();
        }
    }

    private long CountHugeLeaves()
    {
        if (_exited || !HugePagesPossible)
        {
            return 0;
        }

        long count = 0;
        _pageTable.ForEachHuge(Hva.Zero, UserSpaceEnd, (_, _) => count++);
        return count;
    }
}
