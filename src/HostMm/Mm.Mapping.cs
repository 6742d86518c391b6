using Hypervisor.HostMm.Vmas;

namespace Hypervisor.HostMm;

/// <summary>mmap, munmap and mremap.</summary>
public sealed partial class Mm
{
    /// <summary>
    /// Maps <paramref name="length"/> bytes (rounded up to pages) of anonymous private memory
    /// (<c>mmap(MAP_ANONYMOUS|MAP_PRIVATE)</c>). Pages are filled on first touch: a read maps the shared
    /// zero page, a write a new zeroed frame.
    /// </summary>
    /// <param name="length">Bytes to map; positive.</param>
    /// <param name="protection">Access allowed; see <see cref="ProtectionRules"/>.</param>
    /// <param name="flags"><see cref="MmapFlags.Fixed"/> to map at <paramref name="address"/> (replacing what is there),
    /// <see cref="MmapFlags.Populate"/> to fault every page in now.</param>
    /// <param name="address">The address for <see cref="MmapFlags.Fixed"/>; ignored otherwise.</param>
    /// <returns>The start of the new mapping.</returns>
    /// <exception cref="InvalidRangeException">Empty length, unaligned fixed address, or a range leaving the user address space.</exception>
    /// <exception cref="AddressSpaceExhaustedException">No free range is large enough.</exception>
    public Hva Mmap(ulong length, Protection protection, MmapFlags flags = MmapFlags.None, Hva address = default)
    {
        ProtectionRules.Validate(protection, nameof(protection));
        if ((flags & ~(MmapFlags.Fixed | MmapFlags.Populate)) != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(flags), flags, "undefined MmapFlags bits");
        }

        var fixedMapping = (flags & MmapFlags.Fixed) != 0;
        var end = CheckRange(fixedMapping ? address : MmapBase, length, "mmap");
        var bytes = end - (fixedMapping ? address : MmapBase);
        Hva start;
        EnterWrite("mmap");
        try
        {
            Interlocked.Increment(ref _mmapCalls);
            if (fixedMapping)
            {
                start = address;
                UnmapLocked(start, end);
            }
            else
            {
                start = _vmas.FindGap(bytes, MmapBase, UserSpaceEnd)
                    ?? throw new AddressSpaceExhaustedException(HostMmRule.NoFreeAddressRange, Id, bytes, "mmap");
            }

            var added = _vmas.Add(start, start + bytes, protection, _memoryMerge ? VmaFlags.Mergeable : VmaFlags.None);
            JoinFamily(added.AnonId);
        }
        finally
        {
            _mmapLock.ExitWriteLock();
        }

        if ((flags & MmapFlags.Populate) != 0)
        {
            Populate(start, start + bytes, (protection & Protection.Write) != 0 ? FaultAccess.Write : FaultAccess.Read);
        }

