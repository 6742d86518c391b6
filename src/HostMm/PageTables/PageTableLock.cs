using Hypervisor.HostMm.Frames;

namespace Hypervisor.HostMm.PageTables;

/// <summary>
/// The page-table lock (PTL) of one table frame: a test-and-test-and-set spinlock on the frame's
/// <see cref="FrameFlags.Locked"/> bit (split PTE locks with no memory beyond the frame table).
/// </summary>
/// <remarks>
/// Hold it for a few entries' work only; nothing that blocks may run under it. Lock order: mmap lock →
/// page lock → PTL → GuestMmu's MMU lock → allocator node lock; two PTLs are taken in ascending table pfn.
/// The atomic set is a full fence on entry, the atomic clear a full fence on exit, so entry stores made
/// under the lock are seen by the next holder.
/// </remarks>
internal static class PageTableLock
{
    /// <summary>Spins until this thread holds the PTL of <paramref name="table"/>.</summary>
    public static void Acquire(HostMemory memory, Pfn table)
    {
        if (memory.TestAndSetFlag(table, FrameFlags.Locked))
        {
            AcquireContended(memory, table);
        }
    }

    /// <summary>Releases the PTL of <paramref name="table"/>.</summary>
    /// <exception cref="InvalidOperationException">The lock was not held (an unbalanced unlock).</exception>
    public static void Release(HostMemory memory, Pfn table)
    {
        if (!memory.TestAndClearFlag(table, FrameFlags.Locked))
        {
            throw new InvalidOperationException(
                $"page-table lock of {table} released while not held: every unlock must follow its own lock");
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void AcquireContended(HostMemory memory, Pfn table)
    {
        var spin = default(SpinWait);
        do
        {
            // Wait on a plain read so waiters do not bounce the cache line with atomics.
            do
            {
                spin.SpinOnce(sleep1Threshold: -1);
            }
            while (memory.Frame(table).Has(FrameFlags.Locked));
        }
        while (memory.TestAndSetFlag(table, FrameFlags.Locked));
    }
}
