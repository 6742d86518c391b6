using Hypervisor.HostMm.Frames;
using Hypervisor.HostMm.Migration;
using Hypervisor.HostMm.PageTables;
using Hypervisor.HostMm.Vmas;

namespace Hypervisor.HostMm;

/// <summary>The process side of NUMA balancing: the scan window (<c>change_prot_numa</c>) and the hinting fault (<c>do_numa_page</c>).</summary>
public sealed partial class Mm
{
    // Where the next NUMA scan of this process starts (Linux's mm->numa_scan_offset); changed under the balancer's scan lock.
    private ulong _numaScanOffset;

    /// <summary>
    /// Scans up to <paramref name="budgetPages"/> pages of this process's accessible VMAs from the scan offset, making
    /// each resident, exclusively mapped, non-KSM PTE PROT_NONE: per VMA chunk, start (ProtectionVma) → PTEs → end →
    /// flush (§3's mprotect row). Returns the pages of address space scanned, the PTEs changed, and whether the scan
    /// reached the end of the address space (the offset starts again at 0). Takes the mmap lock for read, as Linux's
    /// <c>task_numa_work</c> does.
    /// </summary>
    internal (long Scanned, long Updated, bool Wrapped) ChangeProtNuma(long budgetPages)
    {
        EnterRead("NUMA balancing scan");
        try
        {
            long scanned = 0, updated = 0;
            var offset = new Hva(_numaScanOffset);
            foreach (var vma in _vmas.Intersecting(offset, UserSpaceEnd))
            {
                if (scanned >= budgetPages)
                {
                    _numaScanOffset = Math.Max(offset.Value, vma.Start.Value);
                    return (scanned, updated, false);
                }

                if ((vma.Protection & Protection.Read) == 0)
                {
                    continue; // PROT_NONE VMAs are skipped, as Linux's vma_is_accessible test does
                }

                var start = offset > vma.Start ? offset : vma.Start;
                var pages = Math.Min((long)((vma.End - start) >> Paging.PageShift), budgetPages - scanned);
                var end = start + ((ulong)pages << Paging.PageShift);
                updated += ChangeProtNumaRange(start, end);
                scanned += pages;
                offset = end;
                if (end < vma.End)
                {
                    _numaScanOffset = end.Value;
                    return (scanned, updated, false);
                }
            }

            _numaScanOffset = 0;
            return (scanned, updated, true);
        }
        finally
        {
            _mmapLock.ExitReadLock();
        }
    }

    private long ChangeProtNumaRange(Hva start, Hva end)
    {
        var probe = default(AnyTableVisitor);
        _pageTable.Walk(start, end, allocate: false, ref probe);
        if (!probe.Found)
        {
            return 0;
        }

        long changed;
        using (Invalidation.Begin(this, start, end, NotifierEvent.ProtectionVma))
        {
            var visitor = new NumaProtectVisitor(this);
            _pageTable.Walk(start, end, allocate: false, ref visitor);
            changed = visitor.Changed;
        }

        if (changed > 0)
        {
            FlushTlb(start, end);
        }

        return changed;
    }

    /// <summary>
    /// <c>do_numa_page</c>: a PROT_NONE entry in an accessible VMA is a hinting fault. Under the page-table lock the entry
    /// becomes present again with the VMA's protection (writable only for an exclusive, dirty anonymous page; otherwise
    /// a write takes the write-protect path next), with no notifier (access is only added); the fault is counted, and a
    /// page on another node than the faulting thread's (<see cref="HostThread.CurrentNode"/>) that the VMA's policy would
    /// rather have there is migrated (<c>migrate_misplaced_folio</c>) while this thread holds the mmap lock for read.
    /// Null when the entry changed meanwhile.
    /// </summary>
    private FaultResult? NumaHintFault(Vma vma, Hva page, HostPte current)
    {
        var memory = Host.Memory;
        var pfn = current.Pfn;
        int pageNode;
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

            ref var frame = ref memory.Frame(pfn);
            var writable = (vma.Protection & Protection.Write) != 0 && current.IsDirty && pfn != Host.ZeroPfn
                && frame.MapCount == 1 && !frame.Has(FrameFlags.Ksm) && !frame.Has(FrameFlags.SwapCache);
            var restored = HostPteEncoding.RestoreFromProtNone(current, PteFlags(vma.Protection, writable));
            slot.Value = restored;
            TracePte(page, current, restored);
            pageNode = memory.NodeOf(pfn);
        }

        var balancer = Host.NumaBalancing;
        var node = HostThread.NodeFor(this);
        balancer.CountHintFault(local: pageNode == node);
        if (!balancer.Enabled || pfn == Host.ZeroPfn || pageNode == node)
        {
            return FaultResult.NumaHint;
        }

        var target = vma.Policy.Mode switch
        {
            NumaPolicyMode.Local => node,
            NumaPolicyMode.Bind when (vma.Policy.Nodes & (1UL << node)) != 0 => node,
            _ => -1, // a bind that excludes this node, a preferred or an interleaved page stays where its policy put it
        };

        if (target >= 0 && Host.Reclaim.TryIsolate(pfn))
        {
            balancer.CountMigration(Host.Migration.MigrateIsolated(this, pfn, target) == MigrationFailure.None);
        }

        return FaultResult.NumaHint;
    }

    /// <summary>The scan's PTE pass: present, exclusively mapped, non-KSM, non-zero-page entries become PROT_NONE.</summary>
    private struct NumaProtectVisitor(Mm mm) : IPteVisitor
    {
        public long Changed { get; private set; }

        public bool VisitTable(Hva firstAddress, Span<ulong> entries, Pfn tablePfn)
        {
            var memory = mm.Host.Memory;
            var zero = mm.Host.ZeroPfn;
            var traced = mm.Host.Trace is not null;
            for (var i = 0; i < entries.Length; i++)
            {
                var pte = new HostPte(entries[i]);
                if (!pte.IsPresent || pte.Pfn == zero)
                {
                    continue;
                }

                ref var frame = ref memory.Frame(pte.Pfn);
                if (frame.MapCount != 1 || frame.Has(FrameFlags.Ksm))
                {
                    continue; // shared copy-on-write and KSM pages are not scanned (change_pte_range's prot_numa skips)
                }

                var updated = HostPteEncoding.MakeProtNone(pte);
                entries[i] = updated.Value;
                Changed++;
                if (traced)
                {
                    mm.TracePte(firstAddress + ((ulong)i << Paging.PageShift), pte, updated);
                }
            }

            return true;
        }
    }
}
