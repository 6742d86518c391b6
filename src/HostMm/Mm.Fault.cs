using Hypervisor.HostMm.Frames;
using Hypervisor.HostMm.PageTables;
using Hypervisor.HostMm.Reclaim;
using Hypervisor.HostMm.Vmas;

namespace Hypervisor.HostMm;

/// <summary>Page faults, get-user-pages and the host's own reads and writes of process memory.</summary>
public sealed partial class Mm
{
    /// <summary>
    /// Handles a host page fault at <paramref name="address"/> (under the mmap lock for read): demand-zero
    /// (a write maps a new zeroed frame, a read or fetch maps the zero page read-only), copy-on-write break or
    /// in-place write reuse, swap-in (from the swap cache, or from the device with readahead), or a spurious fault
    /// that only sets accessed/dirty. An unmapped address, a forbidden access, an allocation that reclaim could not
    /// satisfy and a failed swap read are results, not exceptions.
    /// </summary>
    public FaultResult HandleFault(Hva address, FaultAccess access)
    {
        EnterRead("a page fault");
        try
        {
            return FaultLocked(address.PageAligned, access, out _);
        }
        finally
        {
            _mmapLock.ExitReadLock();
        }
    }

    /// <summary>
    /// get-user-pages for a secondary MMU (Linux's <c>hva_to_pfn</c>): resolves the frame that backs
    /// <paramref name="address"/>, faulting it in (and breaking copy-on-write when <paramref name="write"/>),
    /// marks the PTE accessed (and dirty for a write), and takes one short-term reference that the caller
    /// drops with <see cref="ReleasePage"/> right after use. Nothing is pinned: the caller stays coherent
    /// through the notifier chain and its own retry protocol.
    /// </summary>
    public GupResult GetUserPages(Hva address, bool write)
    {
        EnterRead("get-user-pages");
        try
        {
            return GupLocked(address.PageAligned, write ? FaultAccess.Write : FaultAccess.Read);
        }
        finally
        {
            _mmapLock.ExitReadLock();
        }
    }

    /// <summary>Drops the short-term reference <see cref="GetUserPages"/> took.</summary>
    public void ReleasePage(Pfn pfn) => Host.Memory.Put(pfn);

    /// <summary>
    /// Copies process memory at <paramref name="address"/> into <paramref name="destination"/> as the process
    /// itself would read it: faults pages in (a never-written page reads as zeroes through the zero page) and
    /// marks them accessed.
    /// </summary>
    /// <exception cref="HostFaultException">A page is unmapped or not readable.</exception>
    public void Read(Hva address, Span<byte> destination) => Access(address, destination, default, FaultAccess.Read);

    /// <summary>
    /// Copies <paramref name="source"/> into process memory at <paramref name="address"/> as the process would
    /// write it: faults pages in, breaks copy-on-write, marks them accessed and dirty.
    /// </summary>
    /// <exception cref="HostFaultException">A page is unmapped or not writable.</exception>
    public void Write(Hva address, ReadOnlySpan<byte> source) => Access(address, default, source, FaultAccess.Write);

