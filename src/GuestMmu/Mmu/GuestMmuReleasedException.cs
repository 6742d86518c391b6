namespace Hypervisor.GuestMmu.Mmu;

/// <summary>The host process behind the guest's memory exited: the MMU was released and maps nothing any more.</summary>
public sealed class GuestMmuReleasedException : InvalidOperationException
{
    /// <summary>Creates the exception naming the faulting address.</summary>
    public GuestMmuReleasedException(Gpa gpa)
        : base($"EPT violation at {gpa} after the MMU was released: the host process exited, so no new mapping can be made")
    {
    }
}
