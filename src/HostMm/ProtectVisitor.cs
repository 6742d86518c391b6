using Hypervisor.HostMm.PageTables;
using Hypervisor.HostMm.Vmas;

namespace Hypervisor.HostMm;

/// <summary>
/// Rewrites PTEs for a new protection (Linux's <c>change_pte_range</c>) under each PTE table's lock.
/// Present entries lose write when it is removed, gain or lose NX with execute, and become PROT_NONE
/// entries (frame kept) for <see cref="Protection.None"/>; PROT_NONE entries come back read-only.
/// </summary>
internal struct ProtectVisitor : IPteVisitor
{
    private const ulong AccessedDirty = HostPte.AccessedBit | HostPte.DirtyBit;

    private readonly Mm _mm;
    private readonly Protection _protection;
    private readonly ulong _restoredFlags;
    private readonly bool _traced;

    public ProtectVisitor(Mm mm, Protection protection)
    {
        _mm = mm;
        _protection = protection;
        _restoredFlags = Mm.PteFlags(protection, writable: false);
        _traced = mm.Host.Trace is not null;
        Changed = 0;
    }

    /// <summary>PTEs rewritten.</summary>
    public long Changed { get; private set; }

    public bool VisitTable(Hva firstAddress, Span<ulong> entries, Pfn tablePfn)
    {
        for (var i = 0; i < entries.Length; i++)
        {
            var raw = entries[i];
            if (raw == 0)
            {
                continue;
            }

            var pte = new HostPte(raw);
            HostPte updated;
            if (pte.IsPresent)
            {
                if (_protection == Protection.None)
                {
                    updated = HostPteEncoding.MakeProtNone(pte);
                }
                else
                {
                    updated = (_protection & Protection.Write) == 0 ? pte.Without(HostPte.WritableBit) : pte;
                    updated = (_protection & Protection.Execute) == 0 ? updated.With(HostPte.NoExecuteBit) : updated.Without(HostPte.NoExecuteBit);
                }
            }
            else if (_protection != Protection.None && HostPteEncoding.Classify(pte) == HostPteKind.ProtNone)
            {
                updated = HostPteEncoding.RestoreFromProtNone(pte, _restoredFlags | (raw & AccessedDirty));
            }
            else if ((_protection & Protection.Write) == 0 && HostPteEncoding.Classify(pte) == HostPteKind.Migration
                     && HostPteEncoding.IsMigrationWritable(pte))
            {
                // change_pte_range: a writable migration entry becomes a read one; the rest of the protection is the
                // VMA's when remove_migration_pte maps the new frame.
                updated = HostPteEncoding.MakeMigration(pte.Pfn, writable: false, pte.IsAccessed, pte.IsDirty);
            }
            else
            {
                continue;
            }

            if (updated == pte)
            {
                continue;
            }

            entries[i] = updated.Value;
            Changed++;
            if (_traced)
            {
                _mm.TracePte(firstAddress + ((ulong)i << Paging.PageShift), pte, updated);
            }
        }

        return true;
    }
}