    private void Access(Hva address, Span<byte> destination, ReadOnlySpan<byte> source, FaultAccess access)
    {
        var total = access == FaultAccess.Write ? source.Length : destination.Length;
        if (total == 0)
        {
            return;
        }

        if (address.Value + (ulong)total < address.Value || address + (ulong)total > UserSpaceEnd)
        {
            throw new InvalidRangeException(NotifierRule.OutsideAddressSpace, $"access at {address} of {total} bytes leaves the user address space", nameof(address));
        }

        EnterRead(access == FaultAccess.Write ? "a write" : "a read");
        try
        {
            var done = 0;
            while (done < total)
            {
                var current = address + (ulong)done;
                var offset = (int)current.PageOffset;
                var chunk = Math.Min(total - done, (int)Paging.PageSize - offset);
                var page = GupLocked(current.PageAligned, access);
                switch (page.Fault)
                {
                    case FaultResult.MemoryFailure:
                        throw new MemoryFailureException(Id, current, page.Failure);
                    case FaultResult.OutOfMemory:
                        throw new OutOfMemoryFaultException(Id, current, $"{Cgroup} and host RAM gave no frame after reclaim");
                    case FaultResult.SegmentationFault or FaultResult.ProtectionViolation:
                        throw new HostFaultException(Id, current, access, page.Fault);
                }

                try
                {
                    var frame = Host.Memory.FrameBytes(page.Pfn).Slice(offset, chunk);
                    if (access == FaultAccess.Write)
                    {
                        source.Slice(done, chunk).CopyTo(frame);

                        // A write through a get-user-pages reference dirties the page itself, after the copy (Linux's
                        // unpin_user_pages_dirty_lock): reclaim may have unmapped it, moved the PTE's dirty bit to the page
                        // and written it to swap while we copied, and must write it again rather than drop it as clean.
                        Host.Memory.SetFlags(page.Pfn, FrameFlags.Dirty);
                    }
                    else
                    {
                        frame.CopyTo(destination.Slice(done, chunk));
                    }
                }
                finally
                {
                    Host.Memory.Put(page.Pfn);
                }

                done += chunk;
            }
        }
        finally
        {
            _mmapLock.ExitReadLock();
        }
    }

    /// <summary>get-user-pages body; the caller holds the mmap lock for read.</summary>
    private GupResult GupLocked(Hva page, FaultAccess access)
    {
        Interlocked.Increment(ref _gupCalls);
        var resolvedBy = FaultResult.AlreadyMapped;
        while (true)
        {
            if (TryGupHuge(page, access, resolvedBy, out var huge))
            {
                return huge;
            }

            if (_pageTable.TryLock(page, allocate: false, out var slot))
            {
                using (slot)
                {
                    var pte = slot.Value;
                    if (pte.IsPresent && (access != FaultAccess.Write || pte.IsWritable))
                    {
                        Host.Memory.Get(pte.Pfn);
                        if (pte.Pfn != Host.ZeroPfn)
                        {
                            Host.Reclaim.MarkAccessed(pte.Pfn); // FOLL_TOUCH's mark_page_accessed: a multi-gen reference
                        }

                        var touched = pte.With(HostPte.AccessedBit | (access == FaultAccess.Write ? HostPte.DirtyBit : 0));
                        if (touched != pte)
                        {
                            slot.Value = touched; // what the CPU's page walk would set; not a change secondary MMUs hear of
                        }

                        return new GupResult(resolvedBy, pte.Pfn, pte.IsWritable);
                    }
                }
            }

            var result = FaultLocked(page, access, out var failure, forGup: true);
            if (GupResult.IsFailure(result))
            {
                return new GupResult(result, default, false) { Failure = failure };
            }

            if (result != FaultResult.AlreadyMapped)
            {
                resolvedBy = result;
            }
        }
    }

    /// <summary>The fault handler; the caller holds the mmap lock for read. Loops until it wins any PTE race.</summary>
    private FaultResult FaultLocked(Hva page, FaultAccess access, out FaultFailure failure, bool forGup = false)
    {
        failure = default;
        var unlockedSightings = 0;
        while (true)
        {
            var outcome = FaultLockedOnce(page, access, ref failure, forGup, ref unlockedSightings);
            if (outcome is { } done)
            {
                return done;
            }

            if (_exited)
            {
                return FaultResult.SegmentationFault; // the process exited while the fault waited on a migration
            }
        }
    }

