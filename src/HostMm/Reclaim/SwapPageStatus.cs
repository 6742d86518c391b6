namespace Hypervisor.HostMm.Reclaim;

/// <summary>How looking up a swapped page for a fault ended.</summary>
internal enum SwapPageStatus
{
    /// <summary>The page is resident in the swap cache, locked, with one reference for the caller.</summary>
    Locked,

    /// <summary>The slot was freed meanwhile: the PTE that named it changed; fault again.</summary>
    Retry,

    /// <summary>The read failed or its checksum did not match: a memory failure (nothing was mapped).</summary>
    MemoryFailure,

    /// <summary>No frame could be allocated even after reclaim.</summary>
    OutOfMemory,
}
