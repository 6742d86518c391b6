namespace Hypervisor.GuestMmu.Mmu;

/// <summary>What handling one EPT violation did.</summary>
public enum EptFaultOutcome
{
    /// <summary>An spte was installed for the faulting guest frame.</summary>
    Installed,

    /// <summary>Another vCPU had already installed a suitable spte.</summary>
    AlreadyMapped,

    /// <summary>No memslot covers the address, or a write hit a read-only slot: the access exits to the VMM as MMIO.</summary>
    Mmio,

    /// <summary>The host could not back the address (unmapped or protection violation in the host process): KVM's -EFAULT.</summary>
    HostFault,

    /// <summary>The host had no frame for the page even after reclaim (memory and swap exhausted).</summary>
    OutOfMemory,

    /// <summary>The page's contents could not be read back from swap (I/O error or checksum mismatch): a memory failure.</summary>
    MemoryFailure,
}