    /// <summary>One attempt of <see cref="FaultLocked"/>: null when it waited on a migration entry (the mmap lock was dropped and retaken, so the VMA is looked up again).</summary>
    private FaultResult? FaultLockedOnce(Hva page, FaultAccess access, ref FaultFailure failure, bool forGup, ref int unlockedSightings)
    {
        var vma = _vmas.Find(page);
        if (vma is null)
        {
            Interlocked.Increment(ref _failedFaults);
            return FaultResult.SegmentationFault;
        }

        if (!Allows(vma.Protection, access))
        {
            Interlocked.Increment(ref _failedFaults);
            return FaultResult.ProtectionViolation;
        }

        while (true)
        {
            var huge = HugeFault(vma, page, access, out var hugeRetry);
            if (huge is { } hugeDone)
            {
                return hugeDone;
            }

            if (hugeRetry)
            {
                continue;
            }

            var current = _pageTable.Read(page);
            var kind = HostPteEncoding.Classify(current);
            if (kind == HostPteKind.Migration)
            {
                WaitOnMigrationEntry(page, current, forGup, ref unlockedSightings);
                return null;
            }

            FaultResult? result = kind switch
            {
                HostPteKind.None => access == FaultAccess.Write ? DemandZero(vma, page) : MapZeroPage(vma, page),
                HostPteKind.Present => access == FaultAccess.Write && !current.IsWritable
                    ? WriteProtectFault(vma, page, current)
                    : Touch(page, current, access),
                HostPteKind.ProtNone => NumaHintFault(vma, page, current), // the VMA allows the access: only NUMA balancing leaves these
                HostPteKind.Swap => SwapInFault(vma, page, current, access, ref failure),
                _ => throw new InvalidOperationException($"{this}: fault at {page} found {HostPteEncoding.Describe(current)}, which no fault handles"),
            };

            if (result is { } done)
            {
                return done;
            }
        }
    }

    private static bool Allows(Protection protection, FaultAccess access) => access switch
    {
        FaultAccess.Read => (protection & Protection.Read) != 0,
        FaultAccess.Write => (protection & Protection.Write) != 0,
        _ => (protection & Protection.Execute) != 0,
    };

    /// <summary>Write to a never-touched page: a new zeroed frame, mapped writable. Null when a racing fault won.</summary>
    private FaultResult? DemandZero(Vma vma, Hva page)
    {
        var memory = Host.Memory;
        if (!Host.Reclaim.TryAllocateAnon(this, zero: true, mayReclaim: true, out var pfn, vma.Policy, vma.PageIndexOf(page)))
        {
            Interlocked.Increment(ref _outOfMemoryFaults);
            return FaultResult.OutOfMemory;
        }

        memory.SetFlags(pfn, FrameFlags.SwapBacked);
        // On the LRU before the PTE is visible (Linux adds the folio before set_pte_at): once the page-table lock is
        // dropped a racing zap may unmap and free the frame, and an LruAdd after that would list a freed (or reused)
        // frame. If the install loses a race the Put below frees the frame and its release hook takes it off again.
        Host.Reclaim.LruAdd(pfn, inFault: true);
        var installed = false;
        if (_pageTable.TryLock(page, allocate: true, out var slot))
        {
            using (slot)
            {
                if (slot.Value.IsNone)
                {
                    memory.Frame(pfn).SetAnonRmap(checked((int)vma.AnonId), vma.PageIndexOf(page));
                    memory.IncrementMapCount(pfn);
                    var pte = HostPte.Present(pfn, PteFlags(vma.Protection, writable: true) | HostPte.AccessedBit | HostPte.DirtyBit);
                    slot.Value = pte;
                    TracePte(page, HostPte.None, pte);
                    installed = true;
                }
            }
        }

        if (!installed)
        {
            memory.Put(pfn);
            return null;
        }

        AddRss(1);
        Interlocked.Increment(ref _demandZeroFaults);
        return FaultResult.DemandZero;
    }

    /// <summary>Read or fetch of a never-touched page: the zero page, read-only. Null when a racing fault won.</summary>
    private FaultResult? MapZeroPage(Vma vma, Hva page)
    {
        if (!_pageTable.TryLock(page, allocate: true, out var slot))
        {
            return null;
        }

        using (slot)
        {
            if (!slot.Value.IsNone)
            {
                return null;
            }

            var pte = HostPte.Present(Host.ZeroPfn, PteFlags(vma.Protection, writable: false) | HostPte.AccessedBit);
            slot.Value = pte;
            TracePte(page, HostPte.None, pte);
        }

        Interlocked.Increment(ref _zeroPageFaults);
        return FaultResult.ZeroPage;
    }

