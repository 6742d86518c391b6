namespace Hypervisor.GuestMmu.Ept;

/// <summary>
/// What a level-1 table knows about its own entries without reading them: how many are present, and
/// whether any present one may carry a bit that makes a zap report it (D, or W with A/D off). A zap of a
/// whole table that is full and clean by these counts clears it with a plain memset; one that is empty
/// skips it. Kept beside the table in the arena chunk (<see cref="EptArena.CountsOf"/>).
/// </summary>
/// <remarks>
/// <para><see cref="Present"/> is exact whenever neither side of the MMU lock is mid-update: installers
/// (read lock) change it with an interlocked add after their compare-and-swap succeeds; zaps (write lock)
/// with plain stores. The two never run at once.</para>
/// <para><see cref="MayHoldDirty"/> is a sticky hint: 0 guarantees no present entry has a dirty-mask bit.
/// Anyone who makes such an entry (an install, hardware setting D under the read lock, a bulk fill) sets it
/// to 1 first; only a zap of the whole table, under the write lock, resets it. A stale 1 costs one kernel
/// pass, never correctness. With <see cref="HardwareAdPolicy.Lockless"/> D may appear without any lock, so
/// the hint is not trusted there.</para>
/// </remarks>
internal struct LeafTableCounts
{
    /// <summary>Present entries in the table (0 to 512).</summary>
    public int Present;

    /// <summary>0 when no present entry can be dirty (see remarks); 1 otherwise.</summary>
    public int MayHoldDirty;
}
