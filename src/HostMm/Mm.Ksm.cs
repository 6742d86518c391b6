using Hypervisor.HostMm.Frames;
using Hypervisor.HostMm.Ksm;
using Hypervisor.HostMm.Vmas;

namespace Hypervisor.HostMm;

/// <summary>KSM: mergeable memory (madvise MERGEABLE/UNMERGEABLE, prctl PR_SET_MEMORY_MERGE) and break_ksm.</summary>
public sealed partial class Mm
{
    private long _ksmZeroPages;
    private volatile bool _memoryMerge;

    /// <summary>
    /// True after <see cref="SetMemoryMerge"/>(true) (Linux's <c>MMF_VM_MERGE_ANY</c>): every current and future VMA is
    /// mergeable. A forked child inherits it.
    /// </summary>
    public bool MemoryMerge => _memoryMerge;

    /// <summary>This process's slot on the KSM scan list, or null; changed under the scanner's leaf lock.</summary>
    internal MmSlot? KsmSlot { get; set; }

    /// <summary>This process's PTEs that map a KSM-placed zero page (ksm_zero_pages).</summary>
    internal long KsmZeroPages => Volatile.Read(ref _ksmZeroPages);

    /// <summary>True when some VMA is mergeable or <see cref="MemoryMerge"/> is on; call with the mmap lock held.</summary>
    internal bool HasMergeableMemoryLocked => _memoryMerge || _vmas.Any(vma => (vma.Flags & VmaFlags.Mergeable) != 0);

    /// <summary>
    /// <c>prctl(PR_SET_MEMORY_MERGE)</c>: on, every VMA becomes mergeable now and every later mapping too, and the
    /// process joins the KSM scan list; off, every KSM page of the process is broken copy-on-write (<c>break_ksm</c>),
    /// every VMA loses the mergeable bit (madvise's included, as Linux's <c>ksm_disable_merge_any</c>) and later
    /// mappings are not mergeable. Under the mmap lock for write.
    /// </summary>
    public void SetMemoryMerge(bool enable)
    {
        EnterWrite("prctl(PR_SET_MEMORY_MERGE)");
        try
        {
            if (enable)
            {
                _memoryMerge = true;
                foreach (var vma in _vmas.ToList())
                {
                    _vmas.SetFlags(vma, vma.Flags | VmaFlags.Mergeable);
                }

                Host.Ksm.Enter(this);
                return;
            }

            if (!_memoryMerge)
            {
                return;
            }

            foreach (var vma in _vmas.ToList())
            {
                if ((vma.Flags & VmaFlags.Mergeable) != 0)
                {
                    UnmergeRangeLocked(vma.Start, vma.End);
                    _vmas.SetFlags(vma, vma.Flags & ~VmaFlags.Mergeable);
                }
            }

            _memoryMerge = false;
        }
        finally
        {
            _mmapLock.ExitWriteLock();
        }
    }

    /// <summary>
    /// madvise MERGEABLE / UNMERGEABLE (Linux's <c>ksm_madvise</c>, under the mmap lock for write): the VMAs of the
    /// range are split at its edges and gain or lose the mergeable bit; every VMA here is private anonymous, so every
    /// one is eligible. MERGEABLE puts the process on the scan list. UNMERGEABLE first breaks every KSM page (and
    /// KSM-placed zero page) of the range copy-on-write.
    /// </summary>
    private void MadviseKsm(Hva start, Hva end, Advice advice)
    {
        EnterWrite("madvise");
        try
        {
            Interlocked.Increment(ref _madviseCalls);
            if (!_vmas.IsFullyMapped(start, end))
            {
                throw new UnmappedRangeException(HostMmRule.RangeNotFullyMapped, Id, start, end, $"madvise {advice}");
            }

            var mergeable = advice == Advice.Mergeable;
            var changed = new List<Vma>();
            foreach (var vma in _vmas.Intersecting(start, end))
            {
                if (((vma.Flags & VmaFlags.Mergeable) != 0) != mergeable)
                {
                    changed.Add(vma);
                }
            }

            if (changed.Count != 0)
            {
                foreach (var vma in _vmas.SplitToRange(start, end))
                {
                    if (((vma.Flags & VmaFlags.Mergeable) != 0) == mergeable)
                    {
                        continue;
                    }

                    if (!mergeable)
                    {
                        UnmergeRangeLocked(vma.Start, vma.End);
                    }

                    _vmas.SetFlags(vma, mergeable ? vma.Flags | VmaFlags.Mergeable : vma.Flags & ~VmaFlags.Mergeable);
                }
            }

            if (mergeable)
            {
                Host.Ksm.Enter(this);
            }
        }
        finally
        {
            _mmapLock.ExitWriteLock();
        }
    }