    /// <summary>A fault the PTE already allows: set accessed (and dirty). Null when the PTE changed meanwhile.</summary>
    private FaultResult? Touch(Hva page, HostPte current, FaultAccess access)
    {
        if (!_pageTable.TryLock(page, allocate: false, out var slot))
        {
            return null;
        }

        using (slot)
        {
            if (slot.Value != current)
            {
                return null;
            }

            slot.Value = current.With(HostPte.AccessedBit | (access == FaultAccess.Write ? HostPte.DirtyBit : 0));
        }

        Interlocked.Increment(ref _spuriousFaults);
        return FaultResult.AlreadyMapped;
    }

    /// <summary>
    /// Write to a present read-only PTE in a writable VMA (Linux's <c>do_wp_page</c>): an exclusively owned
    /// frame is made writable in place with no notifier (permission is only added); otherwise the page is
    /// copied (§3 COW: copy → start (Clear, one page) → PTE cleared and flushed → new PTE → end → old frame
    /// released). Null when the PTE changed meanwhile.
    /// </summary>
    private FaultResult? WriteProtectFault(Vma vma, Hva page, HostPte current, bool unshare = false)
    {
        var memory = Host.Memory;
        var oldPfn = current.Pfn;
        var fromZeroPage = oldPfn == Host.ZeroPfn;
        var fromKsmPage = false;
        if (!fromZeroPage)
        {
            if (!_pageTable.TryLock(page, allocate: false, out var slot))
            {
                return null;
            }

            using (slot)
            {
                if (slot.Value != current)
                {
                    return null;
                }

                ref var frame = ref memory.Frame(oldPfn);
                if (frame.MapCount == 1 && frame.RefCount == 1 && !unshare && !frame.Has(FrameFlags.Ksm))
                {
                    var reused = current.With(HostPte.WritableBit | HostPte.AccessedBit | HostPte.DirtyBit);
                    slot.Value = reused;
                    TracePte(page, current, reused);
                    Interlocked.Increment(ref _writeReuseFaults);
                    return FaultResult.WriteReuse;
                }

                memory.Get(oldPfn); // keep the source alive while we copy outside the lock
                fromKsmPage = frame.Has(FrameFlags.Ksm); // a KSM page is always copied (cow_ksm), never reused
            }
        }

        if (!Host.Reclaim.TryAllocateAnon(this, zero: fromZeroPage, mayReclaim: true, out var newPfn, vma.Policy, vma.PageIndexOf(page)))
        {
            if (!fromZeroPage)
            {
                memory.Put(oldPfn);
            }

            Interlocked.Increment(ref _outOfMemoryFaults);
            return FaultResult.OutOfMemory;
        }

        memory.SetFlags(newPfn, FrameFlags.SwapBacked);
        if (!fromZeroPage)
        {
            memory.CopyFrame(oldPfn, newPfn);
        }

        // On the LRU before the PTE is visible (Linux adds the folio before set_pte_at): once the page-table lock is
        // dropped a racing zap may unmap and free the frame, and an LruAdd after that would list a freed (or reused)
        // frame. If the install loses a race the Put below frees the frame and its release hook takes it off again.
        Host.Reclaim.LruAdd(newPfn, inFault: true);
        var replaced = false;
        using (Invalidation.Begin(this, page, page + Paging.PageSize, NotifierEvent.Clear))
        {
            if (_pageTable.TryLock(page, allocate: false, out var slot))
            {
                using (slot)
                {
                    if (slot.Value == current)
                    {
                        slot.Value = HostPte.None;
                        TracePte(page, current, HostPte.None);
                        FlushTlb(page, page + Paging.PageSize);
                        memory.Frame(newPfn).SetAnonRmap(checked((int)vma.AnonId), vma.PageIndexOf(page));
                        memory.IncrementMapCount(newPfn);
                        // An unshare fault (break_ksm) gives an exclusive read-only copy: a later write reuses it in place.
                        var pte = HostPte.Present(newPfn, unshare
                            ? PteFlags(vma.Protection, writable: false) | HostPte.AccessedBit
                            : PteFlags(vma.Protection, writable: true) | HostPte.AccessedBit | HostPte.DirtyBit);
                        if (Host.Options.LegacyChangePte)
                        {
                            Notifiers.ChangePte(page, pte);
                        }

                        slot.Value = pte;
                        TracePte(page, HostPte.None, pte);
                        if (!fromZeroPage)
                        {
                            memory.DecrementMapCount(oldPfn);
                        }

                        replaced = true;
                    }
                }
            }
        }

        if (!fromZeroPage)
        {
            if (replaced)
            {
                memory.Put(oldPfn); // the old mapping's reference: frees the frame here if it was the last one
            }

            memory.Put(oldPfn); // our copy reference
        }

        if (!replaced)
        {
            memory.Put(newPfn);
            return null;
        }

        if (fromZeroPage)
        {
            AddRss(1);
            if (current.IsDirty)
            {
                AddKsmZeroPages(-1); // the zero page KSM placed here is replaced
            }
        }
        else if (fromKsmPage)
        {
            Host.Ksm.CountCowKsm();
        }

        Interlocked.Increment(ref _copyOnWriteFaults);
        return FaultResult.CopyOnWrite;
    }

