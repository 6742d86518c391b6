using System.Buffers.Binary;

namespace Hypervisor.Vmm.Boot;

/// <summary>
/// The setup header of a Linux/x86 bzImage (Documentation/x86/boot.rst), validated for the 64-bit entry. Its
/// offsets are the same in the file and in <c>struct boot_params</c> (the zero page), which embeds it at 0x1F1.
/// </summary>
public sealed class LinuxSetupHeader
{
    /// <summary>Offset of the header, in the file and in the zero page.</summary>
    public const int Start = 0x1F1;

    /// <summary>setup_sects (1 byte): 512-byte setup sectors after the boot sector; 0 means 4.</summary>
    public const int SetupSectsOffset = 0x1F1;

    /// <summary>syssize (4 bytes): the protected-mode code's size in 16-byte paragraphs.</summary>
    public const int SysSizeOffset = 0x1F4;

    /// <summary>boot_flag (2 bytes): 0xAA55.</summary>
    public const int BootFlagOffset = 0x1FE;

    /// <summary>The jump instruction's displacement byte; the header ends at 0x202 plus its value.</summary>
    public const int JumpDisplacementOffset = 0x201;

    /// <summary>header (4 bytes): "HdrS".</summary>
    public const int MagicOffset = 0x202;

    /// <summary>version (2 bytes): the boot-protocol version, major in the high byte.</summary>
    public const int VersionOffset = 0x206;

    /// <summary>type_of_loader (1 byte).</summary>
    public const int TypeOfLoaderOffset = 0x210;

    /// <summary>loadflags (1 byte), see <see cref="LinuxLoadFlags"/>.</summary>
    public const int LoadFlagsOffset = 0x211;

    /// <summary>ramdisk_image (4 bytes): the initrd's address, low 32 bits.</summary>
    public const int RamdiskImageOffset = 0x218;

    /// <summary>ramdisk_size (4 bytes): the initrd's size, low 32 bits.</summary>
    public const int RamdiskSizeOffset = 0x21C;

    /// <summary>heap_end_ptr (2 bytes).</summary>
    public const int HeapEndPtrOffset = 0x224;

    /// <summary>cmd_line_ptr (4 bytes): the command line's address, low 32 bits.</summary>
    public const int CmdLinePtrOffset = 0x228;

    /// <summary>initrd_addr_max (4 bytes): the highest address the initrd's last byte may occupy.</summary>
    public const int InitrdAddrMaxOffset = 0x22C;

    /// <summary>kernel_alignment (4 bytes).</summary>
    public const int KernelAlignmentOffset = 0x230;

    /// <summary>relocatable_kernel (1 byte).</summary>
    public const int RelocatableKernelOffset = 0x234;

    /// <summary>xloadflags (2 bytes), see <see cref="LinuxXLoadFlags"/>.</summary>
    public const int XLoadFlagsOffset = 0x236;

    /// <summary>cmdline_size (4 bytes): the longest command line, without its NUL.</summary>
    public const int CmdlineSizeOffset = 0x238;

    /// <summary>hardware_subarch (4 bytes): 0 for a normal PC.</summary>
    public const int HardwareSubarchOffset = 0x23C;

    /// <summary>hardware_subarch_data (8 bytes).</summary>
    public const int HardwareSubarchDataOffset = 0x240;

    /// <summary>setup_data (8 bytes): the head of the setup_data list, 0 for none.</summary>
    public const int SetupDataOffset = 0x250;

    /// <summary>pref_address (8 bytes): the preferred (for a non-relocatable kernel, the required) load address.</summary>
    public const int PrefAddressOffset = 0x258;

    /// <summary>init_size (4 bytes): the bytes of memory the kernel needs from its load address until it has relocated itself.</summary>
    public const int InitSizeOffset = 0x260;

    /// <summary>The fields up to init_size, which protocol 2.12 has, end here; a shorter header is malformed.</summary>
    public const int MinimumEnd = 0x264;

    /// <summary>Where the zero page's room for the header ends (edd_mbr_sig_buffer follows).</summary>
    public const int MaximumEnd = 0x290;