        return start;
    }

    /// <summary>
    /// Unmaps every page in <c>[start, start + length)</c> (<c>munmap</c>). Order (§3): notifier start (Unmap,
    /// whole span) → PTEs cleared, frames gathered → end → empty page tables freed → CPU + secondary TLB
    /// flush → gathered frames freed. Unmapped holes in the range are fine, as in Linux.
    /// </summary>
    /// <exception cref="InvalidRangeException">Unaligned start, empty length, or outside the user address space.</exception>
    public void Munmap(Hva start, ulong length)
    {
        var end = CheckRange(start, length, "munmap");
        EnterWrite("munmap");
        try
        {
            Interlocked.Increment(ref _munmapCalls);
            UnmapLocked(start, end);
        }
        finally
        {
            _mmapLock.ExitWriteLock();
        }
    }

    /// <summary>
    /// Resizes or moves the mapping at <c>[oldAddress, oldAddress + oldLength)</c>, which must lie inside one
    /// VMA (<c>mremap</c>). Shrinking unmaps the tail; growing extends in place when the addresses after it
    /// are free, else moves when <see cref="MremapFlags.MayMove"/> allows. A move (§3): start (Unmap, old range)
    /// → under both page-table locks the PTEs move and the old range's TLB is flushed before the locks drop →
    /// end. The new range gets no event: secondary MMUs refault there.
    /// </summary>
    /// <returns>The mapping's (possibly new) start.</returns>
    /// <exception cref="UnmappedRangeException">The old range is not inside one mapping.</exception>
    /// <exception cref="AddressSpaceExhaustedException">The mapping cannot grow in place and may not (or cannot) move.</exception>
    public Hva Mremap(Hva oldAddress, ulong oldLength, ulong newLength, MremapFlags flags = MremapFlags.None, Hva newAddress = default)
    {
        if ((flags & ~(MremapFlags.MayMove | MremapFlags.Fixed)) != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(flags), flags, "undefined MremapFlags bits");
        }

        var fixedTarget = (flags & MremapFlags.Fixed) != 0;
        if (fixedTarget && (flags & MremapFlags.MayMove) == 0)
        {
            throw new ArgumentException("MremapFlags.Fixed requires MremapFlags.MayMove, as MREMAP_FIXED requires MREMAP_MAYMOVE", nameof(flags));
        }

        var oldEnd = CheckRange(oldAddress, oldLength, "mremap (old range)");
        var newBytes = CheckRange(fixedTarget ? newAddress : MmapBase, newLength, "mremap (new length)") - (fixedTarget ? newAddress : MmapBase);
        var oldBytes = oldEnd - oldAddress;
        if (fixedTarget && newAddress < oldEnd && oldAddress < newAddress + newBytes)
        {
            throw new InvalidRangeException(
                NotifierRule.OverlappingRanges,
                $"mremap from [{oldAddress}, {oldEnd}) to [{newAddress}, {newAddress + newBytes}): the new range must not overlap the old one",
                nameof(newAddress));
        }

        EnterWrite("mremap");
        try
        {
            Interlocked.Increment(ref _mremapCalls);
            var vma = _vmas.Find(oldAddress);
            if (vma is null || vma.End < oldEnd)
            {
                throw new UnmappedRangeException(HostMmRule.RangeNotInOneMapping, Id, oldAddress, oldEnd, "mremap (the old range must lie inside one mapping)");
            }

            if (!fixedTarget)
            {
                if (newBytes == oldBytes)
                {
                    return oldAddress;
                }

                if (newBytes < oldBytes)
                {
                    UnmapLocked(oldAddress + newBytes, oldEnd);
                    return oldAddress;
                }

                var grownEnd = oldAddress + newBytes;
                if (oldEnd == vma.End && grownEnd <= UserSpaceEnd && _vmas.Intersecting(oldEnd, grownEnd).Count == 0)
                {
                    _vmas.Resize(vma, grownEnd);
                    return oldAddress;
                }

                if ((flags & MremapFlags.MayMove) == 0)
                {
                    throw new AddressSpaceExhaustedException(HostMmRule.CannotGrowInPlace, Id, newBytes, $"mremap of [{oldAddress}, {oldEnd}) in place (the addresses after it are taken; pass MayMove)");
                }

                newAddress = _vmas.FindGap(newBytes, MmapBase, UserSpaceEnd)
                    ?? throw new AddressSpaceExhaustedException(HostMmRule.NoFreeAddressRange, Id, newBytes, "mremap");
            }
            else
            {
                UnmapLocked(newAddress, newAddress + newBytes);
            }

            MoveLocked(oldAddress, oldEnd, newAddress, newBytes);
            return newAddress;
        }
        finally
        {
            _mmapLock.ExitWriteLock();
        }
    }

    /// <summary>munmap's body; the caller holds the mmap lock for write.</summary>
    private void UnmapLocked(Hva start, Hva end)
    {
        var inside = _vmas.SplitToRange(start, end);
        if (inside.Count == 0)
        {
            return;
        }

        var spanStart = inside[0].Start;
        var spanEnd = inside[^1].End;
        foreach (var vma in inside)
        {
            _vmas.Remove(vma);
        }

        var gather = new TlbGather();
        ZapRange(spanStart, spanEnd, NotifierEvent.Unmap, gather);
        _pageTable.FreeEmptyTables(spanStart, spanEnd, gather.Pages); // table frames too are freed only after the flush
        FlushTlb(spanStart, spanEnd);
        gather.Finish(this);
    }

    /// <summary>
    /// Notifier start → clear every PTE in the range, gathering frames and swap slots → end. The caller flushes the
    /// TLB and then finishes the gather.
    /// </summary>
    /// <remarks>
    /// A huge leaf only partly inside is split first, in its own start/end over its 2 MiB, and only leaves wholly inside
    /// are zapped whole. Under the mmap lock for read (MADV_DONTNEED) a huge demand fault may fill an edge's empty PD entry
    /// after that split: the leaf is then left alone by this pass (its 2 MiB is wider than this start/end, so a secondary
    /// MMU may have mapped it whole meanwhile, and data outside the range is not the caller's to drop), and the split and
    /// the zap run again, as Linux's zap_pmd_range splits a huge PMD it finds straddling the range. A split edge stays a
    /// PTE table, so the second pass finds none.
    /// </remarks>
    private void ZapRange(Hva start, Hva end, NotifierEvent notifierEvent, TlbGather gather)
    {
        do
        {
            SplitHugeEdges(start, end);
            using var invalidation = Invalidation.Begin(this, start, end, notifierEvent, gather);
            var hugeResident = ZapHugeLeaves(start, end, gather.Pages);
            var visitor = new ZapVisitor(this, gather.Pages, gather.SwapSlots);
            _pageTable.Walk(start, end, allocate: false, ref visitor);
            AddRss(-(visitor.Resident + hugeResident));
            AddSwapEntries(-visitor.SwapEntries);
            CountZapped(visitor.Zapped);
            if (visitor.KsmZeroPages != 0)
            {
                AddKsmZeroPages(-visitor.KsmZeroPages);
            }
        }
        while (HugeLeafStraddles(start, end));
    }

    /// <summary>mremap's move; the caller holds the mmap lock for write and has cleared the destination.</summary>
    private void MoveLocked(Hva oldStart, Hva oldEnd, Hva newStart, ulong newBytes)
    {
        SplitHugePmds(oldStart, oldEnd); // moved as 4 KiB entries (Linux moves whole aligned leaves; splitting is simpler)
        var moving = _vmas.SplitToRange(oldStart, oldEnd).Single();
        var pages = (oldEnd - oldStart) >> Paging.PageShift;
        if ((moving.Flags & VmaFlags.Mergeable) != 0)
        {
            // As Linux's move_vma: KSM pages are broken before a move (their rmap items name the old addresses).
            UnmergeRangeLocked(oldStart, oldEnd);
        }

        using (Invalidation.Begin(this, oldStart, oldEnd, NotifierEvent.Unmap))
        {
            var visitor = new MoveVisitor(this);
            _pageTable.MoveEntries(oldStart, newStart, pages, ref visitor);
            Interlocked.Add(ref _pagesMoved, visitor.MovedCount);
        }

        _vmas.Remove(moving);
        var moved = moving.CopyTo(newStart);
        _vmas.Insert(moved);
        if (newBytes > moved.Length)
        {
            _vmas.Resize(moved, newStart + newBytes);
        }

        var tables = new List<Pfn>();
        _pageTable.FreeEmptyTables(oldStart, oldEnd, tables);
        if (tables.Count != 0)
        {
            FlushTlb(oldStart, oldEnd); // no walker may still hold a freed table: flush before the frames go
            FreeGathered(tables);
        }

        _vmas.MergeWithNeighbours(moved);
    }

    /// <summary>Faults every page of <c>[start, end)</c> in (MAP_POPULATE).</summary>
    private void Populate(Hva start, Hva end, FaultAccess access)
    {
        for (var page = start; page < end; page += Paging.PageSize)
        {
            var result = HandleFault(page, access);
            if (result is FaultResult.SegmentationFault or FaultResult.ProtectionViolation)
            {
                return; // unmapped or changed by another thread meanwhile: populate is best effort, as in Linux
            }
        }
    }
}
