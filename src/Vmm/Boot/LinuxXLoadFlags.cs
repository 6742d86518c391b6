namespace Hypervisor.Vmm.Boot;

/// <summary>The setup header's <c>xloadflags</c> (offset 0x236, boot protocol 2.12 and later).</summary>
[Flags]
public enum LinuxXLoadFlags : ushort
{
    /// <summary>No flag.</summary>
    None = 0,

    /// <summary>XLF_KERNEL_64: the kernel has the 64-bit entry at its load address + 0x200.</summary>
    Kernel64 = 1 << 0,

    /// <summary>XLF_CAN_BE_LOADED_ABOVE_4G: the kernel, boot_params, command line and ramdisk may lie above 4 GiB.</summary>
    CanBeLoadedAbove4G = 1 << 1,

    /// <summary>XLF_EFI_HANDOVER_32: the 32-bit EFI handover entry exists.</summary>
    EfiHandover32 = 1 << 2,

    /// <summary>XLF_EFI_HANDOVER_64: the 64-bit EFI handover entry exists.</summary>
    EfiHandover64 = 1 << 3,

    /// <summary>XLF_EFI_KEXEC: the kernel supports kexec EFI boot with EFI runtime services.</summary>
    EfiKexec = 1 << 4,

    /// <summary>XLF_5LEVEL: the kernel can enter with 5-level paging enabled.</summary>
    FiveLevel = 1 << 5,

    /// <summary>XLF_5LEVEL_ENABLED: the kernel was built with 5-level paging support.</summary>
    FiveLevelEnabled = 1 << 6,
}
