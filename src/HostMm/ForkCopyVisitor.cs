using Hypervisor.HostMm.Frames;
using Hypervisor.HostMm.PageTables;

namespace Hypervisor.HostMm;

/// <summary>
/// fork's PTE copy (Linux's <c>copy_pte_range</c> for private anonymous memory), under the parent's PTE
/// table lock and then the child's (the child is new and private, so the nesting cannot deadlock): a
/// writable parent PTE is write-protected in place without a flush, the child gets the read-only copy, and
/// the frame gains a reference and a mapping. The child's tables already exist.
/// </summary>
internal struct ForkCopyVisitor : IPteVisitor
{
    private readonly Mm _parent;
    private readonly Mm _child;
    private readonly HostMemory _memory;
    private readonly Pfn _zeroPfn;

    public ForkCopyVisitor(Mm parent, Mm child)
    {
        _parent = parent;
        _child = child;
        _memory = parent.Host.Memory;
        _zeroPfn = parent.Host.ZeroPfn;
        Resident = 0;
        SwapEntries = 0;
        KsmZeroPages = 0;
        MigrationEntries = 0;
    }

    /// <summary>Mappings the child gained that count in its RSS.</summary>
    public long Resident { get; private set; }

    /// <summary>Swap entries copied into the child (each took a reference on its slot).</summary>
    public long SwapEntries { get; private set; }

    /// <summary>Migration entries copied into the child (they count in its RSS; the migration maps the new frame there).</summary>
    public long MigrationEntries { get; private set; }

    /// <summary>KSM-placed zero-page PTEs (dirty zero-page PTEs) copied into the child.</summary>
    public long KsmZeroPages { get; private set; }

    public bool VisitTable(Hva firstAddress, Span<ulong> entries, Pfn tablePfn)
    {
        for (var i = 0; i < entries.Length; i++)
        {
            var raw = entries[i];
            if (raw == 0)
            {
                continue;
            }

            var address = firstAddress + ((ulong)i << Paging.PageShift);
            var pte = new HostPte(raw);
            var kind = HostPteEncoding.Classify(pte);
            Pfn pfn;
            if (kind == HostPteKind.Present)
            {
                pfn = pte.Pfn;

                if (pte.IsWritable)
                {
                    var protectedPte = pte.Without(HostPte.WritableBit);
                    entries[i] = protectedPte.Value;
                    _parent.TracePte(address, pte, protectedPte);
                    pte = protectedPte;
                }
            }
            else if (kind == HostPteKind.ProtNone)
            {
                pfn = HostPteEncoding.ProtNonePfn(pte);
            }
            else if (kind == HostPteKind.Swap)
            {
                // copy_nonpresent_pte: the child shares the swapped page through one more reference on its slot.
                _parent.Host.Reclaim.DuplicateSwapEntry(HostPteEncoding.SwapSlotOf(pte));
                SwapEntries++;
                pfn = _zeroPfn; // nothing resident to reference
            }
            else
            {
                // copy_nonpresent_pte: a migration entry is copied (read-only in both, as for any private writable
                // mapping); the child counts it in RSS and its migration's remove_migration_ptes maps the new frame in
                // both, since the child joined the anon family before this copy.
                if (HostPteEncoding.IsMigrationWritable(pte))
                {
                    var readOnly = HostPteEncoding.MakeMigration(pte.Pfn, writable: false, pte.IsAccessed, pte.IsDirty);
                    entries[i] = readOnly.Value;
                    _parent.TracePte(address, pte, readOnly);
                    pte = readOnly;
                }

                MigrationEntries++;
                pfn = _zeroPfn; // no mapcount or reference: the migration dropped them
            }

            if (pfn == _zeroPfn && kind is HostPteKind.Present or HostPteKind.ProtNone && pte.IsDirty)
            {
                KsmZeroPages++; // a KSM-placed zero page (present or PROT_NONE)
            }

            if (pfn != _zeroPfn && kind != HostPteKind.Migration)
            {
                _memory.Get(pfn);
                _memory.IncrementMapCount(pfn);
                Resident++;
            }

            if (!_child.PageTable.TryLock(address, allocate: false, out var slot))
            {
                throw new InvalidOperationException($"{_child}: fork expected a page table for {address}");
            }

            using (slot)
            {
                slot.Value = pte;
            }

            _child.TracePte(address, HostPte.None, pte);
        }

        return true;
    }
}
