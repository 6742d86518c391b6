namespace Hypervisor.HostMm.PageTables;

/// <summary>
/// Told about each entry <see cref="HostPageTable.MoveEntries{TVisitor}"/> moves (mremap's
/// <c>move_ptes</c>). Implement it on a struct. Both calls run with the old and the new PTE-table locks
/// held: do not block there.
/// </summary>
public interface IPteMoveVisitor
{
    /// <summary>The non-none entry <paramref name="pte"/> moved from <paramref name="from"/> to <paramref name="to"/> (old slot already none, new slot set).</summary>
    void Moved(Hva from, Hva to, HostPte pte);

    /// <summary>
    /// The chunk <c>[fromStart, fromEnd)</c> of the old range has been moved and both PTE-table locks are
    /// still held: flush the TLB for it here, as Linux flushes the old range before dropping the PTLs.
    /// </summary>
    void BeforeUnlock(Hva fromStart, Hva fromEnd);
}
