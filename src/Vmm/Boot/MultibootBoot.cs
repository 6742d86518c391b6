using System.Buffers.Binary;

namespace Hypervisor.Vmm.Boot;

/// <summary>
/// Multiboot v1 entry: a multiboot information structure (memory sizes, command line, memory map) in low
/// memory, then 32-bit protected mode with paging off, EAX = 0x2BADB002 and EBX = the info address.
/// </summary>
public static class MultibootBoot
{
    /// <summary>The value in EAX that tells the kernel a multiboot loader started it.</summary>
    public const uint BootloaderMagic = 0x2BADB002;

    /// <summary>Info flag bit 0: mem_lower and mem_upper are valid.</summary>
    public const uint InfoMemory = 1u << 0;

    /// <summary>Info flag bit 2: cmdline is valid.</summary>
    public const uint InfoCommandLine = 1u << 2;

    /// <summary>Info flag bit 3: mods_count and mods_addr are valid.</summary>
    public const uint InfoModules = 1u << 3;

    /// <summary>Guest-physical address of the module list (one 16-byte record per module: the initrd) and its string.</summary>
    public const ulong ModulesAddress = 0x6100;

    /// <summary>Size of one module record (mod_start, mod_end, string, reserved).</summary>
    public const int ModuleRecordSize = 16;

    private static readonly byte[] ModuleString = "initrd\0"u8.ToArray();

    /// <summary>Info flag bit 6: mmap_length and mmap_addr are valid.</summary>
    public const uint InfoMemoryMap = 1u << 6;

    /// <summary>Size of the multiboot information structure written (through the framebuffer fields).</summary>
    public const int InfoSize = 116;

    /// <summary>Size of one memory-map entry including its 4-byte size field.</summary>
    public const int MmapEntrySize = 24;

    /// <summary>Guest-physical address of the GDT (flat 32-bit, as <see cref="PvhBoot.Gdt"/>).</summary>
    public const ulong GdtAddress = 0x500;

    /// <summary>Guest-physical address of the multiboot information structure.</summary>
    public const ulong InfoAddress = 0x6000;

    /// <summary>Guest-physical address of the memory map.</summary>
    public const ulong MmapAddress = 0x7000;

    /// <summary>Guest-physical address of the command line.</summary>
    public const ulong CommandLineAddress = 0x20000;

    /// <summary>Largest command line in bytes, its terminating NUL included.</summary>
    public const int CommandLineMaxSize = 4096;

    /// <summary>
    /// The multiboot information structure: flags = memory | cmdline | mmap, mem_lower = KiB below 640 KiB,
    /// mem_upper = KiB from 1 MiB to the end of RAM, everything else zero.
    /// </summary>
    /// <param name="ramSize">Bytes of guest RAM.</param>
    /// <param name="commandLineAddress">cmdline.</param>
    /// <param name="mmapAddress">mmap_addr.</param>
    /// <param name="mmapLength">mmap_length in bytes.</param>
    /// <param name="modulesAddress">mods_addr (0 with no modules).</param>
    /// <param name="moduleCount">mods_count.</param>
    public static byte[] Info(ulong ramSize, uint commandLineAddress, uint mmapAddress, uint mmapLength, uint modulesAddress = 0, uint moduleCount = 0)
    {
        var bytes = new byte[InfoSize];
        var s = bytes.AsSpan();
        var upper = ramSize > GuestMemoryMap.HighMemoryStart ? (ramSize - GuestMemoryMap.HighMemoryStart) / 1024 : 0;
        BinaryPrimitives.WriteUInt32LittleEndian(s, InfoMemory | InfoCommandLine | InfoMemoryMap | (moduleCount > 0 ? InfoModules : 0));
        BinaryPrimitives.WriteUInt32LittleEndian(s[4..], (uint)(Math.Min(ramSize, GuestMemoryMap.EbdaStart) / 1024));
        BinaryPrimitives.WriteUInt32LittleEndian(s[8..], (uint)Math.Min(upper, uint.MaxValue));
        BinaryPrimitives.WriteUInt32LittleEndian(s[16..], commandLineAddress);
        BinaryPrimitives.WriteUInt32LittleEndian(s[20..], moduleCount);
        BinaryPrimitives.WriteUInt32LittleEndian(s[24..], modulesAddress);
        BinaryPrimitives.WriteUInt32LittleEndian(s[44..], mmapLength);
        BinaryPrimitives.WriteUInt32LittleEndian(s[48..], mmapAddress);
        return bytes;
    }

