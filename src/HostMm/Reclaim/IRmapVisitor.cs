namespace Hypervisor.HostMm.Reclaim;

/// <summary>
/// What a reverse-map walk does at each mapping of a frame. Implement it on a struct so the walk is specialised for it.
/// </summary>
internal interface IRmapVisitor
{
    /// <summary>
    /// Visits the mapping at <paramref name="address"/> in <paramref name="mm"/>, with that process's mmap lock held for
    /// read (by the walk, or already by this thread) and no page-table lock held: re-check the PTE under its lock.
    /// </summary>
    /// <returns>True to go on to the next mapping.</returns>
    bool Visit(Mm mm, Hva address);
}
