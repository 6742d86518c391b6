namespace Hypervisor.GuestMmu.Walker;

/// <summary>
/// Watches guest writes to chosen guest-physical pages (the interpreter's pages holding decoded code, after
/// QEMU's NOTDIRTY and Bochs' page write stamps). A watched page never gets a write entry in the
/// <see cref="SoftTlb"/>, so every write to it takes the slow path, which reports it here before any byte moves.
/// </summary>
/// <remarks>Called on the vCPU thread that performs the access; implementations must not block.</remarks>
public interface IWriteMonitor
{
    /// <summary>True when writes to <paramref name="gfn"/> must be reported (and must not be cached as TLB write hits).</summary>
    bool IsWatched(Gfn gfn);

    /// <summary>A write to the watched page holding <paramref name="gpa"/> is about to happen.</summary>
    void OnWatchedWrite(Gpa gpa);
}