    /// <summary>The memory map as multiboot records: size (20), base_addr, length, type.</summary>
    /// <param name="entries">The map.</param>
    public static byte[] MemoryMap(ReadOnlySpan<E820Entry> entries)
    {
        var bytes = new byte[entries.Length * MmapEntrySize];
        for (var i = 0; i < entries.Length; i++)
        {
            var s = bytes.AsSpan(i * MmapEntrySize);
            BinaryPrimitives.WriteUInt32LittleEndian(s, MmapEntrySize - 4);
            BinaryPrimitives.WriteUInt64LittleEndian(s[4..], entries[i].Address);
            BinaryPrimitives.WriteUInt64LittleEndian(s[12..], entries[i].Size);
            BinaryPrimitives.WriteUInt32LittleEndian(s[20..], (uint)entries[i].Type);
        }

        return bytes;
    }

    /// <summary>Writes the boot data and returns the state that enters <paramref name="image"/>'s multiboot entry.</summary>
    /// <param name="memory">Guest RAM.</param>
    /// <param name="image">The loaded image; it must carry a multiboot header and be clear of the boot data.</param>
    /// <param name="commandLine">The kernel command line.</param>
    /// <param name="initrd">The initial RAM disk, passed as the one module (string "initrd"), or null.</param>
    /// <exception cref="BootImageException">The image has no multiboot header, the command line is bad, or the boot data or the initrd does not fit.</exception>
    public static InitialCpuState Setup(IGuestPhysicalMemory memory, LoadedImage image, string commandLine, InitialRamDisk? initrd = null)
    {
        ArgumentNullException.ThrowIfNull(image);
        if (image.MultibootEntry is not { } entry)
        {
            throw new BootImageException(
                BootImageRule.MissingEntry,
                $"image with ELF entry 0x{image.ElfEntry:x} has no multiboot header (magic 0x{MultibootHeader.Magic:X8} in its first {ElfImage.MultibootSearchLimit} bytes): multiboot boot needs one");
        }

        return Setup(memory, entry, commandLine, image, initrd);
    }

    /// <summary>Writes GDT, info, memory map and command line; returns the 32-bit state entering <paramref name="entry"/>.</summary>
    /// <param name="memory">Guest RAM.</param>
    /// <param name="entry">The 32-bit physical entry.</param>
    /// <param name="commandLine">The kernel command line.</param>
    /// <param name="image">The loaded image to keep clear of, or null.</param>
    /// <param name="initrd">The initial RAM disk, passed as the one module (string "initrd"), or null.</param>
    /// <exception cref="BootImageException">The command line is bad or the boot data or the initrd does not fit.</exception>
    public static InitialCpuState Setup(IGuestPhysicalMemory memory, uint entry, string commandLine, LoadedImage? image = null, InitialRamDisk? initrd = null)
    {
        ArgumentNullException.ThrowIfNull(memory);
        var cmdline = BootMemory.EncodeCommandLine(commandLine, CommandLineMaxSize);
        var map = MemoryMap(GuestMemoryMap.Build(memory.Size));
        var gdt = PvhBoot.Gdt();
        BootMemory.Place(memory, image, GdtAddress, BootMemory.ToBytes(gdt), "GDT");
        uint modules = 0;
        if (initrd is not null)
        {
            var gpa = initrd.Place(memory, image);
            var record = new byte[ModuleRecordSize + ModuleString.Length];
            BinaryPrimitives.WriteUInt32LittleEndian(record, (uint)gpa);
            BinaryPrimitives.WriteUInt32LittleEndian(record.AsSpan(4), (uint)(gpa + (ulong)initrd.Data.Length));
            BinaryPrimitives.WriteUInt32LittleEndian(record.AsSpan(8), (uint)(ModulesAddress + ModuleRecordSize));
            ModuleString.CopyTo(record.AsSpan(ModuleRecordSize));
            BootMemory.Place(memory, image, ModulesAddress, record, "multiboot module list");
            modules = 1;
        }

        BootMemory.Place(memory, image, InfoAddress, Info(memory.Size, (uint)CommandLineAddress, (uint)MmapAddress, (uint)map.Length, modules > 0 ? (uint)ModulesAddress : 0, modules), "multiboot information");
        BootMemory.Place(memory, image, MmapAddress, map, "multiboot memory map");
        BootMemory.Place(memory, image, CommandLineAddress, cmdline, "command line");
        return BootMemory.Flat32(entry, GdtAddress, gdt) with { Rax = BootloaderMagic, Rbx = InfoAddress };
    }
}