    /// <summary>Breaks every KSM page of every mergeable VMA (run = 2); the caller holds the mmap lock.</summary>
    internal void UnmergeAllLocked()
    {
        foreach (var vma in _vmas.ToList())
        {
            if ((vma.Flags & VmaFlags.Mergeable) != 0)
            {
                UnmergeRangeLocked(vma.Start, vma.End);
            }
        }
    }

    /// <summary><c>unmerge_ksm_pages</c>: <see cref="BreakKsmLocked"/> on every page of the range; the caller holds the mmap lock.</summary>
    internal void UnmergeRangeLocked(Hva start, Hva end)
    {
        for (var page = start; page < end; page += Paging.PageSize)
        {
            BreakKsmLocked(page);
        }
    }

    /// <summary>
    /// <c>break_ksm</c>: while <paramref name="page"/> maps a KSM page or a KSM-placed zero page, an unshare fault gives
    /// the process its own copy (read-only, exclusive: a later write reuses it in place). False when no frame could be
    /// had (out of memory). The caller holds the mmap lock (read or write).
    /// </summary>
    internal bool BreakKsmLocked(Hva page)
    {
        while (true)
        {
            var pte = _pageTable.Read(page);
            if (!pte.IsPresent)
            {
                return true;
            }

            var isKsm = pte.Pfn == Host.ZeroPfn ? pte.IsDirty : Host.Memory.Frame(pte.Pfn).Has(FrameFlags.Ksm);
            var vma = _vmas.Find(page);
            if (!isKsm || vma is null)
            {
                return true;
            }

            if (WriteProtectFault(vma, page, pte, unshare: true) == FaultResult.OutOfMemory)
            {
                return false;
            }
        }
    }

    /// <summary>Counts KSM-placed zero-page PTEs gained (or lost, negative), here and host-wide.</summary>
    internal void AddKsmZeroPages(long delta)
    {
        Interlocked.Add(ref _ksmZeroPages, delta);
        Host.Ksm.AddZeroPages(delta);
    }

    /// <summary>For the KSM scanner: the mmap lock for read, waiting for it; false (nothing held) once the process exited.</summary>
    internal bool KsmEnterRead()
    {
        if (_exited)
        {
            return false;
        }

        _mmapLock.EnterReadLock();
        if (_exited)
        {
            _mmapLock.ExitReadLock();
            return false;
        }

        return true;
    }

    /// <summary>Drops the lock <see cref="KsmEnterRead"/> took.</summary>
    internal void KsmExitRead() => _mmapLock.ExitReadLock();

    /// <summary>
    /// The anonymous page <paramref name="address"/> maps now, with a reference the caller drops (KSM's
    /// <c>follow_page</c>): false for no PTE, a swap entry or the zero page. Call with the mmap lock held.
    /// </summary>
    internal bool TryGetAnonPage(Hva address, out Pfn pfn)
    {
        pfn = default;
        if (!_pageTable.TryLock(address, allocate: false, out var slot))
        {
            return false;
        }

        using (slot)
        {
            var pte = slot.Value;
            if (!pte.IsPresent || pte.Pfn == Host.ZeroPfn)
            {
                return false;
            }

            pfn = pte.Pfn;
            Host.Memory.Get(pfn);
            return true;
        }
    }
}
