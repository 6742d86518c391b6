namespace Hypervisor.GuestMmu.Tlb;

/// <summary>Where a vCPU is, as far as TLB shootdowns care (KVM's <c>vcpu->mode</c>).</summary>
public enum VcpuMode
{
    /// <summary>Not running guest code: it services pending requests before it next enters.</summary>
    OutsideGuest = 0,

    /// <summary>Running guest code with live TLB entries: a flush must wait for its acknowledgement.</summary>
    InGuest = 1,
}
