namespace Hypervisor.HostMm.Reclaim;

/// <summary>The two anonymous LRU lists of a <see cref="Lruvec"/> (Linux's <c>LRU_INACTIVE_ANON</c>, <c>LRU_ACTIVE_ANON</c>).</summary>
public enum LruList
{
    /// <summary>Candidates for reclaim; new pages start here.</summary>
    Inactive,

    /// <summary>Pages seen referenced twice; aged back to the inactive list when it runs low.</summary>
    Active,
}
