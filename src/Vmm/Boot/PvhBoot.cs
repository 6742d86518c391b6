using System.Buffers.Binary;

namespace Hypervisor.Vmm.Boot;

/// <summary>
/// Xen PVH entry as Firecracker, cloud-hypervisor and crosvm do it: <c>hvm_start_info</c> (version 1, with
/// a memory map) and the command line in low memory, then 32-bit protected mode with paging off at the
/// entry from the <c>XEN_ELFNOTE_PHYS32_ENTRY</c> note and EBX pointing at the start info.
/// </summary>
public static class PvhBoot
{
    /// <summary>hvm_start_info.magic ("xEn3" with the top bit of each byte cleared).</summary>
    public const uint StartInfoMagic = 0x336EC578;

    /// <summary>The start-info version written (1: has the memory map fields).</summary>
    public const uint StartInfoVersion = 1;

    /// <summary>Size of hvm_start_info version 1.</summary>
    public const int StartInfoSize = 56;

    /// <summary>Size of one hvm_memmap_table_entry.</summary>
    public const int MemmapEntrySize = 24;

    /// <summary>Guest-physical address of the GDT (flat 32-bit).</summary>
    public const ulong GdtAddress = 0x500;

    /// <summary>Guest-physical address of hvm_start_info.</summary>
    public const ulong StartInfoAddress = 0x6000;

    /// <summary>Guest-physical address of the module list (one hvm_modlist_entry per module: the initrd).</summary>
    public const ulong ModlistAddress = 0x6100;

    /// <summary>Size of one hvm_modlist_entry (paddr, size, cmdline_paddr, reserved).</summary>
    public const int ModlistEntrySize = 32;

    /// <summary>Guest-physical address of the memory map.</summary>
    public const ulong MemmapAddress = 0x7000;

    /// <summary>Guest-physical address of the command line.</summary>
    public const ulong CommandLineAddress = 0x20000;

    /// <summary>Largest command line in bytes, its terminating NUL included.</summary>
    public const int CommandLineMaxSize = 4096;

    /// <summary>The flat 32-bit GDT (cloud-hypervisor's): null, code 0x08, data 0x10, TSS 0x18.</summary>
    public static ulong[] Gdt() =>
        [0, GdtEntry.Create(0xC09B, 0, 0xFFFFF), GdtEntry.Create(0xC093, 0, 0xFFFFF), GdtEntry.Create(0x008B, 0, 0x67)];

    /// <summary>The 56 bytes of hvm_start_info version 1.</summary>
    /// <param name="commandLinePaddr">cmdline_paddr.</param>
    /// <param name="memmapPaddr">memmap_paddr.</param>
    /// <param name="memmapEntries">memmap_entries.</param>
    /// <param name="rsdpPaddr">rsdp_paddr (offset 32): the ACPI RSDP, or 0 for none.</param>
    /// <param name="modlistPaddr">modlist_paddr (0 with no modules).</param>
    /// <param name="moduleCount">nr_modules.</param>
    public static byte[] StartInfo(ulong commandLinePaddr, ulong memmapPaddr, uint memmapEntries, ulong rsdpPaddr = 0, ulong modlistPaddr = 0, uint moduleCount = 0)
    {
        var bytes = new byte[StartInfoSize];
        var s = bytes.AsSpan();
        BinaryPrimitives.WriteUInt32LittleEndian(s, StartInfoMagic);
        BinaryPrimitives.WriteUInt32LittleEndian(s[4..], StartInfoVersion);
        BinaryPrimitives.WriteUInt32LittleEndian(s[12..], moduleCount);
        BinaryPrimitives.WriteUInt64LittleEndian(s[16..], modlistPaddr);
        BinaryPrimitives.WriteUInt64LittleEndian(s[24..], commandLinePaddr);
        BinaryPrimitives.WriteUInt64LittleEndian(s[32..], rsdpPaddr);
        BinaryPrimitives.WriteUInt64LittleEndian(s[40..], memmapPaddr);
        BinaryPrimitives.WriteUInt32LittleEndian(s[48..], memmapEntries);
        return bytes;
    }

