namespace Hypervisor.HostMm.Swap;

/// <summary>The answer of <see cref="SwapArea.TrySetCache"/> (Linux's <c>swapcache_prepare</c>: 0, −EEXIST, −ENOENT).</summary>
public enum SwapCachePrepareResult
{
    /// <summary>HAS_CACHE was clear and is now set: the caller owns the slot's swap-cache entry and may read the slot.</summary>
    Prepared,

    /// <summary>HAS_CACHE was already set: another page owns the slot (in the swap cache or being read in); look it up or wait.</summary>
    AlreadyCached,

    /// <summary>The slot is free: the swap entry the caller read is stale (its PTE changed); retry the fault.</summary>
    SlotFree,
}
