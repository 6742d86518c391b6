namespace Hypervisor.Vmm.Devices.Dma;

/// <summary>The value of the DMA engine's status register (<see cref="DmaEngine.StatusRegister"/>).</summary>
public enum DmaStatus : ulong
{
    /// <summary>No copy was started since reset.</summary>
    Idle = 0,

    /// <summary>The last copy completed: every byte of the destination holds the source's.</summary>
    Done = 1,

    /// <summary>
    /// The last copy was refused before it began: a length of 0 or above <see cref="DmaEngine.MaxLength"/>, a buffer outside
    /// guest RAM or across two memslots, or a destination in a read-only memslot.
    /// </summary>
    BadRange = 2,

    /// <summary>The host could not resolve a page of a buffer (unmapped, forbidden, out of memory or a memory failure): nothing was copied.</summary>
    Fault = 3,

    /// <summary>The doorbell rang and the engine's thread is copying; a doorbell while busy is ignored.</summary>
    Busy = 4,
}