    /// <summary>One hvm_modlist_entry: the module's address and size, no command line.</summary>
    /// <param name="paddr">paddr.</param>
    /// <param name="size">size.</param>
    public static byte[] ModuleEntry(ulong paddr, ulong size)
    {
        var bytes = new byte[ModlistEntrySize];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, paddr);
        BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(8), size);
        return bytes;
    }

    /// <summary>The memory map as hvm_memmap_table_entry records (addr, size, type, reserved).</summary>
    /// <param name="entries">The map.</param>
    public static byte[] MemoryMap(ReadOnlySpan<E820Entry> entries)
    {
        var bytes = new byte[entries.Length * MemmapEntrySize];
        for (var i = 0; i < entries.Length; i++)
        {
            var s = bytes.AsSpan(i * MemmapEntrySize);
            BinaryPrimitives.WriteUInt64LittleEndian(s, entries[i].Address);
            BinaryPrimitives.WriteUInt64LittleEndian(s[8..], entries[i].Size);
            BinaryPrimitives.WriteUInt32LittleEndian(s[16..], (uint)entries[i].Type);
        }

        return bytes;
    }

    /// <summary>Writes the boot data and returns the state that enters <paramref name="image"/>'s PVH entry.</summary>
    /// <param name="memory">Guest RAM.</param>
    /// <param name="image">The loaded image; it must carry a PVH note and be clear of the boot data.</param>
    /// <param name="commandLine">The kernel command line.</param>
    /// <param name="rsdpPaddr">The ACPI RSDP's address for the start info, or 0 for none.</param>
    /// <param name="initrd">The initial RAM disk, passed as the one module, or null.</param>
    /// <exception cref="BootImageException">The image has no PVH note, the command line is bad, or the boot data or the initrd does not fit.</exception>
    public static InitialCpuState Setup(IGuestPhysicalMemory memory, LoadedImage image, string commandLine, ulong rsdpPaddr = 0, InitialRamDisk? initrd = null)
    {
        ArgumentNullException.ThrowIfNull(image);
        if (image.PvhEntry is not { } entry)
        {
            throw new BootImageException(
                BootImageRule.MissingEntry,
                $"image with ELF entry 0x{image.ElfEntry:x} has no Xen PHYS32_ENTRY note (name \"Xen\", type {ElfImage.XenElfNotePhys32Entry}): PVH boot needs one");
        }

        return Setup(memory, entry, commandLine, image, rsdpPaddr, initrd);
    }

    /// <summary>Writes GDT, start info, memory map and command line; returns the 32-bit state entering <paramref name="entry"/>.</summary>
    /// <param name="memory">Guest RAM.</param>
    /// <param name="entry">The 32-bit physical entry.</param>
    /// <param name="commandLine">The kernel command line.</param>
    /// <param name="image">The loaded image to keep clear of, or null.</param>
    /// <param name="rsdpPaddr">The ACPI RSDP's address for the start info, or 0 for none.</param>
    /// <param name="initrd">The initial RAM disk, passed as the one module, or null.</param>
    /// <exception cref="BootImageException">The command line is bad or the boot data or the initrd does not fit.</exception>
    public static InitialCpuState Setup(IGuestPhysicalMemory memory, uint entry, string commandLine, LoadedImage? image = null, ulong rsdpPaddr = 0, InitialRamDisk? initrd = null)
    {
        ArgumentNullException.ThrowIfNull(memory);
        var cmdline = BootMemory.EncodeCommandLine(commandLine, CommandLineMaxSize);
        var gdt = Gdt();
        BootMemory.Place(memory, image, GdtAddress, BootMemory.ToBytes(gdt), "GDT");
        var startInfo = WriteStartInfo(memory, cmdline, image, rsdpPaddr, initrd);
        return BootMemory.Flat32(entry, GdtAddress, gdt) with { Rbx = startInfo };
    }

    /// <summary>
    /// Writes hvm_start_info, the memory map and the command line (no GDT), for any entry that wants a start
    /// info — also the direct 64-bit entry, whose guests take its address in RDI.
    /// </summary>
    /// <param name="memory">Guest RAM.</param>
    /// <param name="commandLine">The kernel command line.</param>
    /// <param name="image">The loaded image to keep clear of, or null.</param>
    /// <param name="rsdpPaddr">The ACPI RSDP's address for the start info, or 0 for none.</param>
    /// <param name="initrd">The initial RAM disk, passed as the one module, or null.</param>
    /// <returns>The guest-physical address of hvm_start_info.</returns>
    /// <exception cref="BootImageException">The command line is bad or the boot data or the initrd does not fit.</exception>
    public static ulong WriteStartInfo(IGuestPhysicalMemory memory, string commandLine, LoadedImage? image = null, ulong rsdpPaddr = 0, InitialRamDisk? initrd = null)
    {
        ArgumentNullException.ThrowIfNull(memory);
        return WriteStartInfo(memory, BootMemory.EncodeCommandLine(commandLine, CommandLineMaxSize), image, rsdpPaddr, initrd);
    }

    private static ulong WriteStartInfo(IGuestPhysicalMemory memory, byte[] cmdline, LoadedImage? image, ulong rsdpPaddr, InitialRamDisk? initrd)
    {
        var map = GuestMemoryMap.Build(memory.Size);
        ulong modlist = 0;
        uint modules = 0;
        if (initrd is not null)
        {
            var gpa = initrd.Place(memory, image);
            BootMemory.Place(memory, image, ModlistAddress, ModuleEntry(gpa, (ulong)initrd.Data.Length), "PVH module list");
            modlist = ModlistAddress;
            modules = 1;
        }

        BootMemory.Place(memory, image, StartInfoAddress, StartInfo(CommandLineAddress, MemmapAddress, (uint)map.Length, rsdpPaddr, modlist, modules), "hvm_start_info");
        BootMemory.Place(memory, image, MemmapAddress, MemoryMap(map), "PVH memory map");
        BootMemory.Place(memory, image, CommandLineAddress, cmdline, "command line");
        return StartInfoAddress;
    }
}
