namespace Hypervisor.HostMm;

/// <summary>fork and exit.</summary>
public sealed partial class Mm
{
    /// <summary>
    /// Creates a child process sharing every page copy-on-write (<c>fork</c>). Order (§3 copy_page_range):
    /// per VMA, notifier start (ProtectionPage, parent, whole VMA) → each parent PTE write-protected (no flush)
    /// and copied read-only into the child → end; after all VMAs, one CPU + secondary TLB flush of the whole
    /// parent. The child has no notifier subscribers.
    /// </summary>
    public Mm Fork()
    {
        EnterWrite("fork");
        try
        {
            Interlocked.Increment(ref _forkCalls);
            var child = Host.CreateMm(PreferredNode);
            child._vmas = _vmas.CloneForFork(); // VMAs keep their mergeable bit, as Linux's
            child._memoryMerge = _memoryMerge;
            Host.Ksm.Fork(this, child);
            foreach (var vma in child._vmas)
            {
                child.JoinFamily(vma.AnonId); // before any PTE of the family is copied: reclaim can find the child's mappings
                // Allocate the child's PTE tables first: no frame is allocated under a page-table lock.
                var populated = new PopulatedTablesVisitor();
                _pageTable.Walk(vma.Start, vma.End, allocate: false, ref populated);
                var build = default(NoOpVisitor);
                foreach (var (start, end) in populated.Ranges)
                {
                    child.PageTable.Walk(start, end, allocate: true, ref build);
                }

                using var invalidation = Invalidation.Begin(this, vma.Start, vma.End, NotifierEvent.ProtectionPage);
                child.AddRss(CopyHugeLeaves(child, vma.Start, vma.End));
                var copier = new ForkCopyVisitor(this, child);
                _pageTable.Walk(vma.Start, vma.End, allocate: false, ref copier);
                child.AddRss(copier.Resident + copier.MigrationEntries);
                child.AddSwapEntries(copier.SwapEntries);
                if (copier.KsmZeroPages != 0)
                {
                    child.AddKsmZeroPages(copier.KsmZeroPages);
                }
            }

            FlushTlb(Hva.Zero, UserSpaceEnd);
            return child;
        }
        finally
        {
            _mmapLock.ExitWriteLock();
        }
    }

    /// <summary>
    /// Ends the process (<c>exit_mmap</c>). Order (§3): notifier release (every secondary MMU drops all its
    /// mappings while still listed) → start (Unmap, whole address space) → every PTE cleared → end → page
    /// tables freed → TLB flush → frames freed → VMAs removed. Afterwards every operation throws
    /// <see cref="MmExitedException"/>.
    /// </summary>
    /// <remarks>
    /// The release runs before the mmap lock is taken, as Linux's <c>mmu_notifier_release</c> runs with only the
    /// notifier read side held (<c>reference/mmu-notifier.md</c> §1.2): reverse-map walkers (reclaim, migration) may
    /// still unmap this process's pages meanwhile, and their invalidations reach every subscriber whose release has
    /// not finished. The chain refuses a second exit.
    /// </remarks>
    /// <exception cref="MmExitedException">The process has already exited.</exception>
    public void Exit()
    {
        ThrowIfExited("exit");
        Notifiers.Release();
        EnterWrite("exit");
        try
        {
            var gather = new TlbGather();
            ZapRange(Hva.Zero, UserSpaceEnd, NotifierEvent.Unmap, gather);
            FlushTlb(Hva.Zero, UserSpaceEnd);
            gather.Finish(this);
            Host.Reclaim.Rmap.Leave(this, _families);
            _families.Clear();
            _pageTable.Dispose(); // page-table frames go last, after the flush, as tlb_finish_mmu frees them
            _vmas = new Vmas.VmaSet();
            _exited = true;
            Host.Forget(this);
        }
        finally
        {
            _mmapLock.ExitWriteLock();
        }
    }
}
