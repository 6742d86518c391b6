namespace Hypervisor.HostMm.Migration;

/// <summary>A VMA's NUMA memory policy mode, after Linux's <c>MPOL_*</c> (set with <see cref="Mm.Mbind"/>).</summary>
public enum NumaPolicyMode
{
    /// <summary>MPOL_DEFAULT / MPOL_LOCAL: allocate on the faulting process's preferred node, falling back to the others.</summary>
    Local,

    /// <summary>MPOL_BIND: allocate only on the policy's nodes (the lowest with a free frame first).</summary>
    Bind,

    /// <summary>MPOL_INTERLEAVE: spread pages over the policy's nodes by page index, falling back to the others.</summary>
    Interleave,

    /// <summary>MPOL_PREFERRED: allocate on the policy's one node, falling back to the others.</summary>
    Preferred,
}