    /// <summary>"HdrS" as a little-endian 32-bit value.</summary>
    public const uint Magic = 0x5372_6448;

    /// <summary>The boot_flag value.</summary>
    public const ushort BootFlag = 0xAA55;

    /// <summary>Protocol 2.12: the oldest with xloadflags and thus the 64-bit entry flag.</summary>
    public const ushort MinimumVersion = 0x020C;

    /// <summary>Offset of the 64-bit entry from the protected-mode kernel's load address.</summary>
    public const ulong Entry64Offset = 0x200;

    private readonly byte[] _bytes;

    private LinuxSetupHeader(ReadOnlySpan<byte> file)
    {
        var sects = file[SetupSectsOffset];
        SetupSectors = sects == 0 ? 4 : sects;
        SysSize = U32(file, SysSizeOffset);
        Version = BinaryPrimitives.ReadUInt16LittleEndian(file[VersionOffset..]);
        LoadFlags = (LinuxLoadFlags)file[LoadFlagsOffset];
        InitrdAddrMax = U32(file, InitrdAddrMaxOffset);
        KernelAlignment = U32(file, KernelAlignmentOffset);
        RelocatableKernel = file[RelocatableKernelOffset] != 0;
        XLoadFlags = (LinuxXLoadFlags)BinaryPrimitives.ReadUInt16LittleEndian(file[XLoadFlagsOffset..]);
        CmdlineSize = U32(file, CmdlineSizeOffset);
        PrefAddress = BinaryPrimitives.ReadUInt64LittleEndian(file[PrefAddressOffset..]);
        InitSize = U32(file, InitSizeOffset);
        End = MagicOffset + file[JumpDisplacementOffset];
        _bytes = file[Start..End].ToArray();
    }

    /// <summary>setup_sects with 0 read as 4.</summary>
    public int SetupSectors { get; }

    /// <summary>syssize: the protected-mode code's size in 16-byte paragraphs (0: the rest of the file).</summary>
    public uint SysSize { get; }

    /// <summary>The boot-protocol version, e.g. 0x020F for 2.15.</summary>
    public ushort Version { get; }

    /// <summary>loadflags as the kernel set them.</summary>
    public LinuxLoadFlags LoadFlags { get; }

    /// <summary>initrd_addr_max: the highest address the initrd's last byte may occupy.</summary>
    public uint InitrdAddrMax { get; }

    /// <summary>kernel_alignment: a power of two.</summary>
    public uint KernelAlignment { get; }

    /// <summary>relocatable_kernel: the kernel may be loaded at any multiple of <see cref="KernelAlignment"/>.</summary>
    public bool RelocatableKernel { get; }

    /// <summary>xloadflags; <see cref="LinuxXLoadFlags.Kernel64"/> is always set.</summary>
    public LinuxXLoadFlags XLoadFlags { get; }

    /// <summary>cmdline_size: the longest command line, without its NUL.</summary>
    public uint CmdlineSize { get; }

    /// <summary>pref_address: at least 1 MiB and a multiple of <see cref="KernelAlignment"/>.</summary>
    public ulong PrefAddress { get; }

    /// <summary>init_size: bytes of memory the kernel needs from its load address.</summary>
    public uint InitSize { get; }

    /// <summary>One past the header's last byte: 0x202 plus the jump's displacement byte.</summary>
    public int End { get; }

    /// <summary>File offset of the protected-mode kernel: (setup_sects + 1) × 512.</summary>
    public int KernelOffset => (SetupSectors + 1) * 512;

    /// <summary>The header's bytes from <see cref="Start"/> to <see cref="End"/>, as in the file, for the zero page.</summary>
    public ReadOnlySpan<byte> Bytes => _bytes;

    /// <summary>The version as "major.minor".</summary>
    public string VersionText => $"{Version >> 8}.{Version & 0xFF}";

