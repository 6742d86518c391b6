namespace Hypervisor.Vmm.Boot;

/// <summary>How the VMM enters a loaded image.</summary>
public enum BootProtocol
{
    /// <summary>Linux for a bzImage; for an ELF image PVH when it has the Xen note (as QEMU and Firecracker choose), else direct 64-bit entry for ELF64, else multiboot.</summary>
    Auto,

    /// <summary>Direct 64-bit entry at e_entry with VMM-built GDT and identity tables; RDI = hvm_start_info.</summary>
    LongMode,

    /// <summary>Xen PVH: 32-bit protected mode at the PHYS32_ENTRY note, EBX = hvm_start_info.</summary>
    Pvh,

    /// <summary>Multiboot v1: 32-bit protected mode, EAX = 0x2BADB002, EBX = multiboot info.</summary>
    Multiboot,

    /// <summary>The Linux/x86 boot protocol's 64-bit entry for a bzImage: long mode at load address + 0x200, RSI = the zero page (boot_params).</summary>
    Linux,
}
