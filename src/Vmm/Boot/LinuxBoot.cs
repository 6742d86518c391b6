namespace Hypervisor.Vmm.Boot;

/// <summary>
/// The Linux/x86 boot protocol's 64-bit entry for a <see cref="BzImage"/>: the zero page (struct boot_params) with
/// the kernel's setup header, the command line, the initrd, the E820 map and the ACPI RSDP; a GDT with flat
/// __BOOT_CS (0x10) and __BOOT_DS (0x18); page tables identity-mapping the first 4 GiB; then long mode at the
/// kernel's load address + 0x200 with RSI = the zero page and interrupts off.
/// </summary>
/// <remarks>
/// Layout: GDT at 0x500 and IDT at 0x520 as <see cref="LongModeBoot"/>; zero page at 0x7000 (Firecracker's);
/// page tables from 0x9000 (PML4, PDPT, four PDs); command line at 0x20000; the initrd at the top of RAM below
/// initrd_addr_max (anywhere in RAM with XLF_CAN_BE_LOADED_ABOVE_4G).
/// </remarks>
public static class LinuxBoot
{
    /// <summary>Guest-physical address of the zero page; RSI holds it.</summary>
    public const ulong ZeroPageAddress = 0x7000;

    /// <summary>Guest-physical address of the command line.</summary>
    public const ulong CommandLineAddress = 0x20000;

    /// <summary>Largest command line in bytes, its NUL included, whatever the kernel's cmdline_size.</summary>
    public const int CommandLineMaxSize = 4096;

    /// <summary>__BOOT_CS: GDT entry 2, a flat 64-bit code segment.</summary>
    public const ushort CodeSelector = 0x10;

    /// <summary>__BOOT_DS: GDT entry 3, a flat read/write data segment.</summary>
    public const ushort DataSelector = 0x18;

    /// <summary>The TSS selector (GDT entry 4).</summary>
    public const ushort TssSelector = 0x20;

    /// <summary>GiB identity-mapped by the page tables.</summary>
    public const int IdentityMappedGiB = 4;

    /// <summary>Bytes identity-mapped by the page tables (4 GiB).</summary>
    public const ulong IdentityMappedSize = (ulong)IdentityMappedGiB << 30;

    /// <summary>The GDT: null, unused, __BOOT_CS (64-bit code), __BOOT_DS (data), busy TSS.</summary>
    public static ulong[] Gdt() =>
        [0, 0, GdtEntry.Create(0xA09B, 0, 0xFFFFF), GdtEntry.Create(0xC093, 0, 0xFFFFF), GdtEntry.Create(0x808B, 0, 0xFFFFF)];

    /// <summary>Writes the boot data and returns the state that enters <paramref name="image"/>'s 64-bit entry.</summary>
    /// <param name="memory">Guest RAM.</param>
    /// <param name="image">A loaded bzImage (<see cref="LoadedImage.LinuxHeader"/> set).</param>
    /// <param name="commandLine">The kernel command line; at most cmdline_size bytes.</param>
    /// <param name="rsdpPaddr">The ACPI RSDP's address for acpi_rsdp_addr, or 0 for none.</param>
    /// <param name="initrd">The initial RAM disk, or null.</param>
    /// <exception cref="BootImageException">The image is not a bzImage, is not identity-mapped, the command line is bad, or the boot data or the initrd does not fit.</exception>
    public static InitialCpuState Setup(IGuestPhysicalMemory memory, LoadedImage image, string commandLine, ulong rsdpPaddr = 0, InitialRamDisk? initrd = null)
    {
        ArgumentNullException.ThrowIfNull(memory);
        ArgumentNullException.ThrowIfNull(image);
        if (image.LinuxHeader is not { } header)
        {
            throw new BootImageException(
                BootImageRule.WrongProtocol,
                $"ELF image with entry 0x{image.ElfEntry:x} has no Linux setup header: the Linux boot protocol needs a bzImage");
        }

        if (image.EndGpa > IdentityMappedSize)
        {
            throw new BootImageException(
                BootImageRule.NotIdentityMapped,
                $"kernel [0x{image.LowestGpa:x}, 0x{image.EndGpa:x}) reaches above the identity-mapped first {IdentityMappedGiB} GiB: the 64-bit entry needs init_size identity-mapped");
        }

        var maxCommandLine = (int)Math.Min((ulong)header.CmdlineSize + 1, CommandLineMaxSize);
        var cmdline = BootMemory.EncodeCommandLine(commandLine, maxCommandLine);
        ulong ramdisk = 0, ramdiskSize = 0;
        if (initrd is not null)
        {
            // initrd_addr_max is the highest address the disk's last byte may occupy.
            var limit = header.XLoadFlags.HasFlag(LinuxXLoadFlags.CanBeLoadedAbove4G) ? ulong.MaxValue : (ulong)header.InitrdAddrMax + 1;
            ramdisk = initrd.Place(memory, image, limit);
            ramdiskSize = (ulong)initrd.Data.Length;
        }

        var gdt = Gdt();
        var zeroPage = LinuxZeroPage.Build(header, CommandLineAddress, ramdisk, ramdiskSize, GuestMemoryMap.Build(memory.Size), rsdpPaddr);
        BootMemory.Place(memory, image, LongModeBoot.GdtAddress, BootMemory.ToBytes(gdt), "GDT");
        BootMemory.Place(memory, image, LongModeBoot.IdtAddress, new byte[8], "IDT");
        BootMemory.Place(memory, image, ZeroPageAddress, zeroPage, "zero page");
        BootMemory.Place(memory, image, LongModeBoot.Pml4Address, LongModeBoot.PageTables(IdentityMappedGiB), "identity page tables");
        BootMemory.Place(memory, image, CommandLineAddress, cmdline, "command line");
        return LongModeBoot.Registers(image.ElfEntry, LongModeBoot.DefaultStackTop, ZeroPageAddress, gdt, CodeSelector, DataSelector, TssSelector);
    }
}
