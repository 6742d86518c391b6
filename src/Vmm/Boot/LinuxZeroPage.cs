using System.Buffers.Binary;

namespace Hypervisor.Vmm.Boot;

/// <summary>
/// <c>struct boot_params</c>, the Linux/x86 boot protocol's 4 KiB "zero page": the field offsets the VMM fills and
/// the builder that lays them out around a copy of the kernel's setup header.
/// </summary>
public static class LinuxZeroPage
{
    /// <summary>Size of struct boot_params.</summary>
    public const int Size = 4096;

    /// <summary>acpi_rsdp_addr (8 bytes): the ACPI RSDP's physical address, 0 for none.</summary>
    public const int AcpiRsdpAddrOffset = 0x070;

    /// <summary>ext_ramdisk_image (4 bytes): the initrd address's high 32 bits.</summary>
    public const int ExtRamdiskImageOffset = 0x0C0;

    /// <summary>ext_ramdisk_size (4 bytes): the initrd size's high 32 bits.</summary>
    public const int ExtRamdiskSizeOffset = 0x0C4;

    /// <summary>ext_cmd_line_ptr (4 bytes): the command line address's high 32 bits.</summary>
    public const int ExtCmdLinePtrOffset = 0x0C8;

    /// <summary>e820_entries (1 byte).</summary>
    public const int E820EntriesOffset = 0x1E8;

    /// <summary>sentinel (1 byte): 0 from a loader that zeroes boot_params, as the kernel checks.</summary>
    public const int SentinelOffset = 0x1EF;

    /// <summary>e820_table: up to <see cref="E820MaxEntries"/> entries of <see cref="E820EntrySize"/> bytes (addr u64, size u64, type u32).</summary>
    public const int E820TableOffset = 0x2D0;

    /// <summary>Size of one boot_e820_entry (packed).</summary>
    public const int E820EntrySize = 20;

    /// <summary>E820_MAX_ENTRIES_ZEROPAGE.</summary>
    public const int E820MaxEntries = 128;

    /// <summary>type_of_loader for a loader without an assigned ID.</summary>
    public const byte UndefinedLoader = 0xFF;

    /// <summary>
    /// Builds the zero page: all zeros, the kernel's setup header copied at 0x1F1, and the loader's fields.
    /// type_of_loader is 0xFF; loadflags keep the kernel's bits, with LOADED_HIGH set and CAN_USE_HEAP and
    /// KEEP_SEGMENTS clear (both concern the real-mode and 32-bit entries, which the 64-bit entry skips);
    /// hardware_subarch (and its data) and setup_data are 0.
    /// </summary>
    /// <param name="header">The kernel's setup header.</param>
    /// <param name="commandLine">The command line's address (cmd_line_ptr and ext_cmd_line_ptr).</param>
    /// <param name="ramdiskImage">The initrd's address, 0 for none (ramdisk_image and ext_ramdisk_image).</param>
    /// <param name="ramdiskSize">The initrd's size, 0 for none (ramdisk_size and ext_ramdisk_size).</param>
    /// <param name="e820">The memory map, at most <see cref="E820MaxEntries"/> entries.</param>
    /// <param name="rsdp">acpi_rsdp_addr, 0 for none.</param>
    public static byte[] Build(LinuxSetupHeader header, ulong commandLine, ulong ramdiskImage, ulong ramdiskSize, ReadOnlySpan<E820Entry> e820, ulong rsdp)
    {
        ArgumentNullException.ThrowIfNull(header);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(e820.Length, E820MaxEntries);
        var page = new byte[Size];
        var p = page.AsSpan();
        header.Bytes.CopyTo(p[LinuxSetupHeader.Start..]);
        p[LinuxSetupHeader.TypeOfLoaderOffset] = UndefinedLoader;
        p[LinuxSetupHeader.LoadFlagsOffset] = (byte)((header.LoadFlags | LinuxLoadFlags.LoadedHigh) & ~(LinuxLoadFlags.CanUseHeap | LinuxLoadFlags.KeepSegments));
        Split(p, LinuxSetupHeader.CmdLinePtrOffset, ExtCmdLinePtrOffset, commandLine);
        Split(p, LinuxSetupHeader.RamdiskImageOffset, ExtRamdiskImageOffset, ramdiskImage);
        Split(p, LinuxSetupHeader.RamdiskSizeOffset, ExtRamdiskSizeOffset, ramdiskSize);
        BinaryPrimitives.WriteUInt32LittleEndian(p[LinuxSetupHeader.HardwareSubarchOffset..], 0);
        BinaryPrimitives.WriteUInt64LittleEndian(p[LinuxSetupHeader.HardwareSubarchDataOffset..], 0);
        BinaryPrimitives.WriteUInt64LittleEndian(p[LinuxSetupHeader.SetupDataOffset..], 0);

        BinaryPrimitives.WriteUInt64LittleEndian(p[AcpiRsdpAddrOffset..], rsdp);
        p[E820EntriesOffset] = (byte)e820.Length;
        for (var i = 0; i < e820.Length; i++)
        {
            var entry = p[(E820TableOffset + (i * E820EntrySize))..];
            BinaryPrimitives.WriteUInt64LittleEndian(entry, e820[i].Address);
            BinaryPrimitives.WriteUInt64LittleEndian(entry[8..], e820[i].Size);
            BinaryPrimitives.WriteUInt32LittleEndian(entry[16..], (uint)e820[i].Type);
        }

        return page;
    }

    private static void Split(Span<byte> page, int lowOffset, int highOffset, ulong value)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(page[lowOffset..], (uint)value);
        BinaryPrimitives.WriteUInt32LittleEndian(page[highOffset..], (uint)(value >> 32));
    }
}
