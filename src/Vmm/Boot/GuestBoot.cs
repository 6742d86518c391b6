using Hypervisor.Vmm.Acpi;

namespace Hypervisor.Vmm.Boot;

/// <summary>Chooses a boot protocol for a loaded image and runs its builder.</summary>
public static class GuestBoot
{
    /// <summary>The protocol <paramref name="requested"/> resolves to for <paramref name="image"/>.</summary>
    /// <param name="image">The loaded image.</param>
    /// <param name="requested">The protocol asked for; <see cref="BootProtocol.Auto"/> picks one.</param>
    /// <exception cref="BootImageException">Auto found no protocol the image supports, or a bzImage was asked to boot by another protocol than Linux.</exception>
    public static BootProtocol Resolve(LoadedImage image, BootProtocol requested)
    {
        ArgumentNullException.ThrowIfNull(image);
        if (image.LinuxHeader is not null && requested is BootProtocol.LongMode or BootProtocol.Pvh or BootProtocol.Multiboot)
        {
            throw new BootImageException(
                BootImageRule.WrongProtocol,
                $"bzImage (boot protocol {image.LinuxHeader.VersionText}) cannot boot via {requested}: its 64-bit entry at 0x{image.ElfEntry:x} takes the Linux boot protocol's zero page (--boot Linux or Auto)");
        }

        if (requested != BootProtocol.Auto)
        {
            return requested;
        }

        return image switch
        {
            { LinuxHeader: not null } => BootProtocol.Linux,
            { PvhEntry: not null } => BootProtocol.Pvh,
            { Is64Bit: true } => BootProtocol.LongMode,
            { MultibootEntry: not null } => BootProtocol.Multiboot,
            _ => throw new BootImageException(
                BootImageRule.MissingEntry,
                $"ELF32 image with entry 0x{image.ElfEntry:x} has neither a Xen PHYS32_ENTRY note nor a multiboot header: a 32-bit image needs one of them to boot"),
        };
    }

    /// <summary>Writes the boot data for the resolved protocol and returns the vCPU's initial state.</summary>
    /// <param name="memory">Guest RAM.</param>
    /// <param name="image">The loaded image.</param>
    /// <param name="protocol">The protocol; <see cref="BootProtocol.Auto"/> picks one with <see cref="Resolve"/>.</param>
    /// <param name="commandLine">The kernel command line.</param>
    /// <param name="acpi">
    /// The VM's ACPI tables, or null for none: written at their base whatever the protocol (the RSDP where a legacy
    /// scan of 0xE0000–0xFFFFF finds it), and named in the start info's rsdp_paddr where there is one (PVH, and the
    /// direct 64-bit entry's start info) or in the zero page's acpi_rsdp_addr (Linux).
    /// </param>
    /// <param name="initrd">The initial RAM disk, passed as a boot module (start_info's module list, or multiboot's) or in the zero page's ramdisk fields (Linux), or null.</param>
    /// <exception cref="BootImageException">The image does not support the protocol, or the boot data or the initrd is bad or does not fit.</exception>
    public static InitialCpuState Setup(IGuestPhysicalMemory memory, LoadedImage image, BootProtocol protocol, string commandLine, AcpiTables? acpi = null, InitialRamDisk? initrd = null)
    {
        ArgumentNullException.ThrowIfNull(memory);
        var resolved = Resolve(image, protocol);
        var rsdp = 0UL;
        if (acpi is not null)
        {
            BootMemory.Place(memory, image, acpi.BaseAddress, acpi.Image.Span, "ACPI tables");
            rsdp = acpi.RsdpAddress;
        }

        switch (resolved)
        {
            case BootProtocol.Pvh:
                return PvhBoot.Setup(memory, image, commandLine, rsdp, initrd);
            case BootProtocol.Multiboot:
                return MultibootBoot.Setup(memory, image, commandLine, initrd);
            case BootProtocol.Linux:
                return LinuxBoot.Setup(memory, image, commandLine, rsdp, initrd);
            case BootProtocol.LongMode:
                var state = LongModeBoot.Setup(memory, image, LongModeBoot.DefaultStackTop);
                return state with { Rdi = PvhBoot.WriteStartInfo(memory, commandLine, image, rsdp, initrd) };
            default:
                throw new ArgumentOutOfRangeException(nameof(protocol), protocol, "boot protocol must be Auto, LongMode, Pvh, Multiboot or Linux");
        }
    }
}