    /// <summary>
    /// A fault on a swap entry (Linux's <c>do_swap_page</c>): the page comes from the swap cache (a minor fault) or is
    /// read from the device with readahead (a major fault), then is mapped with no notifier (a mapping is only added).
    /// It is writable when this PTE was the slot's only user and nothing else maps the page (the page is exclusive) and
    /// the VMA allows writes; dirty only for a write. A write to a page that is not exclusive maps it read-only and
    /// retries, so the copy-on-write path breaks the sharing. The slot's reference is dropped; the swap copy is kept
    /// while the page is clean, unless this is a write to an exclusive page or swap is filling up. Null when the PTE
    /// changed meanwhile.
    /// </summary>
    private FaultResult? SwapInFault(Vma vma, Hva page, HostPte current, FaultAccess access, ref FaultFailure failure)
    {
        var reclaim = Host.Reclaim;
        var memory = Host.Memory;
        var slot = HostPteEncoding.SwapSlotOf(current);
        var found = reclaim.GetSwapPage(this, slot);
        switch (found.Status)
        {
            case SwapPageStatus.Retry:
                return null;
            case SwapPageStatus.OutOfMemory:
                Interlocked.Increment(ref _outOfMemoryFaults);
                return FaultResult.OutOfMemory;
            case SwapPageStatus.MemoryFailure:
                Interlocked.Increment(ref _memoryFailureFaults);
                failure = new FaultFailure(slot, found.Cause);
                return FaultResult.MemoryFailure;
        }

        var pfn = found.Pfn;
        ref var frame = ref memory.Frame(pfn);
        if (frame.Has(FrameFlags.Ksm)
            ? Host.Ksm.SwapInNeedsCopy(pfn)
            : frame.RmapOwner != FrameInfo.NoOwner && (frame.RmapOwner != vma.AnonId || frame.RmapIndex != vma.PageIndexOf(page)))
        {
            return SwapInCopy(vma, page, current, access, found);
        }

        var mapped = false;
        var write = access == FaultAccess.Write;
        var writable = false;
        try
        {
            if (_pageTable.TryLock(page, allocate: false, out var pte))
            {
                using (pte)
                {
                    if (pte.Value == current)
                    {
                        // A KSM page is never exclusive: every sharer maps it read-only.
                        var exclusive = reclaim.Area!.GetUsage(slot).MapCount == 1 && frame.MapCount == 0 && !frame.Has(FrameFlags.Ksm);
                        writable = exclusive && (vma.Protection & Protection.Write) != 0;
                        var flags = PteFlags(vma.Protection, writable) | HostPte.AccessedBit | (write && writable ? HostPte.DirtyBit : 0);
                        var present = HostPte.Present(pfn, flags);
                        if (frame.RmapOwner == FrameInfo.NoOwner && !frame.Has(FrameFlags.Ksm))
                        {
                            frame.SetAnonRmap(checked((int)vma.AnonId), vma.PageIndexOf(page));
                        }

                        memory.IncrementMapCount(pfn);
                        pte.Value = present;
                        TracePte(page, current, present);
                        mapped = true;
                    }
                }
            }

            if (!mapped)
            {
                return null;
            }

            // The lookup's reference now belongs to the mapping.
            reclaim.FreeSwapReference(slot);
            AddRss(1);
            AddSwapEntries(-1);
            if ((write && writable) || reclaim.SwapFull)
            {
                reclaim.TryFreeSwapCache(pfn);
            }
        }
        finally
        {
            frame.ClearFlags(FrameFlags.Locked);
            if (!mapped)
            {
                memory.Put(pfn);
            }
        }

        Interlocked.Increment(ref found.Major ? ref _swapInFaults : ref _swapCacheFaults);
        if (write && !writable)
        {
            return null; // mapped read-only: the retry breaks copy-on-write
        }

        return found.Major ? FaultResult.SwapIn : FaultResult.SwapCacheHit;
    }

