namespace Hypervisor.Vmm.Boot;

/// <summary>E820 / multiboot / hvm_memmap memory types.</summary>
public enum E820Type : uint
{
    /// <summary>Usable RAM.</summary>
    Ram = 1,

    /// <summary>Reserved; the guest must not use it.</summary>
    Reserved = 2,
}