    /// <summary>Reads and validates the setup header of a bzImage for the 64-bit entry.</summary>
    /// <param name="file">The whole bzImage file (at least its setup sectors).</param>
    /// <exception cref="BootImageException">The header is missing, truncated, malformed, too old or lacks the 64-bit entry.</exception>
    public static LinuxSetupHeader Parse(ReadOnlySpan<byte> file)
    {
        if (file.Length < VersionOffset + 2)
        {
            throw new BootImageException(
                BootImageRule.Truncated,
                $"image of {file.Length} bytes is truncated: a Linux setup header needs at least 0x{VersionOffset + 2:x} bytes (through its version at 0x{VersionOffset:x})");
        }

        var magic = U32(file, MagicOffset);
        if (magic != Magic)
        {
            throw new BootImageException(
                BootImageRule.BadMagic,
                $"setup-header magic 0x{magic:x8} at 0x{MagicOffset:x} is not a Linux kernel's: a bzImage has \"HdrS\" (0x{Magic:x8}) there");
        }

        var bootFlag = BinaryPrimitives.ReadUInt16LittleEndian(file[BootFlagOffset..]);
        if (bootFlag != BootFlag)
        {
            throw new BootImageException(
                BootImageRule.BadLinuxHeader,
                $"boot_flag 0x{bootFlag:x4} at 0x{BootFlagOffset:x} is not 0x{BootFlag:x4}: a Linux setup header carries the boot-sector signature");
        }

        var version = BinaryPrimitives.ReadUInt16LittleEndian(file[VersionOffset..]);
        if (version < MinimumVersion)
        {
            throw new BootImageException(
                BootImageRule.UnsupportedLinuxBootProtocol,
                $"boot protocol {version >> 8}.{version & 0xFF} (0x{version:x4}) is too old: the 64-bit entry needs 2.12 (0x{MinimumVersion:x4}) or later");
        }

        var sects = file[SetupSectsOffset] == 0 ? 4 : file[SetupSectsOffset];
        var setupSize = (sects + 1) * 512;
        if (file.Length < setupSize)
        {
            throw new BootImageException(
                BootImageRule.Truncated,
                $"image of {file.Length} bytes is truncated: setup_sects {file[SetupSectsOffset]} puts the protected-mode kernel at 0x{setupSize:x}");
        }

        var end = MagicOffset + file[JumpDisplacementOffset];
        if (end < MinimumEnd || end > MaximumEnd)
        {
            throw new BootImageException(
                BootImageRule.BadLinuxHeader,
                $"setup header end 0x{end:x} (0x202 + jump displacement 0x{file[JumpDisplacementOffset]:x2}) is out of range: a 2.12+ header ends in [0x{MinimumEnd:x}, 0x{MaximumEnd:x}]");
        }

        var header = new LinuxSetupHeader(file);
        if (!header.XLoadFlags.HasFlag(LinuxXLoadFlags.Kernel64))
        {
            throw new BootImageException(
                BootImageRule.NoLinux64BitEntry,
                $"xloadflags 0x{(ushort)header.XLoadFlags:x4} lack XLF_KERNEL_64 (bit 0): the kernel has no 64-bit entry at its load address + 0x200");
        }

        if (!header.LoadFlags.HasFlag(LinuxLoadFlags.LoadedHigh))
        {
            throw new BootImageException(
                BootImageRule.BadLinuxHeader,
                $"loadflags 0x{(byte)header.LoadFlags:x2} lack LOADED_HIGH (bit 0): the kernel is a zImage for 0x10000, not a bzImage for 1 MiB and above");
        }

        if (header.KernelAlignment == 0 || (header.KernelAlignment & (header.KernelAlignment - 1)) != 0)
        {
            throw new BootImageException(
                BootImageRule.BadKernelPlacement,
                $"kernel_alignment 0x{header.KernelAlignment:x} is not a power of two");
        }

        if (header.PrefAddress < GuestMemoryMap.HighMemoryStart || header.PrefAddress % header.KernelAlignment != 0)
        {
            throw new BootImageException(
                BootImageRule.BadKernelPlacement,
                $"pref_address 0x{header.PrefAddress:x} must be at least 1 MiB (0x{GuestMemoryMap.HighMemoryStart:x}) and a multiple of kernel_alignment 0x{header.KernelAlignment:x}");
        }

        return header;
    }

    private static uint U32(ReadOnlySpan<byte> file, int offset) => BinaryPrimitives.ReadUInt32LittleEndian(file[offset..]);
}