    /// <summary>
    /// Swap-in of a page that another mapping's anon family owns (Linux's <c>ksm_might_need_to_copy</c>): a page KSM had
    /// merged across processes was swapped out from every sharer, its KSM page freed, and the first sharer to fault it
    /// back in owns the new page. Every other sharer gets its own exclusive copy (<c>ksm_swpin_copy</c>), so each page's
    /// reverse map stays one family and index; the swap-cache page stays for the rest. A KSM page still in the swap
    /// cache is copied too when its stable node is gone or run is 2 (unmerge). Null when the PTE changed.
    /// </summary>
    private FaultResult? SwapInCopy(Vma vma, Hva page, HostPte current, FaultAccess access, SwapPage found)
    {
        var reclaim = Host.Reclaim;
        var memory = Host.Memory;
        var slot = HostPteEncoding.SwapSlotOf(current);
        var source = found.Pfn;
        Pfn copy;
        try
        {
            if (!reclaim.TryAllocateAnon(this, zero: false, mayReclaim: true, out copy, vma.Policy, vma.PageIndexOf(page)))
            {
                Interlocked.Increment(ref _outOfMemoryFaults);
                return FaultResult.OutOfMemory;
            }

            memory.CopyFrame(source, copy);
        }
        finally
        {
            memory.Frame(source).ClearFlags(FrameFlags.Locked);
            memory.Put(source);
        }

        memory.SetFlags(copy, FrameFlags.SwapBacked | FrameFlags.Dirty); // the only copy outside the swap cache's
        reclaim.LruAdd(copy, inFault: true);
        var write = access == FaultAccess.Write;
        var writable = (vma.Protection & Protection.Write) != 0;
        var mapped = false;
        if (_pageTable.TryLock(page, allocate: false, out var pte))
        {
            using (pte)
            {
                if (pte.Value == current)
                {
                    memory.Frame(copy).SetAnonRmap(checked((int)vma.AnonId), vma.PageIndexOf(page));
                    memory.IncrementMapCount(copy);
                    var present = HostPte.Present(copy, PteFlags(vma.Protection, writable) | HostPte.AccessedBit | (write && writable ? HostPte.DirtyBit : 0));
                    pte.Value = present;
                    TracePte(page, current, present);
                    mapped = true;
                }
            }
        }

        if (!mapped)
        {
            memory.Put(copy);
            return null;
        }

        reclaim.FreeSwapEntry(slot);
        AddRss(1);
        AddSwapEntries(-1);
        Host.Ksm.CountSwpinCopy();
        Interlocked.Increment(ref found.Major ? ref _swapInFaults : ref _swapCacheFaults);
        return found.Major ? FaultResult.SwapIn : FaultResult.SwapCacheHit;
    }
}
