using Hypervisor.HostMm.Vmas;

namespace Hypervisor.HostMm;

/// <summary>mprotect.</summary>
public sealed partial class Mm
{
    /// <summary>
    /// Changes the protection of <c>[start, start + length)</c>, which must be fully mapped (<c>mprotect</c>).
    /// Order (§3): per VMA, notifier start (ProtectionVma) only if the VMA has page tables → PTEs rewritten
    /// under their locks → end; after all VMAs, one CPU + secondary TLB flush (after the ends, as in Linux).
    /// Removing write makes present PTEs read-only; adding write leaves them read-only until a write fault
    /// upgrades them; <see cref="Protection.None"/> keeps the frames mapped in non-present PROT_NONE entries.
    /// </summary>
    /// <exception cref="InvalidProtectionException">Undefined or unrepresentable protection.</exception>
    /// <exception cref="UnmappedRangeException">A page in the range is not mapped.</exception>
    public void Mprotect(Hva start, ulong length, Protection protection)
    {
        ProtectionRules.Validate(protection, nameof(protection));
        var end = CheckRange(start, length, "mprotect");
        EnterWrite("mprotect");
        try
        {
            Interlocked.Increment(ref _mprotectCalls);
            if (!_vmas.IsFullyMapped(start, end))
            {
                throw new UnmappedRangeException(HostMmRule.RangeNotFullyMapped, Id, start, end, "mprotect");
            }

            SplitHugePmds(start, end); // protection changes work on PTEs (Linux changes a whole leaf in place; splitting is simpler)
            var inside = _vmas.SplitToRange(start, end);
            foreach (var vma in inside)
            {
                _vmas.SetProtection(vma, protection);
                ChangeProtection(vma.Start, vma.End, protection);
            }

            FlushTlb(start, end);
            foreach (var vma in inside)
            {
                if (vma.IsInSet)
                {
                    _vmas.MergeWithNeighbours(vma);
                }
            }
        }
        finally
        {
            _mmapLock.ExitWriteLock();
        }
    }

    private void ChangeProtection(Hva start, Hva end, Protection protection)
    {
        var probe = default(AnyTableVisitor);
        _pageTable.Walk(start, end, allocate: false, ref probe);
        if (!probe.Found)
        {
            return; // Linux starts the notifier lazily, at the first populated table: nothing populated, no event.
        }

        using var invalidation = Invalidation.Begin(this, start, end, NotifierEvent.ProtectionVma);
        var visitor = new ProtectVisitor(this, protection);
        _pageTable.Walk(start, end, allocate: false, ref visitor);
        Interlocked.Add(ref _pagesProtected, visitor.Changed);
    }
}
