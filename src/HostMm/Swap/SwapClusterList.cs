namespace Hypervisor.HostMm.Swap;

/// <summary>The allocation list a swap cluster is on (Linux's free / nonfull / full cluster lists).</summary>
internal enum SwapClusterList : byte
{
    /// <summary>No slot allocated.</summary>
    Free = 0,

    /// <summary>Some slots allocated, some free.</summary>
    NonFull = 1,

    /// <summary>Every usable slot allocated (or none usable: all BAD).</summary>
    Full = 2,
}
