namespace Hypervisor.GuestMmu.Backing;

/// <summary>Why <see cref="IGuestMemoryBacking.Resolve"/> did or did not return a frame.</summary>
public enum BackingStatus
{
    /// <summary>A frame was resolved, with one short-term reference.</summary>
    Resolved,

    /// <summary>No mapping covers the address (KVM's <c>-EFAULT</c> from a SIGSEGV, SEGV_MAPERR).</summary>
    Unmapped,

    /// <summary>The mapping forbids the access, e.g. a write to a read-only host mapping (SEGV_ACCERR).</summary>
    Forbidden,

    /// <summary>The host could not find a frame even after reclaim: its memory (or the process's limit) and swap are exhausted.</summary>
    OutOfMemory,

    /// <summary>The page's contents could not be read back (a swap read error or checksum mismatch): a memory failure.</summary>
    MemoryFailure,
}
