namespace Hypervisor.Vmm.Accel;

/// <summary>Where a VM's vCPUs run.</summary>
public enum AcceleratorKind
{
    /// <summary>The Iced-based interpreter over the simulated host MM and the EPT secondary MMU.</summary>
    Emulated,

    /// <summary>The host's /dev/kvm, with guest RAM in a real anonymous mapping.</summary>
    Kvm,
}
