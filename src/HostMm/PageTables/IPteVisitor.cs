namespace Hypervisor.HostMm.PageTables;

/// <summary>
/// What <see cref="HostPageTable.Walk{TVisitor}"/> does with each PTE-table segment. Implement it on a
/// struct so the walk is specialised for it (no allocation, no interface dispatch).
/// </summary>
public interface IPteVisitor
{
    /// <summary>
    /// Visits the leaf entries of one PTE table that lie inside the walked range, with that table's lock
    /// (PTL) held.
    /// </summary>
    /// <param name="firstAddress">The address <c>entries[0]</c> maps; entry <c>i</c> maps <c>firstAddress + i × 4096</c>.</param>
    /// <param name="entries">
    /// The raw slots, in place in the table frame. Read and write them freely while the call lasts, with
    /// plain or <see cref="Volatile"/> whole-word stores (never torn or partial writes): lockless readers
    /// such as <see cref="HostPageTable.Read"/> read them with <see cref="Volatile.Read(ref readonly ulong)"/>
    /// without the lock. Never keep the span beyond the call.
    /// </param>
    /// <param name="tablePfn">The PTE table's frame (whose lock is held).</param>
    /// <returns>True to go on to the next segment, false to stop the walk.</returns>
    /// <remarks>
    /// Runs under a spinlock: do not block, sleep, take a sleeping lock, allocate page tables, or lock
    /// a page-table entry of the same <see cref="HostPageTable"/> (the PTL is not reentrant). Leaf locks
    /// (frame refcounts, the allocator's node lock) and GuestMmu's MMU lock may be taken.
    /// </remarks>
    bool VisitTable(Hva firstAddress, Span<ulong> entries, Pfn tablePfn);
}
