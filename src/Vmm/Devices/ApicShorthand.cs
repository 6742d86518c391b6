namespace Hypervisor.Vmm.Devices;

/// <summary>The destination shorthand of an IPI (ICR bits 19:18).</summary>
public enum ApicShorthand
{
    /// <summary>The destination field names the targets.</summary>
    None = 0,

    /// <summary>The sending APIC only.</summary>
    Self = 1,

    /// <summary>Every APIC, the sender included.</summary>
    AllIncludingSelf = 2,

    /// <summary>Every APIC but the sender.</summary>
    AllExcludingSelf = 3,
}
