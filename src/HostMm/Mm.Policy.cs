using Hypervisor.HostMm.Migration;

namespace Hypervisor.HostMm;

/// <summary>mbind: NUMA memory policy per VMA.</summary>
public sealed partial class Mm
{
    /// <summary>
    /// Sets the NUMA memory policy of <c>[start, start + length)</c>, which must be fully mapped (Linux's <c>mbind</c>,
    /// under the mmap lock for write): VMAs are split at the range's ends and later faults there allocate by
    /// <paramref name="policy"/>. With <paramref name="move"/> (MPOL_MF_MOVE) the resident pages the policy does not allow
    /// where they are migrate to the node it picks for them, after the lock is dropped; pages other processes map too
    /// move only with <paramref name="moveShared"/> (MPOL_MF_MOVE_ALL). Returns what the move did (nothing without it).
    /// </summary>
    /// <exception cref="UnmappedRangeException">A page in the range is not mapped.</exception>
    /// <exception cref="NumaNodeOutOfRangeException">The policy names a node the host does not have.</exception>
    public MigrationSummary Mbind(Hva start, ulong length, NumaPolicy policy, bool move = false, bool moveShared = false)
    {
        var end = CheckRange(start, length, "mbind");
        if (policy.HighestNode >= Host.Memory.NodeCount)
        {
            throw new NumaNodeOutOfRangeException(nameof(policy), policy.HighestNode, Host.Memory.NodeCount, $"mbind {policy}");
        }

        EnterWrite("mbind");
        try
        {
            if (!_vmas.IsFullyMapped(start, end))
            {
                throw new UnmappedRangeException(HostMmRule.RangeNotFullyMapped, Id, start, end, "mbind");
            }

            foreach (var vma in _vmas.SplitToRange(start, end))
            {
                _vmas.SetPolicy(vma, policy);
            }
        }
        finally
        {
            _mmapLock.ExitWriteLock();
        }

        return move ? Host.Migration.MigrateMisplaced(this, start, end, moveShared) : default;
    }
}
