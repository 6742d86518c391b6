namespace Hypervisor.Vmm.Devices.Dma;

/// <summary>How the DMA engine's registration cache keeps host frames of guest buffers (<c>--dma-cache</c>).</summary>
public enum DmaCacheMode
{
    /// <summary>No cache: every copy resolves every page through get-user-pages and drops the references after it.</summary>
    Off,

    /// <summary>
    /// The ummunotify registration cache: every buffer is registered by cookie on the user event channel, the lock-free
    /// generation counter is checked before (and after) every copy, and invalidated translations are dropped and resolved again.
    /// </summary>
    Safe,

    /// <summary>
    /// A cache that never listens: translations stay cached after the host swapped, merged, migrated or unmapped the page,
    /// so copies read and write stale frames. A demonstration of what the channel prevents; never for real use.
    /// </summary>
    Unsafe,
}
